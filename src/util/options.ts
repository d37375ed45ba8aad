// The one way options meet their defaults in this code base: `withDefaults(DEFAULTS, options)`.
/**
 * `defaults` overlaid with the options actually given. An unset option keeps its default:
 * an explicit `undefined` (an unset flag passed through), which a plain spread would let erase
 * the default, and a `null` (YAML's `~` in a user config), as the `??` this replaces did.
 */
export function withDefaults<T extends object>(defaults: Required<T>, options: { [K in keyof T]?: T[K] | undefined | null }): Required<T> {
  const out = { ...defaults };
  for (const key of Object.keys(options) as (keyof T)[]) {
    const v = options[key];
    if (v !== undefined && v !== null) out[key as keyof T] = v as Required<T>[keyof T];
  }
  return out;
}
