// Parameter parsing shared by plugin factories: a zod schema per plugin; the config loader
// turns a failure into an error naming the plugin.
import type { z } from 'zod';

export function parseParams<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  return schema.parse(raw ?? {});
}
