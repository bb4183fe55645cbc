import type { Counter, Gauge, Registry } from 'prom-client';
import { getOrCreateCounter, getOrCreateGauge } from '@taskline/shared/process';

/** The beat's metrics. Names are part of the public contract (alerts use them). */
export class BeatMetrics {
  readonly declared: Gauge;
  readonly active: Gauge;
  readonly ticks: Counter<'schedule'>;
  readonly leader: Gauge;
  readonly reconciles: Counter;
  readonly reconcileErrors: Counter;

  constructor(registry: Registry) {
    this.declared = getOrCreateGauge(registry, {
      name: 'taskline_beat_schedules_declared',
      help: 'Schedules declared in the last valid schedule file this replica loaded.',
    });
    this.active = getOrCreateGauge(registry, {
      name: 'taskline_beat_schedules_active',
      help: 'Beat-owned job schedulers present in Redis (read by every replica).',
    });
    this.ticks = getOrCreateCounter(registry, {
      name: 'taskline_beat_ticks_enqueued_total',
      help: 'Tick jobs created per schedule, from the growth of BullMQ job scheduler iteration counts; counted by the leader only, so sum over replicas is not double.',
      labelNames: ['schedule'],
    });
    this.leader = getOrCreateGauge(registry, {
      name: 'taskline_beat_leader',
      help: '1 while this replica holds the beat leader lease, else 0.',
    });
    this.reconciles = getOrCreateCounter(registry, {
      name: 'taskline_beat_reconciles_total',
      help: 'Reconciles of the schedule file into Redis completed by this replica as leader.',
    });
    this.reconcileErrors = getOrCreateCounter(registry, {
      name: 'taskline_beat_reconcile_errors_total',
      help: 'Reconciles that failed: invalid schedule file, Redis errors, or the lease lost mid-way.',
    });
  }
}
