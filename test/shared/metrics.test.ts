import { expect } from 'chai';
import { createMetricsRegistry } from '@taskline/shared';

describe('metrics registry (no Redis)', function () {
  it("keeps prom-client's stock names for Node's default metrics (process_*, nodejs_*), as stock dashboards expect", async function () {
    const text = await createMetricsRegistry().metrics();
    expect(text).to.match(/^process_cpu_seconds_total /m);
    expect(text).to.match(/^process_resident_memory_bytes /m);
    expect(text).to.match(/^nodejs_eventloop_lag_seconds /m);
    expect(text).to.match(/^nodejs_heap_size_used_bytes /m);
    expect(text).to.not.include('taskline_process_');
    expect(text).to.not.include('taskline_nodejs_');
  });

  it('leaves them out when asked', async function () {
    expect(await createMetricsRegistry({ defaultMetrics: false }).metrics()).to.not.match(/^(process|nodejs)_/m);
  });
});
