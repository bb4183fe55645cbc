import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Counter, Registry } from 'prom-client';
import type { Logger, Routes } from '@taskline/shared';
import { getOrCreateCounter, sleep, withTimeout } from '@taskline/shared/process';
import { type LeasedConnection, type RedisService } from '@taskline/shared/connection';
import { type ResultBackend } from '@taskline/shared/job';
import type { TaskSet } from '../tasks.js';
import { unsupportedCanvas } from './celery-canvas.js';
import { celeryKeys, queueDeadLetter, queueFallback, rawPriority, type CeleryKeys } from './celery-fallback.js';
import { celeryJob, type CeleryJob } from './celery-job.js';
import { kombuListsOf, parseCeleryMessage, type CeleryTaskMessage } from './celery-message.js';
import { revokedException, type CeleryResultWriter } from './celery-results.js';

export interface CeleryIntakeOptions {
  /** The Celery queues (kombu lists) consumed. */
  queues: string[];
  /** Where messages for tasks this worker does not define go back to, for Celery workers. */
  fallbackQueue: string;
  tasks: TaskSet;
  routes: Routes;
  broker: RedisService;
  prefix: string;
  results: ResultBackend;
  writer: CeleryResultWriter;
  /** A BullMQ Queue handle on the shared broker connection. */
  queue(name: string): Queue;
  registry: Registry;
  logger: Logger;
  /** Messages moved per round at most. @defaultValue 100 */
  batchSize?: number;
  /** How long one blocking move waits, in seconds (bounded, so a reconnect cannot hang it). @defaultValue 1 */
  blockSeconds?: number;
  /** A consumer whose heartbeat is this old is dead; its processing list is taken over. @defaultValue 15000 */
  deadAfterMs?: number;
}

/** One kombu list consumed, and how many messages its last round moved (the next asks for up to twice that). */
interface Source {
  key: string;
  queue: string;
  last: number;
}

type Outcome = 'job' | 'duplicate' | 'fallback' | 'dead_letter' | 'revoked' | 'refused';
interface Entry {
  raw: string;
  /** The Celery queue it came from. */
  queue: string;
  /** Taken over from a dead consumer, or left by a lost reply: its job may exist already. */
  recovered: boolean;
}

/**
 * Consumes Celery protocol-2 messages from kombu's Redis lists, at least once: each message is
 * moved atomically (LMOVE / BLMOVE) into this consumer's own processing list, becomes a taskline
 * job whose id is derived from the Celery task id (so a second delivery finds the same job), and
 * only then leaves the processing list. Each consumer keeps a heartbeat key; a live one moves a
 * dead one's processing list into its own and handles it. Unknown tasks go back to Celery's
 * fallback queue unchanged; unreadable messages go to the dead-letter list with the reason.
 */
export class CeleryIntake {
  readonly consumerId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly keys: CeleryKeys;
  readonly #o: Required<CeleryIntakeOptions>;
  readonly #sources: Source[];
  readonly #processing: string;
  readonly #messages: Counter<'queue' | 'outcome'>;
  readonly #deadLetters: Counter<'reason'>;
  #lease: LeasedConnection | null = null;
  #closing = false;
  #rescan = true;
  #blockIndex = 0;
  #loop: Promise<void> | null = null;
  #closePromise: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** Why the intake cannot take messages now, for readiness; `null` while it can. */
  failing: string | null = null;

  constructor(options: CeleryIntakeOptions) {
    this.#o = { batchSize: 100, blockSeconds: 1, deadAfterMs: 15_000, ...options };
    this.keys = celeryKeys(options.prefix);
    this.#processing = this.keys.processing(this.consumerId);
    // kombu's order: every queue's priority-0 list first, then 3, 6, 9.
    this.#sources = [0, 1, 2, 3].flatMap(step => options.queues.map(queue => ({ key: kombuListsOf(queue)[step] as string, queue, last: 0 })));
    this.#messages = getOrCreateCounter(options.registry, {
      name: 'taskline_celery_messages_total',
      help: 'Celery messages taken by the bridge, by what became of them (job, duplicate, fallback, dead_letter, revoked, refused).',
      labelNames: ['queue', 'outcome'],
    });
    this.#deadLetters = getOrCreateCounter(options.registry, {
      name: 'taskline_celery_dead_letters_total',
      help: 'Celery messages that could not be read, moved to the dead-letter list, by reason.',
      labelNames: ['reason'],
    });
  }

  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => void this.#tick(), Math.max(500, Math.floor(this.#o.deadAfterMs / 5)));
    this.#timer.unref();
    this.#loop = this.#run();
  }

  /** Stops taking messages (a blocking move in flight ends within its timeout) and leaves the consumer set. Safe to call twice. */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    if (this.#timer) clearInterval(this.#timer);
    await withTimeout(this.#loop ?? Promise.resolve(), (this.#o.blockSeconds + 5) * 1000, 'the Celery intake').catch(() => this.#lease?.client.disconnect());
    this.#lease?.release();
    this.#lease = null;
    const client = this.#o.broker.client();
    // Leave only when nothing is left to hand over; otherwise the heartbeat expires and another consumer takes it.
    if ((await client.llen(this.#processing).catch(() => 1)) === 0) {
      await client.multi().srem(this.keys.consumers, this.consumerId).del(this.keys.heartbeat(this.consumerId)).exec().catch(() => undefined);
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closing) {
      try {
        const entries = await this.#take();
        if (entries.length > 0) await this.#handle(entries);
        failures = 0;
        this.failing = null;
      } catch (err) {
        failures += 1;
        this.#rescan = true;
        this.failing = `the Celery intake cannot take messages: ${err instanceof Error ? err.message : String(err)}`;
        if (failures === 1) this.#o.logger.warn('The Celery intake failed; retrying with backoff', { error: err });
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  /** What to handle next: a rescan of our own list, else a round of moves, else one bounded blocking move. */
  async #take(): Promise<Entry[]> {
    const client = this.#o.broker.client();
    if (this.#rescan) {
      this.#rescan = false;
      const held = await client.lrange(this.#processing, 0, -1);
      if (held.length > 0) return held.reverse().map(raw => ({ raw, queue: routingKey(raw) ?? this.#o.queues[0] ?? '', recovered: true }));
    }
    const pipeline = client.pipeline();
    const asked: Source[] = [];
    for (const source of this.#sources) {
      const n = Math.min(this.#o.batchSize, Math.max(1, source.last * 2));
      for (let i = 0; i < n; i++) {
        pipeline.lmove(source.key, this.#processing, 'RIGHT', 'LEFT');
        asked.push(source);
      }
    }
    const replies = (await pipeline.exec()) ?? [];
    const entries: Entry[] = [];
    for (const source of this.#sources) source.last = 0;
    replies.forEach(([err, raw], i) => {
      const source = asked[i];
      if (err) this.#rescan = true;
      else if (typeof raw === 'string' && source) {
        source.last += 1;
        entries.push({ raw, queue: source.queue, recovered: false });
      }
    });
    if (entries.length > 0 || this.#closing) return entries;
    return this.#block();
  }

  /** One BLMOVE on a dedicated connection, bounded on both sides: Redis's timeout, and ours a few seconds later. */
  async #block(): Promise<Entry[]> {
    const queues = this.#o.queues;
    const queue = queues[this.#blockIndex++ % queues.length] ?? '';
    const seconds = Math.max(0.1, this.#o.blockSeconds / queues.length);
    this.#lease ??= await this.#o.broker.lease();
    const lease = this.#lease;
    let raw: string | null;
    try {
      raw = await withTimeout(lease.client.blmove(queue, this.#processing, 'RIGHT', 'LEFT', seconds), seconds * 1000 + 5000, 'a blocking move from a Celery queue');
    } catch (err) {
      // The connection may be stuck (a blocking command re-sent after a reconnect): drop it; a
      // move that still happens lands in our processing list, which the rescan reads.
      this.#lease = null;
      lease.client.disconnect();
      lease.release();
      throw err;
    }
    return raw === null ? [] : [{ raw, queue, recovered: false }];
  }

  async #handle(entries: Entry[]): Promise<void> {
    const now = Date.now();
    const client = this.#o.broker.client();
    const moves = client.multi();
    const jobs: Array<{ entry: Entry; job: CeleryJob }> = [];
    const settled: Entry[] = [];
    const counted: Array<[string, Outcome]> = [];
    for (const entry of entries) {
      const parsed = parseCeleryMessage(entry.raw);
      if (!parsed.ok) {
        queueDeadLetter(moves, this.keys, entry.raw, entry.queue, parsed.refusal, now);
        moves.lrem(this.#processing, 1, entry.raw);
        this.#deadLetters.inc({ reason: parsed.refusal.code });
        counted.push([entry.queue, 'dead_letter']);
        this.#o.logger.warn('A Celery message cannot be read; moved to the dead-letter list', { queue: entry.queue, reason: parsed.refusal.code, deadLetter: this.keys.deadLetter });
        continue;
      }
      const message = parsed.message;
      const task = this.#o.tasks.byName.get(message.task);
      if (!task) {
        queueFallback(moves, entry.raw, this.#o.fallbackQueue, rawPriority(entry.raw));
        moves.lrem(this.#processing, 1, entry.raw);
        counted.push([entry.queue, 'fallback']);
        continue;
      }
      const refusedFeature = unsupportedCanvas(message.embed);
      // Expired already, or due (eta) only after it expires.
      const expired = message.expiresMs !== null && message.expiresMs < Math.max(now, message.etaMs ?? 0);
      if (refusedFeature !== null || expired) {
        await this.#settle(message, refusedFeature);
        counted.push([entry.queue, refusedFeature === null ? 'revoked' : 'refused']);
        settled.push(entry);
        continue;
      }
      jobs.push({ entry, job: celeryJob(message, entry.queue, task, this.#o.routes, now) });
    }
    if (counted.some(([, outcome]) => outcome === 'fallback' || outcome === 'dead_letter')) await execOrThrow(moves);
    else moves.discard();
    const duplicates = await this.#existing(jobs.filter(j => j.entry.recovered).map(j => j.job.id));
    await this.#add(jobs.filter(j => !duplicates.has(j.job.id)).map(j => j.job));
    for (const { entry, job } of jobs) counted.push([entry.queue, duplicates.has(job.id) ? 'duplicate' : 'job']);
    const done = client.pipeline();
    for (const entry of [...settled, ...jobs.map(j => j.entry)]) done.lrem(this.#processing, 1, entry.raw);
    await execOrThrow(done);
    for (const [queue, outcome] of counted) this.#messages.inc({ queue, outcome });
  }

  /** A message that must not run: REVOKED (it expired) or FAILURE (a canvas feature taskline cannot run). */
  async #settle(message: CeleryTaskMessage, refusedFeature: string | null): Promise<void> {
    const extra = { parentId: message.parentId, group: message.group };
    if (refusedFeature !== null) {
      const text = `Celery canvas feature "${refusedFeature}" is not supported by the taskline bridge; the task was not run. Route ${message.task} to a Celery worker, or drop ${refusedFeature}.`;
      this.#o.logger.warn('Refused a Celery message using a canvas feature the bridge cannot run', { task: message.task, feature: refusedFeature });
      if (!message.ignoreResult) await this.#o.writer.write(message.id, 'FAILURE', { exc_type: 'NotImplementedError', exc_message: [text], exc_module: 'builtins' }, extra);
      return;
    }
    // Expired before it became a job: no taskline job is made; Celery's record says REVOKED.
    const reason = `expired at ${new Date(message.expiresMs ?? 0).toISOString()} (Celery expires) before it could start`;
    if (!message.ignoreResult) await this.#o.writer.write(message.id, 'REVOKED', revokedException(reason), extra);
  }

  /** Of these job ids, those with a record already: their job ran or runs, and must not be made again. */
  async #existing(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const records = await this.#o.results.getMany(ids);
    return new Set(ids.filter(id => records.get(id)));
  }

  /** One BullMQ addBulk per queue; a job id that exists already is left as it is (BullMQ adds nothing). */
  async #add(jobs: CeleryJob[]): Promise<void> {
    const byQueue = new Map<string, CeleryJob[]>();
    for (const job of jobs) byQueue.set(job.queue, [...(byQueue.get(job.queue) ?? []), job]);
    await Promise.all([...byQueue].map(([name, list]) => this.#o.queue(name).addBulk(list.map(j => ({ name: j.name, data: j.data, opts: j.opts })))));
  }

  /** Heartbeat, and the take-over of dead consumers' processing lists. */
  async #tick(): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#beat();
      await this.#recover();
    } catch (err) {
      this.#o.logger.warn('The Celery intake could not renew its heartbeat or recover dead consumers', { error: err });
    }
  }

  async #beat(): Promise<void> {
    await this.#o.broker
      .client()
      .multi()
      .sadd(this.keys.consumers, this.consumerId)
      .set(this.keys.heartbeat(this.consumerId), String(Date.now()), 'PX', this.#o.deadAfterMs)
      .exec();
  }

  async #recover(): Promise<void> {
    const client = this.#o.broker.client();
    const others = (await client.smembers(this.keys.consumers)).filter(id => id !== this.consumerId);
    for (const id of others) {
      if ((await client.exists(this.keys.heartbeat(id))) === 1) continue;
      let moved = 0;
      while (!this.#closing && moved < 10_000 && (await client.lmove(this.keys.processing(id), this.#processing, 'RIGHT', 'LEFT')) !== null) moved += 1;
      if (moved > 0) {
        this.#rescan = true;
        this.#o.logger.warn('Took over the Celery messages a dead consumer held', { consumer: id, messages: moved });
      }
      if ((await client.llen(this.keys.processing(id))) === 0) await client.srem(this.keys.consumers, id);
    }
  }
}

function routingKey(raw: string): string | null {
  try {
    const key = (JSON.parse(raw) as { properties?: { delivery_info?: { routing_key?: unknown } } }).properties?.delivery_info?.routing_key;
    return typeof key === 'string' && key ? key : null;
  } catch {
    return null;
  }
}

async function execOrThrow(batch: { exec(): Promise<Array<[Error | null, unknown]> | null> }): Promise<void> {
  const replies = await batch.exec();
  const failed = replies?.find(([err]) => err)?.[0];
  if (failed) throw failed;
}

export type { Redis };
