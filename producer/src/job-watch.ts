import { isTerminalState, type JobResultRecord } from '@taskline/shared';
import { type ResultBackend } from '@taskline/shared/job';
import { JobNotFoundError } from './errors.js';

/** One change of a watched job; the last one (`final: true`) carries the final record. */
export interface JobWatchEvent {
  state: JobResultRecord['state'];
  progress?: unknown;
  record?: JobResultRecord;
  final: boolean;
}

/**
 * The job's changes as they happen: first its current state (`current`), then every state and
 * progress change from the result backend, ending with the final record. Stopping the iteration
 * early (break, return) ends the wait and its subscription.
 */
export async function* watchJob(
  deps: { current: () => Promise<JobResultRecord | null>; results: ResultBackend },
  id: string,
  options: { timeoutMs?: number; signal?: AbortSignal },
): AsyncGenerator<JobWatchEvent> {
  const current = await deps.current();
  if (!current) throw new JobNotFoundError(id, ' in the result backend or on the broker');
  yield { state: current.state, ...(current.progress !== undefined ? { progress: current.progress } : {}), record: current, final: isTerminalState(current.state) };
  if (isTerminalState(current.state)) return;
  const pending: JobWatchEvent[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  // Stopping the iteration early (break, return) ends the wait and its subscription.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;
  const push = (event: JobWatchEvent): void => {
    pending.push(event);
    wake?.();
  };
  const done = deps.results
    .waitFor(id, {
      timeoutMs: options.timeoutMs ?? 3_600_000,
      signal,
      onEvent: event => {
        if (!isTerminalState(event.state)) push({ ...event, final: false });
      },
    })
    .then(
      record => push({ state: record.state, ...(record.progress !== undefined ? { progress: record.progress } : {}), record, final: true }),
      () => undefined,
    )
    .finally(() => {
      ended = true;
      wake?.();
    });
  try {
    for (;;) {
      const event = pending.shift();
      if (event) {
        yield event;
        if (event.final) return;
        continue;
      }
      if (ended) return;
      await new Promise<void>(resolve => (wake = resolve));
      wake = null;
    }
  } finally {
    stop.abort();
    await done;
  }
}
