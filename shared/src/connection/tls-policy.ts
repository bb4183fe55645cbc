import { ConfigError } from '../errors.js';

/**
 * The one place TLS versions and cipher lists are judged, whatever layer set them (environment,
 * CLI, library options): nothing below TLS 1.2, no security level below 2, and every cipher entry
 * limited to forward-secret key exchange with an AEAD cipher.
 */

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** The cipher list used for TLS 1.2 when none is configured (TLS 1.3 suites are always the strong defaults). */
export const DEFAULT_TLS_CIPHERS = 'ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20';

/** Parses `TLSv1.2` / `TLSv1.3` (or `1.2` / `1.3`); anything else is a ConfigError naming `variable`. */
export function parseTlsVersion(variable: string, raw: unknown): TlsVersion | undefined {
  if (raw === undefined || raw === '') return undefined;
  const normalized = typeof raw === 'string' ? raw.trim().replace(/^tlsv?/i, '') : '';
  if (normalized === '1.2') return 'TLSv1.2';
  if (normalized === '1.3') return 'TLSv1.3';
  throw new ConfigError(
    'CONFIG_TLS_VERSION',
    variable,
    `${variable} must be TLSv1.2 or TLSv1.3, got ${JSON.stringify(raw) ?? String(raw)}; TLS 1.0 and 1.1 are broken and never allowed.`,
  );
}

/** Aliases that, in an `A+B` entry (an intersection), guarantee authenticated ephemeral key exchange. */
const FORWARD_SECRET = new Set(['ECDHE', 'EECDH', 'DHE', 'EDH']);
/** Aliases that guarantee an AEAD cipher. */
const AEAD = new Set(['AESGCM', 'AESCCM', 'CHACHA20']);
/** Full TLS 1.2 suite names: ephemeral (EC)DH, RSA or ECDSA authentication, GCM / CCM / ChaCha20-Poly1305. */
const STRONG_TLS12_SUITE = /^(ECDHE|DHE)-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|AES(128|256)-CCM|CHACHA20-POLY1305)$/;
/** TLS 1.3 suite names (all forward-secret and AEAD) Node accepts in the same list; CCM_8 has a short tag. */
const TLS13_SUITE = /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256|AES_128_CCM_SHA256)$/;

function isStrongEntry(entry: string): boolean {
  if (STRONG_TLS12_SUITE.test(entry) || TLS13_SUITE.test(entry)) return true;
  const parts = entry.split('+');
  return parts.some(p => FORWARD_SECRET.has(p)) && parts.some(p => AEAD.has(p));
}

/** Why an entry is refused, in a few words an operator recognises. */
function weakness(entry: string): string {
  const upper = entry.toUpperCase();
  if (/^(ALL|COMPLEMENTOF|DEFAULT|HIGH|MEDIUM)/.test(upper)) return 'is a broad group that also takes ciphers without forward secrecy or AEAD';
  if (/(^|\+)ANULL|ADH|AECDH/.test(upper)) return 'allows unauthenticated (anonymous) key exchange';
  if (/(^|\+)(ENULL|NULL)($|\+)|-NULL-/.test(upper)) return 'allows no encryption at all';
  if (/EXP|EXPORT|LOW|RC4|(^|[-+])DES|3DES|IDEA|SEED|MD5|RC2/.test(upper)) return 'allows broken ciphers';
  if (/^(K?RSA|AES|AES128|AES256|CAMELLIA|ARIA|PSK)($|\+)|^(AES|CAMELLIA|ARIA|PSK)/.test(upper)) return 'has no forward secrecy (RSA or PSK key exchange)';
  if (/CBC|SHA1?$|SHA1?\+|-SHA$/.test(upper)) return 'allows CBC ciphers (no AEAD)';
  return 'is not limited to forward-secret AEAD ciphers';
}

/**
 * Checks an OpenSSL cipher list entry by entry and returns it unchanged. `!X` / `-X` (remove)
 * and `+X` (reorder) entries only narrow the list; every other entry must be strong on its own.
 */
export function checkCipherList(variable: string, raw: unknown): string {
  const fix = `taskline allows only ECDHE or DHE key exchange with AES-GCM or ChaCha20-Poly1305 (entries such as ECDHE+AESGCM or ECDHE-RSA-AES128-GCM-SHA256; "!X" and "-X" only remove); fix the list, or unset ${variable} for the default ${DEFAULT_TLS_CIPHERS}.`;
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw new ConfigError('CONFIG_TLS_CIPHERS', variable, `${variable} must be a non-empty OpenSSL cipher list; ${fix}`);
  }
  let adds = 0;
  // OpenSSL separates entries with ':', ',', ' ' or ';'.
  for (const entry of raw.split(/[:, ;]+/).filter(Boolean)) {
    if (entry.startsWith('@')) {
      const level = /^@SECLEVEL=(\d+)$/.exec(entry);
      if (level) {
        if (Number(level[1]) < 2) {
          throw new ConfigError(
            'CONFIG_TLS_CIPHERS',
            variable,
            `${variable} contains "${entry}", which lets OpenSSL accept weak keys and ciphers; remove it (the minimum is @SECLEVEL=2), or unset ${variable} for the default ${DEFAULT_TLS_CIPHERS}.`,
          );
        }
      } else if (entry !== '@STRENGTH') {
        throw new ConfigError('CONFIG_TLS_CIPHERS', variable, `${variable} contains the unknown directive "${entry}"; remove it (only @SECLEVEL=2 or higher and @STRENGTH are accepted).`);
      }
      continue;
    }
    if (entry.startsWith('!') || entry.startsWith('-') || entry.startsWith('+')) continue;
    if (!isStrongEntry(entry)) {
      throw new ConfigError('CONFIG_TLS_CIPHERS', variable, `${variable} contains "${entry}", which ${weakness(entry)}; ${fix}`);
    }
    adds += 1;
  }
  if (adds === 0) throw new ConfigError('CONFIG_TLS_CIPHERS', variable, `${variable} names no cipher to use, only removals; ${fix}`);
  return raw;
}
