import { ConfigError } from '../errors.js';

type Env = Record<string, string | undefined>;

const KNOWN_ENVIRONMENTS = new Set(['production', 'development', 'test']);

/**
 * The one production switch every taskline process and the HTTP API obey: `TASKLINE_ENV`, or
 * when it is unset, `NODE_ENV`. Production means strict: plaintext and insecure TLS refused, the
 * HTTP API needs a token and TLS. A `TASKLINE_ENV` taskline does not know (a typo such as `prod`)
 * is refused rather than read as "not production".
 */
export function isProduction(env: Env = process.env): boolean {
  const taskline = env['TASKLINE_ENV']?.trim();
  if (taskline) {
    if (!KNOWN_ENVIRONMENTS.has(taskline)) {
      throw new ConfigError(
        'CONFIG_UNKNOWN_ENVIRONMENT',
        'TASKLINE_ENV',
        `TASKLINE_ENV must be production, development or test, got "${taskline}"; fix the value (production turns on strict mode).`,
      );
    }
    return taskline === 'production';
  }
  return env['NODE_ENV']?.trim() === 'production';
}
