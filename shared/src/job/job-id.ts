import { NAME_RULES } from '../names.js';

/**
 * The shapes a taskline job id takes. An id a caller hands in (HTTP path, CLI argument) is
 * checked against them before it reaches Redis: BullMQ keeps a job at `<prefix>:<queue>:<id>`,
 * beside the queue's own keys (`events`, `meta`, `id`, `repeat`, `<id>:logs`...), so an
 * arbitrary string could name one of those and be read as a job.
 */
const JOB_ID_SHAPES: readonly RegExp[] = [
  // every enqueue (crypto.randomUUID; a keyed one is deduplicated by the broker onto its first job's id)
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  // a beat tick: BullMQ job scheduler "beat:<schedule id>" at <due time in ms>
  new RegExp(`^repeat:beat:${NAME_RULES.scheduleId.source}:\\d{1,16}$`),
  // BullMQ's own counter ids
  /^\d{1,16}$/,
];

/** True when `id` has the shape of a job id taskline makes; anything else cannot name a job. */
export function isJobId(id: unknown): boolean {
  return typeof id === 'string' && JOB_ID_SHAPES.some(shape => shape.test(id));
}
