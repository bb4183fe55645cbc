import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ALLOWED_VARIABLES, KNOWN_VARIABLES } from '@taskline/shared/settings';
import { DOC_PATH, KNOWN_PATH, knownVariables, renderConfigurationDoc, renderKnownVariables } from '../../scripts/config-doc.js';
import { ROOT } from './ops-helpers.js';

// docs/CONFIGURATION.md is generated from the settings tables (pnpm docs:config), and every
// variable the code reads is a row of some table, so an operator never has to read the sources to
// find a setting or its default, and the unknown-variable warning never fires for a real setting.

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** Variables read outside the tables: `env['X']` / `process.env.X` in any package's sources. */
function variablesReadDirectly(): Map<string, string> {
  const found = new Map<string, string>();
  for (const pkg of ['shared', 'producer', 'worker', 'scheduler']) {
    for (const file of sourceFiles(path.join(ROOT, pkg, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:env\[['`]|process\.env\.)([A-Z][A-Z0-9_]+)/g)) if (m[1]) found.set(m[1], path.relative(ROOT, file));
    }
  }
  return found;
}

describe('ops: docs/CONFIGURATION.md is generated from the settings tables', () => {
  it('the committed file is what the tables generate (run `pnpm docs:config` after changing a table)', () => {
    expect(readFileSync(DOC_PATH, 'utf8') === renderConfigurationDoc(), 'docs/CONFIGURATION.md differs from the tables: run pnpm docs:config').to.equal(true);
  });

  it('the known-variable list the warning reads is what the tables generate, and the built one is current', () => {
    expect(readFileSync(KNOWN_PATH, 'utf8') === renderKnownVariables(), 'shared/src/settings/known-variables.ts is stale: run pnpm docs:config').to.equal(true);
    expect([...KNOWN_VARIABLES]).to.deep.equal(knownVariables());
  });

  it('documents every variable of every table, the result backend\'s included', () => {
    const doc = readFileSync(DOC_PATH, 'utf8');
    const names = knownVariables();
    for (const name of ['REDIS_CA_CERT', 'RESULT_REDIS_CLIENT_KEY', 'REDIS_MAX_CONNECTIONS', 'TASKLINE_CONCURRENCY', 'TASKLINE_BEAT_LEASE_MS', 'PRODUCER_API_TOKEN_FILE', 'LOG_LEVEL']) {
      expect(names, name).to.include(name);
    }
    expect(names.filter(name => !doc.includes(`\`${name}\``))).to.deep.equal([]);
  });

  it('reads no variable that is not a row of a table (or allowed, with its reason)', () => {
    const direct = variablesReadDirectly();
    expect(direct.has('TASKLINE_ENV') && direct.has('LOG_LEVEL'), 'the scan finds direct reads').to.equal(true);
    const known = new Set(knownVariables());
    const stray = [...direct].filter(([name]) => !known.has(name) && !(name in ALLOWED_VARIABLES)).map(([name, file]) => `${name} (${file})`);
    expect(stray, 'variables read by the code but declared in no settings table').to.deep.equal([]);
  });
});
