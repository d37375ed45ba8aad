// The one way options meet their defaults in this code base: `withDefaults(DEFAULTS, options)`.
/**
 * `defaults` overlaid with the options actually given: an explicit `undefined` (an unset flag
 * passed through) keeps the default instead of erasing it, as a plain spread would.
 */
export function withDefaults<T extends object>(defaults: Required<T>, options: { [K in keyof T]?: T[K] | undefined }): Required<T> {
  const out = { ...defaults };
  for (const key of Object.keys(options) as (keyof T)[]) {
    const v = options[key];
    if (v !== undefined) out[key as keyof T] = v as Required<T>[keyof T];
  }
  return out;
}
