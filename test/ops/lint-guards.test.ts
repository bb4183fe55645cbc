import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ESLint } from 'eslint';

// The lint rules that guard the architecture, each shown to catch a planted violation: a rule that
// cannot fail (import-x/no-cycle passed every cycle until its resolver mapped ./x.js to x.ts) is
// no guard. The fixtures are written where the rules apply and removed afterwards.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('lint guards (eslint on planted violations)', function () {
  this.timeout(120_000);
  const tag = `zz-lint-fixture-${process.pid}`;
  const written: string[] = [];
  const eslint = new ESLint({ cwd: ROOT });

  function plant(relPath: string, source: string): string {
    const path = join(ROOT, relPath);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, source);
    written.push(path);
    return path;
  }

  async function ruleIds(path: string): Promise<string[]> {
    const [result] = await eslint.lintFiles([path]);
    return (result?.messages ?? []).map(m => m.ruleId ?? m.message);
  }

  after(() => {
    for (const path of written) rmSync(path, { force: true });
    rmSync(join(ROOT, 'test', tag), { recursive: true, force: true });
  });

  it('fails on a two-file import cycle', async () => {
    const a = plant(`test/${tag}/a.ts`, "import { b } from './b.js';\nexport const a = (): number => b() + 1;\n");
    plant(`test/${tag}/b.ts`, "import { a } from './a.js';\nexport const b = (): number => (a.length > 5 ? 0 : 1);\n");
    expect(await ruleIds(a)).to.include('import-x/no-cycle');
  });

  it('passes the same two files without the cycle (the rule reads the imports, it does not flag every file)', async () => {
    const a = plant(`test/${tag}/c.ts`, "import { d } from './d.js';\nexport const c = (): number => d() + 1;\n");
    plant(`test/${tag}/d.ts`, 'export const d = (): number => 1;\n');
    expect(await ruleIds(a)).to.deep.equal([]);
  });

  it("fails on an import of another shared folder's file instead of its index.ts", async () => {
    const deep = plant(`shared/src/job/${tag}.ts`, "import { resolveConnectionOptions } from '../connection/config.js';\nexport const f = resolveConnectionOptions;\n");
    expect(await ruleIds(deep)).to.include('no-restricted-imports');
    const viaIndex = plant(`shared/src/job/${tag}-ok.ts`, "import { createConnections } from '../connection/index.js';\nexport const g = createConnections;\n");
    expect(await ruleIds(viaIndex)).to.deep.equal([]);
  });

  it("fails on an import of another package's src/", async () => {
    const path = plant(`worker/src/${tag}.ts`, "import { createProducer } from '../../producer/src/producer.js';\nexport const p = createProducer;\n");
    expect(await ruleIds(path)).to.include('no-restricted-imports');
  });

  it('fails on a function over 80 lines in src/ unless a comment says why', async () => {
    const body = Array.from({ length: 85 }, (_, i) => `  total += ${i};`).join('\n');
    const long = plant(`worker/src/${tag}.ts`, `export function long(): number {\n  let total = 0;\n${body}\n  return total;\n}\n`);
    expect(await ruleIds(long)).to.include('max-lines-per-function');
    const excused = plant(
      `worker/src/${tag}-ok.ts`,
      `// eslint-disable-next-line max-lines-per-function -- a table of 85 steps reads best in one place\nexport function long(): number {\n  let total = 0;\n${body}\n  return total;\n}\n`,
    );
    expect(await ruleIds(excused)).to.deep.equal([]);
  });
});
