import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './ops-helpers.js';

// The commands the docs show, run as written. A fenced ```sh block right after
// `<!-- doc-test -->` (optionally `<!-- doc-test expect="regex" … -->`, matched against its
// output) is run with bash in a fresh temporary directory holding a copy of certs/*.sh, with the
// bins on the PATH and no Redis or taskline settings. Only safe commands may be marked: `--version`
// and `--help` of the bins, and the certificate scripts (which write into the temporary directory).

interface Snippet {
  file: string;
  line: number;
  script: string;
  expects: RegExp[];
}

const DOCS = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`), 'certs/README.md', 'compose/README.md'];
const MARKER = /^<!-- doc-test((?:\s+expect="[^"]*")*)\s*-->\s*$/;

function snippets(): Snippet[] {
  const found: Snippet[] = [];
  for (const file of DOCS.filter(f => existsSync(path.join(ROOT, f)))) {
    const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      const marker = MARKER.exec(line.trim());
      if (!marker) return;
      if (lines[i + 1]?.trim() !== '```sh') throw new Error(`${file}:${i + 1}: a doc-test marker must be followed by a \`\`\`sh block`);
      const end = lines.findIndex((l, j) => j > i + 1 && l.trim() === '```');
      if (end < 0) throw new Error(`${file}:${i + 1}: unterminated block`);
      const expects = [...(marker[1] ?? '').matchAll(/expect="([^"]*)"/g)].map(m => new RegExp(m[1] ?? '', 'm'));
      found.push({ file, line: i + 1, script: lines.slice(i + 2, end).join('\n'), expects });
    });
  }
  return found;
}

/** The commands a marked block may run: nothing that connects, listens or writes outside its directory. */
const SAFE = [/^taskline-(worker|producer|scheduler)( [a-z]+)* --(version|help)$/, /^certs\/(generate-certs|check-expiry)\.sh( [^;&|`$()<>]+)?$/];

function commandsOf(script: string): string[] {
  return script
    .split('\n')
    .map(l => l.replace(/\s+#.*$/, '').trim())
    .filter(l => l && !l.startsWith('#'));
}

function runBash(script: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', ['--norc', '--noprofile', '-euo', 'pipefail', '-c', script], {
      cwd,
      env: { PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env['PATH'] ?? ''}`, HOME: cwd, LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', code => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('ops: the shell snippets the docs mark with <!-- doc-test --> run as written', function () {
  this.timeout(120_000);
  const all = snippets();
  const dirs: string[] = [];

  afterEach(() => {
    for (const dir of dirs.splice(0)) {
      rmSync(dir, { recursive: true, force: true });
      expect(existsSync(dir), `${dir} removed`).to.equal(false);
    }
  });

  it('finds the marked snippets (README: --version and --help; TLS.md: certificates)', () => {
    expect(all.map(s => s.file)).to.include.members(['README.md', 'docs/TLS.md']);
    expect(all.some(s => /--version/.test(s.script))).to.equal(true);
    expect(all.some(s => /generate-certs\.sh/.test(s.script))).to.equal(true);
  });

  it('marks only safe commands', () => {
    const unsafe = all.flatMap(s => commandsOf(s.script).filter(c => !SAFE.some(re => re.test(c))).map(c => `${s.file}:${s.line}: ${c}`));
    expect(unsafe).to.deep.equal([]);
  });

  for (const snippet of all) {
    it(`${snippet.file}:${snippet.line} runs and exits 0`, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-doc-'));
      dirs.push(dir);
      mkdirSync(path.join(dir, 'certs'));
      for (const script of ['generate-certs.sh', 'check-expiry.sh']) copyFileSync(path.join(ROOT, 'certs', script), path.join(dir, 'certs', script));
      const { code, output } = await runBash(snippet.script, dir);
      expect(code, output.slice(-2000)).to.equal(0);
      for (const re of snippet.expects) expect(output, `output matches ${re}`).to.match(re);
      expect(output).to.not.match(/command not found|No such file/);
    });
  }
});
