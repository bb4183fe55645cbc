import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, Secret } from '@taskline/shared';

/**
 * The HTTP API's bearer token: `PRODUCER_API_TOKEN`, or the file named by
 * `PRODUCER_API_TOKEN_FILE` (Docker secrets). `null` when neither is set.
 */
export function readApiToken(env: Record<string, string | undefined>): Secret | null {
  const inline = env['PRODUCER_API_TOKEN'];
  const file = env['PRODUCER_API_TOKEN_FILE'];
  if (inline && file) {
    throw new ConfigError('CONFIG_API_TOKEN_TWICE', 'PRODUCER_API_TOKEN', 'Both PRODUCER_API_TOKEN and PRODUCER_API_TOKEN_FILE are set; keep only one.');
  }
  let raw = inline;
  if (file) {
    try {
      raw = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(
        'CONFIG_API_TOKEN_FILE',
        'PRODUCER_API_TOKEN_FILE',
        `PRODUCER_API_TOKEN_FILE names "${file}", which cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); fix the path or mount the secret.`,
        { cause: err },
      );
    }
    if (!raw) throw new ConfigError('CONFIG_API_TOKEN_FILE', 'PRODUCER_API_TOKEN_FILE', `PRODUCER_API_TOKEN_FILE names "${file}", which is empty; put the token in it.`);
  }
  if (!raw) return null;
  if (raw.length < 16) {
    throw new ConfigError('CONFIG_API_TOKEN_WEAK', 'PRODUCER_API_TOKEN', 'The API token is shorter than 16 characters; use a long random one, e.g. `openssl rand -hex 32`.');
  }
  return new Secret(raw);
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Compares an `Authorization` header with the token in constant time (hashes make lengths equal). */
export function bearerMatches(header: string | undefined, token: Secret): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1] ?? '';
  return timingSafeEqual(digest(given), digest(token.reveal())) && given.length > 0;
}
