import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@taskline/shared';
import { celeryInfoOf } from './celery-job.js';
import { kombuListFor, type CeleryEmbed, type CelerySignature } from './celery-message.js';

/**
 * The canvas parts the bridge can run as Celery does (celery/app/trace.py, after a success):
 * each `link` callback and the next task of a `chain` are sent as new protocol-2 messages, with the
 * parent's return value first in their args (unless immutable) and the rest of the chain embedded.
 * They go to the queue the signature names, else the queue the parent came from: a task taskline
 * defines runs here again, any other goes on to the Celery workers through the fallback queue.
 * `link_error` and chords need Python (Celery inspects the errback's signature; a chord counts
 * its header's results in the result backend) and are refused before the task runs.
 */
export function unsupportedCanvas(embed: CeleryEmbed): string | null {
  if (embed.chord) return 'chord';
  if (embed.errbacks.length > 0) return 'link_error';
  const plain = (s: CelerySignature) => (s.subtask_type ?? null) === null;
  if (!embed.callbacks.every(plain)) return 'a group or chord as a link callback';
  if (!embed.chain.every(plain)) return 'a group or chord inside a chain';
  return null;
}

export interface CeleryCanvasDeps {
  broker: () => Redis;
  logger: Logger;
}

export class CeleryCanvas {
  readonly #deps: CeleryCanvasDeps;
  readonly #origin = `taskline@${hostname()}`;

  constructor(deps: CeleryCanvasDeps) {
    this.#deps = deps;
  }

  /** Sends the job's callbacks and the next link of its chain, as Celery does before it stores the result. */
  async afterSuccess(job: Job, result: unknown): Promise<void> {
    const info = celeryInfoOf(job);
    const embed = info?.next;
    if (!info || !embed) return;
    const sends: Array<{ sig: CelerySignature; chain: CelerySignature[] }> = embed.callbacks.map(sig => ({ sig, chain: [] }));
    if (embed.chain.length > 0) {
      const rest = [...embed.chain];
      const next = rest.pop() as CelerySignature;
      sends.push({ sig: next, chain: rest });
    }
    if (sends.length === 0) return;
    const pipeline = this.#deps.broker().pipeline();
    for (const { sig, chain } of sends) {
      const options = sig.options ?? {};
      const queue = typeof options['queue'] === 'string' ? options['queue'] : info.queue;
      const args = sig.immutable ? (sig.args ?? []) : [result, ...(sig.args ?? [])];
      const message = buildCeleryMessage({
        task: sig.task,
        id: typeof options['task_id'] === 'string' ? options['task_id'] : randomUUID(),
        args,
        kwargs: sig.kwargs ?? {},
        chain: chain.length > 0 ? chain : null,
        callbacks: Array.isArray(options['link']) ? (options['link'] as CelerySignature[]) : null,
        errbacks: Array.isArray(options['link_error']) ? (options['link_error'] as CelerySignature[]) : null,
        parentId: info.taskId,
        rootId: info.rootId ?? info.taskId,
        queue,
        origin: this.#origin,
      });
      pipeline.lpush(kombuListFor(queue, null), message);
    }
    const replies = await pipeline.exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  /** Errbacks are refused at intake; nothing runs after a failure. */
  async afterFailure(_job: Job, _error: unknown): Promise<void> {}
}

export interface CeleryMessageInput {
  task: string;
  id: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  chain?: CelerySignature[] | null;
  callbacks?: CelerySignature[] | null;
  errbacks?: CelerySignature[] | null;
  parentId?: string | null;
  rootId?: string | null;
  queue: string;
  origin: string;
  eta?: string | null;
}

/** A protocol-2 message in kombu's Redis envelope, as `as_task_v2` + kombu's `_put` write it. */
export function buildCeleryMessage(m: CeleryMessageInput): string {
  const body = JSON.stringify([m.args, m.kwargs, { callbacks: m.callbacks ?? null, errbacks: m.errbacks ?? null, chain: m.chain ?? null, chord: null }]);
  return JSON.stringify({
    body: Buffer.from(body, 'utf8').toString('base64'),
    'content-encoding': 'utf-8',
    'content-type': 'application/json',
    headers: {
      lang: 'py',
      task: m.task,
      id: m.id,
      shadow: null,
      eta: m.eta ?? null,
      expires: null,
      group: null,
      group_index: null,
      retries: 0,
      timelimit: [null, null],
      root_id: m.rootId ?? m.id,
      parent_id: m.parentId ?? null,
      argsrepr: JSON.stringify(m.args).slice(0, 1024),
      kwargsrepr: JSON.stringify(m.kwargs).slice(0, 1024),
      origin: m.origin,
      ignore_result: false,
    },
    properties: {
      correlation_id: m.id,
      reply_to: '',
      delivery_mode: 2,
      delivery_info: { exchange: '', routing_key: m.queue },
      priority: 0,
      body_encoding: 'base64',
      delivery_tag: randomUUID(),
    },
  });
}
