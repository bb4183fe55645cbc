import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './ops-helpers.js';

// Every environment variable the code reads must be documented in docs/CONFIGURATION.md, so an
// operator never has to read the sources to find a setting or its default.

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** Variable names as the resolvers read them: env['X'], env[`${prefix}X`], and the helpers that take a name. */
function variablesRead(): Map<string, string> {
  const found = new Map<string, string>();
  const patterns = [
    /env\[['`]([A-Z][A-Z0-9_]+)['`]\]/g,
    /parseIntegerSetting\('([A-Z][A-Z0-9_]+)'/g,
    /parseBooleanSetting\('([A-Z][A-Z0-9_]+)'/g,
    /parseSecondsSetting\('([A-Z][A-Z0-9_]+)'/g,
    /\bint\('([A-Z][A-Z0-9_]+)'/g,
    /\bpick\('([A-Z][A-Z0-9_]+)'/g,
    /\boption\('\w+', '([A-Z][A-Z0-9_]+)'/g,
  ];
  for (const pkg of ['shared', 'producer', 'worker', 'scheduler']) {
    for (const file of sourceFiles(path.join(ROOT, pkg, 'src'))) {
      const text = readFileSync(file, 'utf8');
      const where = path.relative(ROOT, file);
      for (const pattern of patterns) for (const m of text.matchAll(pattern)) if (m[1]) found.set(m[1], where);
      // Per-service variables: env[`${prefix}CA_CERT`] is read as REDIS_CA_CERT and RESULT_REDIS_CA_CERT.
      for (const m of text.matchAll(/env\[`\$\{prefix\}([A-Z][A-Z0-9_]+)`\]/g)) {
        if (m[1]) for (const prefix of ['REDIS_', 'RESULT_REDIS_']) found.set(`${prefix}${m[1]}`, where);
      }
    }
  }
  return found;
}

describe('ops: docs/CONFIGURATION.md documents every environment variable', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/CONFIGURATION.md'), 'utf8');
  const variables = variablesRead();

  it('finds the variables in the sources (the check below is not vacuous)', () => {
    for (const name of ['REDIS_CA_CERT', 'RESULT_REDIS_CLIENT_KEY', 'REDIS_MAX_CONNECTIONS', 'TASKLINE_CONCURRENCY', 'TASKLINE_BEAT_LEASE_MS', 'PRODUCER_API_TOKEN_FILE', 'LOG_LEVEL']) {
      expect(variables.has(name), name).to.equal(true);
    }
  });

  it('names each one', () => {
    const missing = [...variables].filter(([name]) => !doc.includes(`\`${name}\``)).map(([name, file]) => `${name} (${file})`);
    expect(missing, 'variables read by the code but missing from docs/CONFIGURATION.md').to.deep.equal([]);
  });
});
