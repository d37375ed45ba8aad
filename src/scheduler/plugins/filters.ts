// Filters: narrow the candidate set by labels (llm-d role filters, label selectors).
import { z } from 'zod';
import { parseParams } from './params.js';
import type { CycleState, Endpoint, Filter, InferenceRequest } from '../types.js';

export const ROLE_LABEL = 'llm-d.ai/role';

/** Keeps endpoints whose role is in `roles`; unlabelled endpoints pass when `keepUnlabelled`. */
export class RoleFilter implements Filter {
  constructor(
    readonly type: string,
    readonly name: string,
    private readonly roles: ReadonlySet<string>,
    private readonly keepUnlabelled: boolean,
  ) {}
  filter(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    return endpoints.filter((e) => {
      const role = e.labels[ROLE_LABEL];
      return role === undefined ? this.keepUnlabelled : this.roles.has(role);
    });
  }
}

export const DECODE_ROLES = new Set(['decode', 'prefill-decode', 'both', 'encode-prefill-decode']);
export const PREFILL_ROLES = new Set(['prefill', 'encode-prefill', 'prefill-decode', 'both', 'encode-prefill-decode']);
export const ENCODE_ROLES = new Set(['encode', 'encode-prefill', 'encode-prefill-decode']);

const expressionSchema = z
  .object({
    key: z.string().min(1),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(z.string()).optional(),
  })
  .strict();

const selectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z.array(expressionSchema).optional(),
  })
  .strict();

/** Kubernetes-style label selector over endpoint labels. */
export class LabelSelectorFilter implements Filter {
  private readonly matchLabels: [string, string][];
  private readonly expressions: z.infer<typeof expressionSchema>[];
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    const p = parseParams(selectorSchema, params);
    this.matchLabels = Object.entries(p.matchLabels ?? {});
    this.expressions = p.matchExpressions ?? [];
    for (const e of this.expressions) {
      if ((e.operator === 'In' || e.operator === 'NotIn') && !e.values?.length) {
        throw new Error(`matchExpressions key "${e.key}": operator ${e.operator} needs values`);
      }
    }
  }
  matches(labels: Readonly<Record<string, string>>): boolean {
    for (const [k, v] of this.matchLabels) if (labels[k] !== v) return false;
    for (const e of this.expressions) {
      const v = labels[e.key];
      switch (e.operator) {
        case 'In':
          if (v === undefined || !e.values!.includes(v)) return false;
          break;
        case 'NotIn':
          if (v !== undefined && e.values!.includes(v)) return false;
          break;
        case 'Exists':
          if (v === undefined) return false;
          break;
        case 'DoesNotExist':
          if (v !== undefined) return false;
          break;
      }
    }
    return true;
  }
  filter(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    return endpoints.filter((e) => this.matches(e.labels));
  }
}
