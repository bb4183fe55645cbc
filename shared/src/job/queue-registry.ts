import type { Redis } from 'ioredis';

/**
 * The queues of a deployment, kept in one set on the broker (`<prefix>::queues`; the double
 * colon cannot be a BullMQ queue's key, as queue names are never empty). Producers, workers and
 * the beat add the queues they use, so operators and the producer can list queues and find a job
 * without SCAN (which least-privilege users may not run).
 */
export function queueRegistryKey(prefix: string): string {
  return `${prefix}::queues`;
}

/** Adds queue names to the registry; each process sends each name once. */
export class QueueRegistry {
  readonly #key: string;
  readonly #known = new Set<string>();

  constructor(prefix: string) {
    this.#key = queueRegistryKey(prefix);
  }

  /** Registers the names not registered by this process yet (one SADD). */
  async register(client: Redis, names: Iterable<string>): Promise<void> {
    const fresh = [...new Set(names)].filter(name => !this.#known.has(name));
    if (fresh.length === 0) return;
    await client.sadd(this.#key, ...fresh);
    for (const name of fresh) this.#known.add(name);
  }

  async list(client: Redis): Promise<string[]> {
    return (await client.smembers(this.#key)).sort();
  }
}
