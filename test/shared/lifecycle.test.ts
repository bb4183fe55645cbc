import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { TimeoutError, createSilentLogger } from '@taskline/shared';
import { closeInOrder, withTimeout, type CloseContext } from '@taskline/shared/process';

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));
const never = (): Promise<never> => new Promise<never>(() => undefined);

describe('lifecycle kit (no Redis)', function () {
  describe('withTimeout', function () {
    it('settles as the work does when it is in time', async function () {
      expect(await withTimeout(Promise.resolve(7), 50, 'work')).to.equal(7);
      const err = await withTimeout(Promise.reject(new Error('boom')), 50, 'work').catch((e: unknown) => e);
      expect((err as Error).message).to.equal('boom');
    });

    it('rejects with a coded TimeoutError naming the work, or the error given, when it is late', async function () {
      const err = await withTimeout(never(), 20, 'the lease command').catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TimeoutError);
      expect((err as TimeoutError).code).to.equal('TIMEOUT');
      expect((err as Error).message).to.equal('the lease command timed out after 20 ms');
      const own = await withTimeout(never(), 20, () => new RangeError('late')).catch((e: unknown) => e);
      expect(own).to.be.instanceOf(RangeError);
    });

    it('a late rejection of the work is not an unhandled rejection', async function () {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const late = sleep(40).then(() => Promise.reject(new Error('late failure')));
        await withTimeout(late, 10, 'work').catch(() => undefined);
        await sleep(60);
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });
  });

  describe('closeInOrder', function () {
    it('runs steps in order, groups in parallel, and every step even after one failed', async function () {
      const events: string[] = [];
      const step = (name: string, ms: number, fail = false) => ({
        name,
        close: async () => {
          events.push(`${name}:start`);
          await sleep(ms);
          events.push(`${name}:end`);
          if (fail) throw new Error(`${name} broke`);
        },
      });
      const report = await closeInOrder([step('a', 5, true), [step('b', 30), step('c', 5)], step('d', 1)], 1000, { logger: createSilentLogger() });
      expect(events).to.deep.equal(['a:start', 'a:end', 'b:start', 'c:start', 'c:end', 'b:end', 'd:start', 'd:end']);
      expect(report).to.deep.equal({ ok: false, failed: ['a'], overran: [] });
    });

    it('ends at the deadline whatever hangs: the signal aborts and later steps still run', async function () {
      const started = performance.now();
      let aborted = false;
      let cut = false;
      const report = await closeInOrder(
        [
          {
            name: 'hangs',
            close: (ctx: CloseContext) => {
              ctx.signal.addEventListener('abort', () => (aborted = true));
              return never();
            },
          },
          { name: 'cut sockets', close: () => void (cut = true) },
        ],
        50,
      );
      const took = performance.now() - started;
      expect(took).to.be.below(500);
      expect(aborted, 'the step was told its time was up').to.equal(true);
      expect(cut, 'the step after it still ran').to.equal(true);
      expect(report.overran).to.deep.equal(['hangs']);
      expect(report.ok).to.equal(false);
    });

    it('shares one deadline: each step sees the time left, not a full grace', async function () {
      const left: number[] = [];
      await closeInOrder(
        [
          { name: 'first', close: async (ctx: CloseContext) => { left.push(ctx.remainingMs()); await sleep(60); } },
          { name: 'second', close: (ctx: CloseContext) => void left.push(ctx.remainingMs()) },
        ],
        200,
      );
      expect(left[0]).to.be.within(150, 200);
      expect(left[1]).to.be.below(150);
    });

    it('a force signal ends the grace at once', async function () {
      const force = new AbortController();
      setTimeout(() => force.abort('second signal'), 20);
      const started = performance.now();
      const report = await closeInOrder([{ name: 'drain', close: never }], 10_000, { force: force.signal });
      expect(performance.now() - started).to.be.below(1000);
      expect(report.overran).to.deep.equal(['drain']);
    });
  });

  describe('runCli', function () {
    let dir: string;
    before(function () {
      dir = mkdtempSync(join(tmpdir(), 'taskline-runcli-'));
    });
    after(function () {
      rmSync(dir, { recursive: true, force: true });
    });

    // A bin of a few lines. Signal handlers hold no handle: a bin that waits for one keeps a timer.
    function bin(body: string): string {
      const internal = fileURLToPath(new URL('../../shared/dist/process/index.js', import.meta.url));
      const file = join(dir, `bin-${Math.random().toString(36).slice(2)}.mjs`);
      writeFileSync(file, `import { runCli, aborted } from ${JSON.stringify(internal)};\n${body}\n`);
      return file;
    }

    function run(file: string, signals: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return new Promise(resolve => {
        const child = spawn(process.execPath, [file], { env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json' } });
        let stdout = '';
        let stderr = '';
        let sent = 0;
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          // The bin prints "waiting" each time it is ready for the next signal.
          const ready = stdout.split('waiting').length - 1;
          while (sent < Math.min(ready, signals)) {
            sent += 1;
            child.kill('SIGTERM');
          }
        });
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.once('exit', code => resolve({ code, stdout, stderr }));
      });
    }

    it('first signal: graceful stop, exit code from main', async function () {
      const file = bin(`await runCli(async (argv, cli) => { const alive = setInterval(() => {}, 1000); console.log('waiting'); console.log('stopped by', await aborted(cli.stop)); clearInterval(alive); return 0; }, { name: 'demo' });`);
      const result = await run(file, 1);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include('stopped by SIGTERM');
    });

    it('second signal: force, and the process exits even if main never returns', async function () {
      const file = bin(
        `await runCli(async (argv, cli) => { setInterval(() => {}, 1000); console.log('waiting'); await aborted(cli.stop); console.log('waiting'); await aborted(cli.force); console.log('forced'); await new Promise(() => {}); }, { name: 'demo', forceExitMs: 200 });`,
      );
      const result = await run(file, 2);
      expect(result.stdout).to.include('forced');
      expect(result.code).to.equal(1);
      expect(result.stderr).to.include('demo: did not stop within 200 ms of the second signal');
    });

    it('an error from main is one line with the bin name, exit code 1 (2 for configuration)', async function () {
      const plain = await run(bin(`await runCli(async () => { throw new Error('no such file'); }, { name: 'demo' });`), 0);
      expect(plain.code).to.equal(1);
      expect(plain.stderr.trim()).to.equal('demo: Error: no such file');
      const shared = fileURLToPath(new URL('../../shared/dist/index.js', import.meta.url));
      const config = await run(
        bin(`const { ConfigError } = await import(${JSON.stringify(shared)});\nawait runCli(async () => { throw new ConfigError('CONFIG_X', 'X', 'X is wrong; fix it.'); }, { name: 'demo' });`),
        0,
      );
      expect(config.code).to.equal(2);
      expect(config.stderr.trim()).to.equal('demo: X is wrong; fix it.');
    });

    it('an uncaught exception is logged and ends the process non-zero; a stray rejection only when asked', async function () {
      const crash = await run(bin(`await runCli(async () => { setTimeout(() => { throw new Error('bug in a callback'); }, 10); await new Promise(r => setTimeout(r, 5000)); return 0; }, { name: 'demo' });`), 0);
      expect(crash.code).to.equal(1);
      expect(crash.stderr).to.include('Uncaught exception; exiting').and.include('bug in a callback');
      const stray = await run(
        bin(`await runCli(async () => { void Promise.reject(new Error('stray')); await new Promise(r => setTimeout(r, 100)); return 0; }, { name: 'demo', unhandledRejection: 'log' });`),
        0,
      );
      expect(stray.code).to.equal(0);
      expect(stray.stderr).to.include('Unhandled promise rejection (ignored)').and.include('stray');
      const fatal = await run(bin(`await runCli(async () => { void Promise.reject(new Error('stray')); await new Promise(r => setTimeout(r, 100)); return 0; }, { name: 'demo' });`), 0);
      expect(fatal.code).to.equal(1);
    });
  });
});
