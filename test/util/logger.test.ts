// Logs are human-readable lines on a terminal and JSON lines otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, logFormat } from '../../src/util/logger.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

test('the format follows the terminal unless KVROUTER_LOG_FORMAT says otherwise', () => {
  assert.equal(logFormat({}, true), 'pretty');
  assert.equal(logFormat({}, false), 'json');
  assert.equal(logFormat({ KVROUTER_LOG_FORMAT: 'json' }, true), 'json');
  assert.equal(logFormat({ KVROUTER_LOG_FORMAT: 'pretty' }, false), 'pretty');
  assert.throws(() => logFormat({ KVROUTER_LOG_FORMAT: 'yaml' }, false), /json or pretty/);
});

test('json: one JSON object per line with the name and fields', () => {
  const out = capture();
  createLogger({ level: 'info', name: 'kvrouter', format: 'json', destination: out.stream }).info({ pod: 'a' }, 'hello');
  const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
  assert.equal(line.msg, 'hello');
  assert.equal(line.name, 'kvrouter');
  assert.equal(line.pod, 'a');
  assert.equal(line.level, 30);
});

test('pretty: a readable line (level word, name, message, fields), not JSON, levels still filter', () => {
  const out = capture();
  const log = createLogger({ level: 'info', name: 'kvrouter', format: 'pretty', destination: out.stream });
  log.debug('hidden');
  log.warn({ pod: 'a' }, 'endpoint down');
  const text = out.text();
  assert.ok(!text.trimStart().startsWith('{'), text);
  assert.match(text, /WARN.*\(kvrouter\).*endpoint down/);
  assert.match(text, /pod: "a"/);
  assert.ok(!text.includes('hidden'));
  assert.ok(!text.includes('\u001b['), 'no colour codes when not writing to a terminal');
});
