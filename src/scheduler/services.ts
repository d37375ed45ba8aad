// Typed services shared between the router and its plugins. A service is named by a
// `ServiceKey<T>`, so whoever reads it gets a `T` without a cast. Plugins declare what they
// provide and what they require (as fastify-plugin's `dependencies` metadata does for fastify
// plugins, fastify/fastify-plugin README); the config loader checks the declarations after
// instantiating every plugin, so a missing dependency stops startup with an error naming it.
//
// This replaces a `Map<string, unknown>` read with casts, where a missing service only logged a
// warning once the plugin started.

/** Names a service and carries its type. Compare keys by identity, not by `id`. */
export class ServiceKey<T> {
  /** Never set: only ties the key to its type at compile time. */
  declare readonly type?: T;
  constructor(
    /** Shown in errors and logs. */
    readonly id: string,
  ) {}
  toString(): string {
    return this.id;
  }
}

/** Thrown when a required service is absent, or when two plugins provide the same one. */
export class ServiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceError';
  }
}

export class ServiceRegistry {
  private readonly values = new Map<ServiceKey<unknown>, { value: unknown; provider: string }>();

  /** Registers `value` under `key`; `provider` names who supplies it (for errors). */
  provide<T>(key: ServiceKey<T>, value: T, provider: string): void {
    const have = this.values.get(key);
    if (have) throw new ServiceError(`service "${key.id}" is provided twice (by ${have.provider} and by ${provider})`);
    this.values.set(key, { value, provider });
  }

  has(key: ServiceKey<unknown>): boolean {
    return this.values.has(key);
  }

  /** The service, or undefined when nobody provides it. */
  get<T>(key: ServiceKey<T>): T | undefined {
    return this.values.get(key)?.value as T | undefined;
  }

  /** The service; throws a ServiceError naming the key and `consumer` when nobody provides it. */
  require<T>(key: ServiceKey<T>, consumer: string): T {
    const have = this.values.get(key);
    if (!have) throw new ServiceError(`${consumer} requires service "${key.id}", which nothing provides`);
    return have.value as T;
  }

  /** Who provides `key` (for logs), if anyone. */
  providerOf(key: ServiceKey<unknown>): string | undefined {
    return this.values.get(key)?.provider;
  }
}
