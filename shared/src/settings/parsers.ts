import { ConfigError } from '../errors.js';

/**
 * The parsers a settings row names: each turns a raw value from one layer (a library option, a
 * flag, an environment variable, a file) into a checked value, or throws one ConfigError naming
 * the variable and the fix. A secret's value is never repeated in a message.
 */

/** Where a raw value came from; the environment and files give strings, options and flags may not. */
export type Source = 'option' | 'flag' | 'env' | 'file';

export interface ParseContext {
  /** What the user set: the option's name, `--flag`, or the variable. */
  variable: string;
  source: Source;
  secret: boolean;
}

export interface Parser<T> {
  /** The accepted values as the configuration reference shows them, e.g. `1–10000`. */
  readonly describe: string;
  /** How yargs declares the flag. */
  readonly flagType: 'number' | 'string' | 'boolean';
  readonly choices?: readonly string[];
  parse(raw: unknown, context: ParseContext): T;
}

export interface Range {
  min: number;
  max: number;
}

/** The raw value as an error message may show it: quoted, or hidden for a secret. */
export function shown(raw: unknown, context: ParseContext): string {
  return context.secret ? '(a value not shown: it is secret)' : `"${String(raw)}"`;
}

const fromText = (raw: unknown): unknown => (typeof raw === 'string' ? raw.trim() : raw);

/** A whole number within `range`. */
export function int(range: Range): Parser<number> {
  return {
    describe: `${range.min}–${range.max}`,
    flagType: 'number',
    parse(raw, context) {
      const text = fromText(raw);
      const value = typeof text === 'string' ? Number(text) : text;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
        throw new ConfigError(
          'CONFIG_INVALID_NUMBER',
          context.variable,
          `${context.variable} must be a whole number from ${range.min} to ${range.max}, got ${shown(raw, context)}; fix or unset it.`,
        );
      }
      return value;
    },
  };
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** true/false, 1/0, yes/no, on/off. */
export function bool(): Parser<boolean> {
  return {
    describe: 'true or false',
    flagType: 'boolean',
    parse(raw, context) {
      if (typeof raw === 'boolean') return raw;
      const lower = String(raw).trim().toLowerCase();
      if (TRUE.has(lower)) return true;
      if (FALSE.has(lower)) return false;
      throw new ConfigError('CONFIG_INVALID_BOOLEAN', context.variable, `${context.variable} must be true or false, got ${shown(raw, context)}; fix or unset it.`);
    },
  };
}

/**
 * A duration: the environment gives **seconds** (as the variable's name promises), code and flags
 * milliseconds. The result is milliseconds.
 */
export function secondsAsMs(range: Range): Parser<number> {
  const ms = int({ min: range.min * 1000, max: range.max * 1000 });
  return {
    describe: `${range.min}–${range.max} seconds`,
    flagType: 'number',
    parse(raw, context) {
      if (context.source !== 'env' && context.source !== 'file') return ms.parse(raw, context);
      const value = Number(String(raw).trim());
      if (!Number.isFinite(value) || value < range.min || value > range.max) {
        throw new ConfigError(
          'CONFIG_INVALID_DURATION',
          context.variable,
          `${context.variable} must be a number of seconds from ${range.min} to ${range.max}, got ${shown(raw, context)}; fix or unset it.`,
        );
      }
      return Math.round(value * 1000);
    },
  };
}

/** One of `choices`: a list, or a map of each choice to what it means (said in the error). */
export function oneOf<const C extends string>(choices: readonly C[] | Readonly<Record<C, string>>, options: { code?: string } = {}): Parser<C> {
  const names = (Array.isArray(choices) ? choices : Object.keys(choices)) as C[];
  const meaning = Array.isArray(choices) ? null : (choices as Record<C, string>);
  const listed = names.map(name => (meaning ? `"${name}" (${meaning[name]})` : `"${name}"`));
  const sentence = listed.length > 1 ? `${listed.slice(0, -1).join(', ')} or ${listed[listed.length - 1] ?? ''}` : (listed[0] ?? '');
  return {
    describe: names.map(name => `\`${name}\``).join(', '),
    flagType: 'string',
    choices: names,
    parse(raw, context) {
      const value = fromText(raw);
      if (typeof value === 'string' && (names as string[]).includes(value)) return value as C;
      throw new ConfigError(options.code ?? 'CONFIG_INVALID_VALUE', context.variable, `${context.variable} must be ${sentence}, got ${shown(raw, context)}; fix or unset it.`);
    },
  };
}

/** Text, as given; with `pattern`, refused unless it matches (`says` describes the rule). */
export function text(rule?: { pattern: RegExp; says: string; code: string }): Parser<string> {
  return {
    describe: rule ? rule.says : 'text',
    flagType: 'string',
    parse(raw, context) {
      if (typeof raw !== 'string' || (rule && !rule.pattern.test(raw))) {
        const code = rule?.code ?? 'CONFIG_INVALID_VALUE';
        throw new ConfigError(code, context.variable, `${context.variable} must be ${rule?.says ?? 'a string'}, got ${shown(raw, context)}; fix or unset it.`);
      }
      return raw;
    },
  };
}

/** A list: an array from code, or comma-separated text from a flag or the environment (blanks dropped). */
export function list(): Parser<string[]> {
  return {
    describe: 'comma-separated list',
    flagType: 'string',
    parse(raw, context) {
      if (Array.isArray(raw) && raw.every(item => typeof item === 'string')) return raw as string[];
      if (typeof raw === 'string') return raw.split(',').map(item => item.trim()).filter(Boolean);
      throw new ConfigError('CONFIG_INVALID_VALUE', context.variable, `${context.variable} must be a list of names (comma-separated in a flag or variable), got ${shown(raw, context)}; fix or unset it.`);
    },
  };
}

/** A parser written for one setting (TLS versions, cipher lists): `check` throws its own ConfigError. */
export function custom<T>(describe: string, check: (raw: unknown, context: ParseContext) => T, flagType: Parser<T>['flagType'] = 'string'): Parser<T> {
  return { describe, flagType, parse: check };
}
