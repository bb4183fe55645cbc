import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './ops-helpers.js';

// Every error code the code raises must have an entry (cause → fix) in docs/TROUBLESHOOTING.md,
// so an operator holding an error finds it by its code.

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** Node/OpenSSL codes the mapper takes as input (ECONNREFUSED, ERR_SSL_…): not ours to document by name. */
const isLowLevel = (code: string): boolean => /^(E[A-Z]+|ERR_[A-Z0-9_]+)$/.test(code);
/** Ternaries also pick env prefixes (`REDIS_`) and job states (`RETRY`/`FAILURE`): not error codes. */
const notACode = (code: string): boolean => isLowLevel(code) || code.endsWith('_') || ['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE'].includes(code);

function emittedCodes(): Map<string, string> {
  const codes = new Map<string, string>();
  const patterns = [
    /(?:code:|code =|super\(|Error\()\s*'([A-Z][A-Z0-9_]{2,})'/g,
    /\?\s*'([A-Z][A-Z0-9_]{2,})'\s*:\s*'([A-Z][A-Z0-9_]{2,})'/g,
  ];
  for (const pkg of ['shared', 'producer', 'worker', 'scheduler']) {
    for (const file of sourceFiles(path.join(ROOT, pkg, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of patterns) {
        for (const match of text.matchAll(pattern)) {
          for (const code of match.slice(1)) if (code && !notACode(code)) codes.set(code, path.relative(ROOT, file));
        }
      }
    }
  }
  return codes;
}

describe('ops: docs/TROUBLESHOOTING.md covers every error code', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/TROUBLESHOOTING.md'), 'utf8');
  const codes = emittedCodes();

  it('finds the error codes in the sources (the check below is not vacuous)', () => {
    for (const code of ['CONFIG_INSECURE_TLS', 'TLS_HOSTNAME_MISMATCH', 'AUTH_NO_PERMISSION', 'POOL_EXHAUSTED', 'CONFIG_FILE_MISSING']) {
      expect(codes.has(code), code).to.equal(true);
    }
  });

  it('has a section for each code, with its cause and its fix', () => {
    const missing = [...codes].filter(([code]) => !new RegExp(`^#+ .*\`${code}\``, 'm').test(doc)).map(([code, file]) => `${code} (${file})`);
    expect(missing, 'codes without a "### `CODE`" heading').to.deep.equal([]);
    for (const [code] of codes) {
      const section = doc.split(new RegExp(`^#+ .*\`${code}\`.*$`, 'm'))[1]?.split(/^#+ /m)[0] ?? '';
      expect(section, `${code} section`).to.match(/Cause/).and.match(/Fix/);
    }
  });
});
