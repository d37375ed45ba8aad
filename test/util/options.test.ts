import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withDefaults } from '../../src/util/options.js';

interface Opts {
  a?: number;
  b?: string;
  c?: boolean;
}
const DEFAULTS: Required<Opts> = { a: 1, b: 'x', c: true };

test('withDefaults: given options win, unset ones (undefined, null, absent) keep their default', () => {
  assert.deepEqual(withDefaults<Opts>(DEFAULTS, {}), DEFAULTS);
  assert.deepEqual(withDefaults<Opts>(DEFAULTS, { a: undefined, b: null }), DEFAULTS);
  // falsy values are real settings, unlike with ||
  assert.deepEqual(withDefaults<Opts>(DEFAULTS, { a: 0, b: '', c: false }), { a: 0, b: '', c: false });
  const out = withDefaults<Opts>(DEFAULTS, { a: 5 });
  assert.deepEqual(out, { a: 5, b: 'x', c: true });
  assert.notEqual(out, DEFAULTS);
  assert.deepEqual(DEFAULTS, { a: 1, b: 'x', c: true }, 'defaults are not modified');
});
