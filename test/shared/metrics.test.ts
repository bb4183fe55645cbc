import { expect } from 'chai';
import { createMetricsRegistry } from '@taskline/shared';

describe('metrics registry (no Redis)', function () {
  it("names Node's default metrics with one taskline_ prefix, as Prometheus conventions want", async function () {
    const text = await createMetricsRegistry().metrics();
    expect(text).to.match(/^taskline_process_cpu_seconds_total /m);
    expect(text).to.match(/^taskline_nodejs_eventloop_lag_seconds /m);
    expect(text).to.not.include('taskline_process_process_');
    expect(text).to.not.include('taskline_process_nodejs_');
  });

  it('leaves them out when asked', async function () {
    expect(await createMetricsRegistry({ defaultMetrics: false }).metrics()).to.not.include('taskline_process_');
  });
});
