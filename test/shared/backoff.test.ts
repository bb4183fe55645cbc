import { expect } from 'chai';
import { ConfigError } from '@taskline/shared';
import { DEFAULT_BACKOFF, TASKLINE_BACKOFF_TYPE, encodeBackoff, encodedBackoffDelay, resolveBackoff } from '@taskline/shared/job';
import { ValidationError } from '@taskline/producer';
import { resolveEnqueueOptions, resolveProducerOptions } from '@taskline/producer/internal';
import { defineTasks } from '@taskline/worker';
import { parseScheduleFile } from '@taskline/scheduler';

const fail = (field: string, problem: string): Error => new ConfigError('TEST', field, `${field} ${problem}`);

describe('one backoff shape (no Redis)', function () {
  it('fills the defaults: exponential jitters half of each delay and is capped at 1 h, fixed does not jitter', function () {
    expect(resolveBackoff({ type: 'exponential', delayMs: 200 }, 'backoff', fail)).to.deep.equal({ type: 'exponential', delayMs: 200, maxDelayMs: 3_600_000, jitter: 0.5 });
    expect(resolveBackoff({ type: 'fixed', delayMs: 50 }, 'backoff', fail)).to.deep.equal({ type: 'fixed', delayMs: 50, maxDelayMs: 3_600_000, jitter: 0 });
    expect(() => resolveBackoff({ type: 'linear', delayMs: 1 }, 'backoff', fail)).to.throw(/backoff.type must be "exponential" or "fixed"/);
    expect(() => resolveBackoff({ type: 'fixed', delay: 1 }, 'backoff', fail)).to.throw(/unknown field\(s\) delay/);
    expect(() => resolveBackoff({ type: 'exponential', delayMs: 500, maxDelayMs: 100 }, 'backoff', fail)).to.throw(/maxDelayMs \(100\) is below backoff.delayMs/);
  });

  it('the delays: exponential with equal jitter and a cap; fixed exact; jobs encoded before jitter existed keep theirs', function () {
    const exp = encodeBackoff({ type: 'exponential', delayMs: 100, maxDelayMs: 350, jitter: 0.5 });
    expect(exp.type).to.equal(TASKLINE_BACKOFF_TYPE);
    expect([1, 2, 3, 4].map(n => encodedBackoffDelay(exp, n, () => 1))).to.deep.equal([100, 200, 350, 350]);
    expect([1, 2, 3].map(n => encodedBackoffDelay(exp, n, () => 0))).to.deep.equal([50, 100, 175]);
    const none = encodeBackoff({ type: 'exponential', delayMs: 100, maxDelayMs: 1000, jitter: 0 });
    expect(encodedBackoffDelay(none, 3, () => 0)).to.equal(400);
    const fixed = encodeBackoff({ type: 'fixed', delayMs: 250, maxDelayMs: 3_600_000, jitter: 0 });
    expect([1, 5].map(n => encodedBackoffDelay(fixed, n, () => 0.7))).to.deep.equal([250, 250]);
    const older = { type: TASKLINE_BACKOFF_TYPE, delay: 100, mode: 'exponential' as const, maxDelay: 10_000 };
    expect(encodedBackoffDelay(older, 2, () => 0)).to.equal(100);
  });

  it('a task, an enqueue call and a schedule entry take the same shape', function () {
    const task = defineTasks({ t: { run: () => 1, backoff: { type: 'fixed', delayMs: 50 } } }).byName.get('t');
    expect(task?.backoff).to.deep.equal({ type: 'fixed', delayMs: 50, maxDelayMs: 3_600_000, jitter: 0 });
    expect(defineTasks({ t: { run: () => 1 } }).byName.get('t')?.backoff).to.deep.equal(DEFAULT_BACKOFF);
    expect(() => defineTasks({ t: { run: () => 1, backoff: { type: 'fixed', delayMs: -1 } } })).to.throw(/Task "t": backoff.delayMs must be a whole number/);
    const producer = resolveProducerOptions({ env: {} });
    const enqueued = resolveEnqueueOptions({ backoff: { type: 'exponential', delayMs: 300, maxDelayMs: 5000 } }, producer);
    expect(enqueued.backoff).to.deep.equal({ type: TASKLINE_BACKOFF_TYPE, delay: 300, mode: 'exponential', maxDelay: 5000, jitter: 0.5 });
    expect(() => resolveEnqueueOptions({ backoff: { type: 'fixed', delayMs: 'soon' } }, producer)).to.throw(ValidationError, /options.backoff.delayMs must be/);
    const file = parseScheduleFile(JSON.stringify([{ id: 'a', task: 't', every: '1m', options: { backoff: { type: 'fixed', delayMs: 50 } } }]));
    expect(file.entries[0]?.options.backoff).to.deep.equal(encodeBackoff({ type: 'fixed', delayMs: 50, maxDelayMs: 3_600_000, jitter: 0 }));
  });

  it("BullMQ's own shape is still accepted where it was, and keeps its meaning", function () {
    const producer = resolveProducerOptions({ env: {} });
    expect(resolveEnqueueOptions({ backoff: { type: 'fixed', delay: 250 } }, producer).backoff).to.deep.equal({ type: 'fixed', delay: 250, jitter: 0 });
    expect(resolveEnqueueOptions({ backoff: 100 }, producer).backoff).to.deep.equal({ type: 'fixed', delay: 100, jitter: 0 });
    const file = parseScheduleFile(JSON.stringify([{ id: 'a', task: 't', every: '1m', options: { backoff: { type: 'exponential', delay: 500 } } }]));
    expect(file.entries[0]?.options.backoff).to.deep.equal({ type: 'exponential', delay: 500 });
  });
});
