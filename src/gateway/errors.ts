// OpenAI-style error bodies ({"error": {message, type, param, code}}) with their HTTP status.

export type GatewayErrorType =
  | 'invalid_request_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'service_unavailable_error'
  | 'bad_gateway_error'
  | 'gateway_timeout_error'
  | 'request_too_large_error'
  | 'internal_error';

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: GatewayErrorType,
    readonly code: string,
    readonly param: string | null = null,
    /** Extra response headers (e.g. x-llm-d-request-dropped-reason). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, code = 'invalid_request', param: string | null = null) =>
  new GatewayError(400, message, 'invalid_request_error', code, param);
export const notFound = (message: string, code = 'not_found') => new GatewayError(404, message, 'not_found_error', code);

/** 499: the client went away before the request was decided (nginx's code; nobody receives it). */
export const clientClosed = () => new GatewayError(499, 'client closed the request', 'invalid_request_error', 'client_closed_request');

/** 413: a chat over the message cap (request-limits.ts; also checked by the body parser's thread). */
export const tooManyMessages = (n: number, max: number) =>
  new GatewayError(413, `"messages" has ${n} entries; this router accepts at most ${max}`, 'request_too_large_error', 'too_many_messages', 'messages');

/** 413: a prompt over the prompt-character cap (request-limits.ts; also checked by the body parser's thread). */
export const promptTooLarge = (param: 'prompt' | 'messages', max: number) =>
  new GatewayError(413, `the ${param} exceeds this router's limit of ${max} characters`, 'request_too_large_error', 'prompt_too_large', param);
