/**
 * The beat's contribution to the script catalog: `taskline-<any bin> scripts load` imports this
 * subpath (`@taskline/scheduler/scripts`) when the scheduler is installed beside it, so the loader
 * preloads the lease scripts without the worker or the producer depending on the scheduler.
 */
import type { ScriptContribution } from '@taskline/shared/ops';
import { BEAT_LEASE_SCRIPTS } from './lease-scripts.js';

export const TASKLINE_SCRIPTS: ScriptContribution = { package: '@taskline/scheduler', broker: BEAT_LEASE_SCRIPTS, backend: [] };
