import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './ops-helpers.js';

// The README's two commands (scripts/demo.sh, scripts/test.sh) on a machine without redis-server:
// installed with apt-get when they can (root), otherwise one sentence naming the command to run.
// Run with a PATH holding only what the check needs, so this machine's Redis stays out of sight.

const isRoot = process.getuid?.() === 0;

function ensureRedis(pathDir: string): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync('/bin/bash', ['--norc', '--noprofile', '-c', 'source scripts/ensure-redis.sh; ensure_redis; echo "ready to go on"', 'scripts/test.sh'], {
    cwd: ROOT,
    env: { PATH: pathDir },
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('ops: the README commands on a fresh machine (no redis-server)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-fresh-'));
    for (const tool of ['id', 'basename']) {
      const found = spawnSync('/bin/bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      symlinkSync(found, path.join(dir, tool));
    }
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('both scripts run the check before anything else needs Redis', () => {
    for (const script of ['scripts/demo.sh', 'scripts/test.sh']) {
      const text = readFileSync(path.join(ROOT, script), 'utf8');
      expect(text, script).to.match(/source scripts\/ensure-redis\.sh\nensure_redis\n/);
      expect(text.indexOf('ensure_redis\n'), script).to.be.below(text.indexOf('exec '));
    }
  });

  it('without apt-get (or root): stops with one sentence naming the command to run', () => {
    const r = ensureRedis(dir);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.not.include('ready to go on');
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^test.sh: redis-server redis-tools openssl not found .*run: sudo apt-get install -y redis-server redis-tools openssl.* then run scripts\/test.sh again\.$/m);
  });

  it('as root with apt-get: installs redis-server, redis-tools and openssl, then goes on', function () {
    if (!isRoot) this.skip();
    const calls = path.join(dir, 'apt-calls');
    // A stand-in apt-get that records what it was asked (the real one would install for real).
    writeFileSync(path.join(dir, 'apt-get'), `#!/bin/bash\necho "$*" >> ${calls}\n`);
    chmodSync(path.join(dir, 'apt-get'), 0o755);
    const r = ensureRedis(dir);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('Installing redis-server redis-tools openssl with apt-get').and.include('ready to go on');
    expect(readFileSync(calls, 'utf8').trim().split('\n')).to.deep.equal(['update -qq', 'install -y -qq redis-server redis-tools openssl']);
  });
});
