import { expect } from 'chai';
import { celeryTask, defineTasks, type TasklineWorker } from '@taskline/worker';
import { python, startBridgeWorker, startCeleryServersOrSkip, type CeleryServers } from './celery-helpers.js';

/** Messages the bridge cannot read are kept with the reason, counted, and the intake goes on. */
describe('Celery bridge: malformed messages', function () {
  this.timeout(90_000);
  let servers: CeleryServers;
  let worker: TasklineWorker;

  before(async function () {
    servers = await startCeleryServersOrSkip(this);
    worker = await startBridgeWorker(servers, { tasks: defineTasks({ 'tasks.add': { run: celeryTask((x: number, y: number) => x + y) } }) });
  });

  after(async () => {
    await worker?.close();
    await servers?.stop();
  });

  it('bad base64, bad JSON, protocol 1 and pickle go to the dead-letter list with their reason; the next task still runs', async () => {
    const envelope = (body: string, contentType = 'application/json') =>
      JSON.stringify({ body, 'content-type': contentType, 'content-encoding': 'utf-8', headers: { task: 'tasks.add', id: 'x' }, properties: { body_encoding: 'base64', priority: 0 } });
    const broker = servers.pair.broker;
    await broker.cli('LPUSH', 'taskline', 'this is not json {');
    await broker.cli('LPUSH', 'taskline', envelope('!!! not base64 !!!'));
    await broker.cli('LPUSH', 'taskline', envelope(Buffer.from('[[1, 2], {}, {').toString('base64')));
    await python(servers, ['send-v1']);
    await python(servers, ['send-pickle']);

    expect(await python(servers, ['add', '2', '3'])).to.have.property('result', 5);

    const key = `${servers.prefix}::celery:dead-letter`;
    const letters = (JSON.parse(`[${(await broker.cli('--no-raw', 'LRANGE', key, '0', '-1')).split('\n').map(l => l.replace(/^\d+\) /, '')).join(',')}]`) as string[]).map(
      l => JSON.parse(l) as { code: string; reason: string; queue: string; message: string },
    );
    expect(letters.map(l => l.code).sort()).to.deep.equal(['bad-base64', 'bad-body-json', 'not-json', 'protocol-v1', 'unknown-content-type']);
    for (const letter of letters) {
      expect(letter.queue).to.equal('taskline');
      expect(letter.reason).to.match(/\.$/);
      expect(letter.message.length).to.be.greaterThan(0);
    }
    expect(letters.find(l => l.code === 'protocol-v1')?.reason).to.include('task_protocol = 2');
    expect(letters.find(l => l.code === 'unknown-content-type')?.reason).to.include('pickle');
    const metric = (await worker.registry.getSingleMetricAsString('taskline_celery_dead_letters_total')) ?? '';
    const counted = metric.split('\n').filter(l => l.startsWith('taskline_celery_dead_letters_total{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    expect(counted, metric).to.equal(5);
    expect(metric).to.include('reason="protocol-v1"');
    expect(await broker.cli('LLEN', 'taskline')).to.equal('0');
  });
});
