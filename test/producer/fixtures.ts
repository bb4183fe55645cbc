import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createProducer, type Producer, type ProducerOptions } from '@taskline/producer';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';

/** Two TLS Redis servers (broker, result backend) and producers closed after each test. */
export interface ProducerFixture {
  broker: RunningRedis;
  backend: RunningRedis;
  prefix: string;
  env: Record<string, string>;
  producer(options?: Partial<ProducerOptions>): Producer;
  closeProducers(): Promise<void>;
  stop(): Promise<void>;
}

export async function startProducerFixture(): Promise<ProducerFixture> {
  const [broker, backend] = await Promise.all([startRedis({ tls: true }), startRedis({ tls: true })]);
  const open: Producer[] = [];
  const fixture: ProducerFixture = {
    broker,
    backend,
    prefix: '',
    env: {},
    producer(options = {}) {
      const p = createProducer({ prefix: fixture.prefix, env: fixture.env, ...options });
      open.push(p);
      return p;
    },
    async closeProducers() {
      for (const p of open.splice(0)) await p.close();
    },
    async stop() {
      await fixture.closeProducers();
      await Promise.all([broker.stop(), backend.stop()]);
    },
  };
  fixture.env = { ...envFor(broker, backend), REDIS_HEALTH_CHECK_INTERVAL: '0' };
  return fixture;
}

/** A fresh prefix per test, so tests never see each other's keys. */
export function freshPrefix(): string {
  return `t${randomBytes(4).toString('hex')}`;
}

/** Every key under the prefix on a server. */
export async function keysOf(server: RunningRedis, prefix: string): Promise<string[]> {
  const out = await server.cli('--scan', '--pattern', `${prefix}:*`);
  return out ? out.split('\n').filter(Boolean).sort() : [];
}

/**
 * A suite's fixture: two servers for the whole suite (handed to `set`), a fresh prefix per test,
 * and, after the suite, both servers stopped with nothing else left running.
 */
export function useProducerFixture(set: (fixture: ProducerFixture) => void): void {
  let fixture: ProducerFixture | undefined;
  let redisBefore = 0;
  before(async () => {
    redisBefore = runningRedisCount();
    fixture = await startProducerFixture();
    set(fixture);
  });
  after(async () => {
    await fixture?.stop();
    expect(runningRedisCount()).to.equal(redisBefore);
  });
  beforeEach(() => {
    if (fixture) fixture.prefix = freshPrefix();
  });
}
