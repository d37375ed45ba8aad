/**
 * `defaults` overlaid with the options actually given: an explicit `undefined` (an unset flag
 * passed through) keeps the default instead of erasing it, as a plain spread would.
 */
export function withDefaults<T extends object>(defaults: Required<T>, options: T): Required<T> {
  const out = { ...defaults };
  for (const key of Object.keys(options) as (keyof T)[]) {
    const v = options[key];
    if (v !== undefined) out[key] = v as Required<T>[keyof T];
  }
  return out;
}
