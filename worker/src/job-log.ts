import type { Logger } from '@taskline/shared';

/**
 * The per-job success line, as Celery prints "Task x succeeded in 0.01s": at `info`, with the
 * task, job id, queue and duration. Skipped without building anything when `info` is off, so
 * LOG_LEVEL=warn keeps the hot path as cheap as before.
 */
export function logJobSucceeded(logger: Logger, task: string, jobId: string, queue: string, durationMs: number): void {
  if (!logger.isInfoEnabled()) return;
  logger.info(`Task ${task} succeeded in ${(durationMs / 1000).toFixed(3)}s`, { task, jobId, queue, durationMs });
}
