import { createHash } from 'node:crypto';
import { isTaskName } from '@taskline/shared';

/**
 * A Celery task message as kombu's Redis transport stores it (kombu/transport/redis.py `_put`:
 * `LPUSH <queue>[\x06\x16<priority step>] <json envelope>`), in Celery's protocol 2
 * (celery/app/amqp.py `as_task_v2`): the envelope's `body` is base64 of the JSON
 * `[args, kwargs, embed]`, and the task's fields are in `headers`.
 */
export interface CeleryTaskMessage {
  /** The Celery task id (`headers.id`). */
  id: string;
  /** The Celery task name (`proj.tasks.add`): the taskline task it runs as. */
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: CeleryEmbed;
  /** When the task is due (ms since the epoch), from `eta` (Celery turns `countdown` into it). */
  etaMs: number | null;
  /** After this (ms since the epoch) the task must not start: it is REVOKED instead. */
  expiresMs: number | null;
  /** Retries Celery already made (`task.retry()` re-sends with `retries + 1`). */
  retries: number;
  /** `timelimit: [hard, soft]` in seconds, as ms. */
  hardLimitMs: number | null;
  softLimitMs: number | null;
  ignoreResult: boolean;
  rootId: string | null;
  parentId: string | null;
  group: string | null;
  /** kombu's 0 (first) to 9 (last), when the message carries one. */
  priority: number | null;
}

/** The canvas parts of a protocol-2 body: signatures (plain objects) Celery would send after the task. */
export interface CeleryEmbed {
  callbacks: CelerySignature[];
  errbacks: CelerySignature[];
  chain: CelerySignature[];
  chord: CelerySignature | null;
}

/** A serialised Celery signature (`celery.canvas.Signature` as a dict). */
export interface CelerySignature {
  task: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  options?: Record<string, unknown>;
  immutable?: boolean;
  subtask_type?: string | null;
  [key: string]: unknown;
}

/** Why a message cannot be run; the code is the dead-letter reason and the metric label. */
export type CeleryRefusalCode =
  | 'too-large'
  | 'not-json'
  | 'not-an-envelope'
  | 'unknown-body-encoding'
  | 'bad-base64'
  | 'unknown-content-type'
  | 'bad-body-json'
  | 'protocol-v1'
  | 'bad-body'
  | 'bad-headers';

export interface CeleryRefusal {
  code: CeleryRefusalCode;
  /** One sentence naming the cause and the fix (never the payload). */
  reason: string;
}

export type ParsedCeleryMessage = { ok: true; message: CeleryTaskMessage } | { ok: false; refusal: CeleryRefusal };

// Python's base64.b64encode output: the standard alphabet, padded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_ID_LENGTH = 255;
/** Largest message read (the envelope as stored): a bigger one is dead-lettered unparsed. */
export const MAX_CELERY_MESSAGE_BYTES = 16 * 1024 * 1024;

function refuse(code: CeleryRefusalCode, reason: string): ParsedCeleryMessage {
  return { ok: false, refusal: { code, reason } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Parses one raw list entry; anything that is not a protocol-2 JSON task message is refused with a reason. */
export function parseCeleryMessage(raw: string): ParsedCeleryMessage {
  if (raw.length > MAX_CELERY_MESSAGE_BYTES) {
    return refuse('too-large', `The message is larger than ${MAX_CELERY_MESSAGE_BYTES} bytes; pass large data by reference (a URL or key), not in the task's arguments.`);
  }
  let envelope: unknown;
  try {
    envelope = JSON.parse(raw);
  } catch {
    return refuse('not-json', 'The list entry is not JSON; only kombu-encoded Celery messages belong on a Celery queue.');
  }
  if (!isObject(envelope) || typeof envelope['body'] !== 'string' || !isObject(envelope['properties'])) {
    return refuse('not-an-envelope', 'The entry is JSON but not a kombu envelope (body, properties, headers); send tasks with Celery.');
  }
  const properties = envelope['properties'];
  const encoding = properties['body_encoding'] ?? 'base64';
  let bodyText: string;
  if (encoding === 'base64') {
    const body = envelope['body'];
    if (!BASE64.test(body)) return refuse('bad-base64', 'The message body is not valid base64 although body_encoding says base64.');
    bodyText = Buffer.from(body, 'base64').toString('utf8');
  } else {
    return refuse('unknown-body-encoding', `body_encoding ${JSON.stringify(encoding).slice(0, 40)} is not kombu's base64; keep the Redis transport's default body_encoding.`);
  }
  const contentType = envelope['content-type'];
  if (contentType !== 'application/json') {
    return refuse(
      'unknown-content-type',
      `Content type ${JSON.stringify(contentType).slice(0, 60)} cannot be read; set task_serializer = "json" for tasks routed to taskline (pickle is never accepted).`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return refuse('bad-body-json', 'The message body is not JSON although its content type says application/json.');
  }
  const headers = envelope['headers'];
  if (!isObject(headers) || headers['task'] === undefined) {
    if (isObject(body) && 'task' in body) {
      return refuse('protocol-v1', 'This is a Celery protocol 1 message; taskline reads protocol 2 only: set task_protocol = 2 (the default since Celery 4).');
    }
    return refuse('bad-headers', 'The message has no "task" header; it was not sent by Celery protocol 2.');
  }
  if (!Array.isArray(body) || body.length !== 3 || !Array.isArray(body[0]) || !isObject(body[1]) || !(body[2] === null || isObject(body[2]))) {
    return refuse('bad-body', 'The body is not Celery protocol 2 [args, kwargs, embed].');
  }
  return readHeaders(headers, properties, body as [unknown[], Record<string, unknown>, Record<string, unknown> | null]);
}

function readHeaders(headers: Record<string, unknown>, properties: Record<string, unknown>, body: [unknown[], Record<string, unknown>, Record<string, unknown> | null]): ParsedCeleryMessage {
  const { task, id } = headers;
  if (!isTaskName(task)) return refuse('bad-headers', `Task name ${JSON.stringify(task).slice(0, 80)} cannot be a taskline task; use letters, digits, "_", ".", ":" or "-".`);
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) return refuse('bad-headers', 'The "id" header is missing or not a task id string.');
  const eta = isoTime(headers['eta']);
  const expires = isoTime(headers['expires']);
  if (eta === undefined) return refuse('bad-headers', 'The "eta" header is not an ISO 8601 time.');
  if (expires === undefined) return refuse('bad-headers', 'The "expires" header is not an ISO 8601 time.');
  const limits = Array.isArray(headers['timelimit']) ? headers['timelimit'] : [];
  const embed = body[2] ?? {};
  const priority = properties['priority'];
  return {
    ok: true,
    message: {
      id,
      task,
      args: body[0],
      kwargs: body[1],
      embed: {
        callbacks: signatures(embed['callbacks']),
        errbacks: signatures(embed['errbacks']),
        chain: signatures(embed['chain']),
        chord: isObject(embed['chord']) ? (embed['chord'] as CelerySignature) : null,
      },
      etaMs: eta,
      expiresMs: expires,
      retries: typeof headers['retries'] === 'number' && Number.isInteger(headers['retries']) && headers['retries'] > 0 ? headers['retries'] : 0,
      hardLimitMs: seconds(limits[0]),
      softLimitMs: seconds(limits[1]),
      ignoreResult: headers['ignore_result'] === true,
      rootId: stringOrNull(headers['root_id']),
      parentId: stringOrNull(headers['parent_id']),
      group: stringOrNull(headers['group']),
      priority: typeof priority === 'number' && Number.isFinite(priority) ? Math.max(0, Math.min(9, Math.trunc(priority))) : null,
    },
  };
}

function signatures(value: unknown): CelerySignature[] {
  return Array.isArray(value) ? value.filter((s): s is CelerySignature => isObject(s) && typeof s['task'] === 'string') : [];
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function seconds(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.ceil(value * 1000) : null;
}

/** `null` for no time, `undefined` for one that cannot be read. Python's isoformat has microseconds and, naive, means UTC. */
function isoTime(value: unknown): number | null | undefined {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/.exec(value);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]!.replace(' ', 'T')}.${(m[2] ?? '0').padEnd(3, '0').slice(0, 3)}${m[3] ?? 'Z'}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The taskline job id of a Celery task: the Celery id itself when it is a UUID (Celery's own
 * ids are), else a UUID-shaped digest of it. The same message always makes the same id, so a
 * redelivered message can only find the job it already made.
 */
export function jobIdFor(celeryId: string): string {
  if (UUID.test(celeryId)) return celeryId;
  const h = createHash('sha256').update(`celery:${celeryId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** kombu's list for a priority: the queue itself for step 0, else `<queue>\x06\x16<step>` (steps 0, 3, 6, 9). */
export const KOMBU_PRIORITY_STEPS = [0, 3, 6, 9] as const;
export const KOMBU_SEP = '\x06\x16';

export function kombuListFor(queue: string, priority: number | null): string {
  const p = priority ?? 0;
  let step = 0;
  for (const s of KOMBU_PRIORITY_STEPS) if (s <= p) step = s;
  return step === 0 ? queue : `${queue}${KOMBU_SEP}${step}`;
}

/** Every list kombu may hold a queue's messages in, first served first (as kombu's BRPOP orders them). */
export function kombuListsOf(queue: string): string[] {
  return KOMBU_PRIORITY_STEPS.map(step => kombuListFor(queue, step));
}
