import { expect } from 'chai';
import { celeryTask, createWorker, defineTasks, type TasklineWorker } from '@taskline/worker';
import { AclServers } from '../ops/acl-fixture.js';
import { readSecret } from '../ops/ops-helpers.js';
import { EXAMPLE_DIR, celeryMissing, python } from './celery-helpers.js';

/**
 * The Python side as the least-privilege `celery-client` user, the bridge as `worker` (ops/acl):
 * the round trip works with nothing refused, and celery-client can do nothing else.
 */
describe('Celery bridge: least-privilege ACL users', function () {
  this.timeout(90_000);
  let acl: AclServers;
  let worker: TasklineWorker;
  let pythonEnv: Record<string, string>;
  let password: string;

  before(async function () {
    const missing = celeryMissing();
    if (missing) {
      console.warn(`      skipped: ${missing}`);
      this.skip();
    }
    acl = await AclServers.start({ makeSecretsArgs: ['--celery-queues', 'celery,taskline'] });
    const loaded = await acl.runBin('worker', ['scripts', 'load'], 'loader');
    expect(loaded.code, loaded.stdout + loaded.stderr).to.equal(0);
    password = await readSecret(acl.secretsDir, 'redis_celery-client_password');
    const url = (port: number) => `rediss://celery-client:${password}@127.0.0.1:${port}/0`;
    pythonEnv = {
      CELERY_BROKER_URL: url(acl.broker.port),
      CELERY_RESULT_BACKEND: url(acl.backend.port),
      CELERY_BROKER_CA_FILE: acl.broker.certs?.caFile ?? '',
      CELERY_BACKEND_CA_FILE: acl.backend.certs?.caFile ?? '',
      PYTHONPATH: EXAMPLE_DIR,
      PYTHONDONTWRITEBYTECODE: '1',
    };
    worker = createWorker({
      tasks: defineTasks({
        'tasks.add': { run: celeryTask((x: number, y: number) => x + y) },
        'tasks.fail': {
          run: celeryTask((message: string) => {
            throw new Error(message);
          }),
        },
      }),
      prefix: acl.prefix,
      connection: acl.connectionAs('worker'),
      env: {},
      celeryQueues: ['taskline'],
      celeryFallbackQueue: 'celery',
    });
    await acl.resetAclLogs();
    await worker.start();
  });

  after(async () => {
    await worker?.close();
    await acl?.stop();
  });

  it('round trip, failure, chain and fallback with nothing refused (ACL LOG empty)', async () => {
    expect(await python({ pythonEnv }, ['add', '2', '3'])).to.have.property('result', 5);
    expect(await python({ pythonEnv }, ['fail', 'no'])).to.deep.include({ raised: 'Error', message: 'no' });
    expect(await python({ pythonEnv }, ['chain'])).to.deep.equal({ result: 113 });
    // No Celery worker here: the handed-back message waits on the fallback queue.
    await python({ pythonEnv }, ['send', 'tasks.record', '1', 'taskline', 'fb']);
    const deadline = Date.now() + 10_000;
    while ((await acl.admin(acl.broker, 'LLEN', 'celery')) !== '1' && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
    expect(await acl.admin(acl.broker, 'LLEN', 'celery')).to.equal('1');
    expect(await acl.aclLogs()).to.equal('');
  });

  it('celery-client cannot read messages, touch taskline keys or forge a Celery result', async () => {
    const as = (server: typeof acl.broker, ...args: string[]) => server.cli('--user', 'celery-client', '--pass', password, ...args).catch((err: Error) => err.message);
    const refused = [
      await as(acl.broker, 'LRANGE', 'taskline', '0', '-1'),
      await as(acl.broker, 'RPOP', 'celery'),
      await as(acl.broker, 'LPUSH', 'some-other-list', 'x'),
      await as(acl.broker, 'HGETALL', `${acl.prefix}:default:meta`),
      await as(acl.broker, 'LPUSH', `${acl.prefix}::celery:dead-letter`, 'x'),
      await as(acl.backend, 'SET', 'celery-task-meta-forged', '{"status":"SUCCESS"}'),
      await as(acl.backend, 'PUBLISH', 'celery-task-meta-forged', '{"status":"SUCCESS"}'),
      await as(acl.backend, 'HGETALL', `${acl.prefix}:result:x`),
    ];
    for (const reply of refused) expect(reply).to.match(/NOPERM/);
  });
});
