import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type Secret } from '@taskline/shared';

/** Reads `PRODUCER_API_TOKEN_FILE` (Docker secrets): surrounding whitespace dropped, an empty or unreadable file refused. */
export function readTokenFile(variable: string, file: string): string {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(
      'CONFIG_API_TOKEN_FILE',
      variable,
      `${variable} names "${file}", which cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); fix the path or mount the secret.`,
      { cause: err },
    );
  }
  if (!raw) throw new ConfigError('CONFIG_API_TOKEN_FILE', variable, `${variable} names "${file}", which is empty; put the token in it.`);
  return raw;
}

/** Shortest token accepted, and the fewest different characters in it. */
export const MIN_TOKEN_LENGTH = 32;
export const MIN_TOKEN_DISTINCT = 10;

/**
 * Refuses a token that is short, repetitive (`aaaa…`, `abab…`) or cannot travel in an
 * `Authorization: Bearer` header (spaces, control or non-ASCII characters). The message says
 * why without repeating the token.
 */
export function checkApiToken(token: Secret, variable: string): Secret {
  const value = token.reveal();
  const distinct = new Set(value).size;
  const problem = !/^[\x21-\x7e]+$/.test(value)
    ? 'it holds spaces, control or non-ASCII characters, which an "Authorization: Bearer" header cannot carry'
    : value.length < MIN_TOKEN_LENGTH
      ? `it is ${value.length} characters long`
      : distinct < MIN_TOKEN_DISTINCT
        ? `it uses only ${distinct} different character${distinct === 1 ? '' : 's'}`
        : null;
  if (problem) {
    throw new ConfigError(
      'CONFIG_API_TOKEN_WEAK',
      variable,
      `The API token in ${variable} is too weak: ${problem}; use at least ${MIN_TOKEN_LENGTH} visible ASCII characters with at least ${MIN_TOKEN_DISTINCT} different ones, e.g. the output of \`openssl rand -hex 32\`.`,
    );
  }
  return token;
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Compares an `Authorization` header with the token in constant time (hashes make lengths equal). */
export function bearerMatches(header: string | undefined, token: Secret): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1] ?? '';
  return timingSafeEqual(digest(given), digest(token.reveal())) && given.length > 0;
}
