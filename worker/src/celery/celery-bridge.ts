import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Registry } from 'prom-client';
import type { TasklineConnections } from '@taskline/shared';
import type { ResultBackend } from '@taskline/shared/job';
import type { ResolvedWorkerOptions } from '../options.js';
import { CeleryCanvas } from './celery-canvas.js';
import { CeleryIntake } from './celery-intake.js';
import { CeleryJobBridge } from './celery-job-bridge.js';
import { CeleryResultWriter } from './celery-results.js';

export interface CeleryBridge {
  /** The job runner's hooks for jobs that came from Celery. */
  bridge: CeleryJobBridge;
  /** The consumer of the Celery queues: start it once the worker consumes, close it with the worker. */
  intake: CeleryIntake;
}

/**
 * The Celery bridge of one worker (`celeryQueues` set): Celery's result records go to the
 * worker's result backend (the Python app's `result_backend`), its messages come from the
 * worker's broker (the app's `broker_url`).
 */
export function createCeleryBridge(deps: {
  options: ResolvedWorkerOptions;
  connections: TasklineConnections;
  results: ResultBackend;
  registry: Registry;
  queue(name: string): Queue;
}): CeleryBridge {
  const { options: o, connections } = deps;
  const writer = new CeleryResultWriter(() => connections.backend.client(), o.resultExpiresSeconds, hostname());
  const canvas = new CeleryCanvas({ broker: () => connections.broker.client(), logger: o.logger });
  const bridge = new CeleryJobBridge({ results: deps.results, writer, canvas, logger: o.logger });
  const intake = new CeleryIntake({
    queues: o.celeryQueues,
    fallbackQueue: o.celeryFallbackQueue,
    tasks: o.tasks,
    routes: o.routes,
    broker: connections.broker,
    prefix: o.prefix,
    results: deps.results,
    writer,
    queue: deps.queue,
    registry: deps.registry,
    logger: o.logger,
    // A consumer silent for as long as a job's lock lasts is dead, as a worker holding a job would be.
    deadAfterMs: o.lockDurationMs,
  });
  return { bridge, intake };
}
