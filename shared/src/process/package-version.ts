import { readFileSync } from 'node:fs';

/**
 * The `version` field of a package.json, for a bin's `--version`: each bin passes its own
 * (`new URL('../package.json', import.meta.url)` from dist/), so it does not depend on the
 * working directory. Read when called, never at import.
 */
export function packageVersion(packageJson: URL): string {
  try {
    const version = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
