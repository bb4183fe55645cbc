import { expect } from 'chai';
import { CommandBatcher } from '@taskline/shared/job';

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

describe('CommandBatcher (no Redis)', function () {
  it('sends the calls of one event-loop turn as one batch and answers each in order', async function () {
    const batches: number[][] = [];
    const batcher = new CommandBatcher<number, string>(async items => {
      batches.push(items);
      return items.map(n => `answer ${n}`);
    });
    const answers = await Promise.all([1, 2, 3].map(n => batcher.submit(n)));
    expect(answers).to.deep.equal(['answer 1', 'answer 2', 'answer 3']);
    expect(batches).to.deep.equal([[1, 2, 3]]);
  });

  it('calls in later turns go in later batches', async function () {
    const batches: string[][] = [];
    const batcher = new CommandBatcher<string, string>(async items => {
      batches.push(items);
      return items;
    });
    const first = batcher.submit('a');
    await tick();
    const second = batcher.submit('b');
    expect(await Promise.all([first, second])).to.deep.equal(['a', 'b']);
    expect(batches).to.deep.equal([['a'], ['b']]);
  });

  it('sends a full batch at once, without waiting for the turn to end', async function () {
    const batches: number[][] = [];
    const batcher = new CommandBatcher<number, number>(async items => {
      batches.push(items);
      return items;
    }, 2);
    const pending = [1, 2, 3, 4, 5].map(n => batcher.submit(n));
    // Two full batches left synchronously; the fifth item waits for the end of the turn.
    expect(batches).to.deep.equal([[1, 2], [3, 4]]);
    expect(await Promise.all(pending)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(batches).to.deep.equal([[1, 2], [3, 4], [5]]);
  });

  it('a failed send fails every call of that batch, and only that batch', async function () {
    let sends = 0;
    const batcher = new CommandBatcher<number, number>(async items => {
      sends += 1;
      if (sends === 1) throw new Error('Redis went away');
      return items.map(n => n * 10);
    });
    const failed = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    expect(failed.map(r => r.status)).to.deep.equal(['rejected', 'rejected']);
    expect((failed[0] as PromiseRejectedResult).reason).to.have.property('message', 'Redis went away');
    expect(await batcher.submit(3)).to.equal(30);
  });
});
