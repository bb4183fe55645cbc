import { ConfigError } from './errors.js';

/** Small, strict parsers for configuration values; each error names the variable and the fix. */

export function parseIntegerSetting(
  variable: string,
  raw: string | number | undefined,
  range: { min: number; max: number },
): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new ConfigError(
      'CONFIG_INVALID_NUMBER',
      variable,
      `${variable} must be a whole number from ${range.min} to ${range.max}, got "${String(raw)}"; fix or unset it.`,
    );
  }
  return value;
}

/** The ops server's port: `--metrics-port`, else `TASKLINE_METRICS_PORT`, else the bin's default (0 picks a free one). */
export function resolveMetricsPort(flag: number | undefined, env: Record<string, string | undefined>, fallback: number): number {
  const range = { min: 0, max: 65_535 };
  return parseIntegerSetting('--metrics-port', flag, range) ?? parseIntegerSetting('TASKLINE_METRICS_PORT', env['TASKLINE_METRICS_PORT'], range) ?? fallback;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

export function parseBooleanSetting(variable: string, raw: string | boolean | undefined): boolean | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw === 'boolean') return raw;
  const lower = raw.trim().toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  throw new ConfigError(
    'CONFIG_INVALID_BOOLEAN',
    variable,
    `${variable} must be true or false, got "${raw}"; fix or unset it.`,
  );
}

/** Parses a duration given in seconds (as the variable's name promises) into milliseconds. */
export function parseSecondsSetting(
  variable: string,
  raw: string | undefined,
  range: { min: number; max: number },
): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw.trim());
  if (!Number.isFinite(value) || value < range.min || value > range.max) {
    throw new ConfigError(
      'CONFIG_INVALID_DURATION',
      variable,
      `${variable} must be a number of seconds from ${range.min} to ${range.max}, got "${raw}"; fix or unset it.`,
    );
  }
  return Math.round(value * 1000);
}

/** The first defined value, in layer order. */
export function firstDefined<T>(...values: Array<T | undefined>): T | undefined {
  for (const value of values) if (value !== undefined) return value;
  return undefined;
}
