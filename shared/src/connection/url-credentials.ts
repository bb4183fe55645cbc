import { ConfigError } from '../errors.js';

/** The password-file variable of the service a URL variable belongs to (`RESULT_REDIS_URL` → `RESULT_REDIS_PASSWORD_FILE`). */
function passwordFileFor(variable: string): string {
  return `${/result|backend/i.test(variable) ? 'RESULT_' : ''}REDIS_PASSWORD_FILE`;
}

/** The URL cannot be parsed; the URL itself is not repeated (it may hold a password). */
export function invalidUrlError(variable: string): ConfigError {
  return new ConfigError(
    'CONFIG_INVALID_URL',
    variable,
    `${variable} is not a valid URL; use rediss://[user:password@]host:port/db — percent-encode the user name and password if they hold any of : / ? # @ % (e.g. %40 for @), or leave the password out of the URL and use ${passwordFileFor(variable)}.`,
  );
}

/** Decodes the user name or password of a URL; a raw `%` (URIError: URI malformed) gets the fix. */
export function decodeUrlCredential(variable: string, part: 'user name' | 'password', raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ConfigError(
      'CONFIG_INVALID_URL',
      variable,
      `The ${part} in ${variable} holds a "%" that starts no valid percent-escape; percent-encode the ${part} (a literal % is %25), or leave the password out of the URL and use ${passwordFileFor(variable)}.`,
    );
  }
}
