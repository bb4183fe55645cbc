import type { Parser } from './parsers.js';

/**
 * A setting declared once, as data: the resolver, the bins' flags, the unknown-variable check and
 * docs/CONFIGURATION.md all read these rows. A table maps library option names to rows.
 */
export interface Setting<T = unknown> {
  /** The environment variable, e.g. `REDIS_MAX_CONNECTIONS`. */
  readonly env?: string;
  /** The yargs flag (without `--`) of the bins that take it. */
  readonly flag?: string;
  /** What the flag's `--help` says, when it differs from `doc`. */
  readonly flagDoc?: string;
  /** A variable naming a file that holds the value (Docker secrets), read when `env` is unset. */
  readonly fileEnv?: string;
  /** Reads the `fileEnv` file; the default drops one trailing newline. */
  readonly readFile?: (variable: string, file: string) => string;
  readonly parser: Parser<T>;
  /** The built-in value when no layer sets it; unset when code computes it (see `defaultDoc`). */
  readonly default?: T;
  /** The default as the reference shows it, when `default` alone does not say it. */
  readonly defaultDoc?: string;
  /** One line for the configuration reference. */
  readonly doc: string;
  /** Never shown: not in errors, logs or the reference's default column. */
  readonly secret?: boolean;
}

export type Table = Readonly<Record<string, Setting>>;

/** Declares one row; its value type comes from the parser, and a `default` makes the value non-optional. */
export function setting<T>(row: Omit<Setting<T>, 'default'> & { default: NoInfer<T> }): Setting<T> & { readonly default: T };
export function setting<T>(row: Omit<Setting<T>, 'default'>): Setting<T> & { readonly default: undefined };
export function setting<T>(row: Setting<T>): Setting<T> {
  return row;
}

/** The value a row resolves to: `T`, or `T | undefined` when it has no default. */
export type SettingValue<S> = S extends { parser: Parser<infer T> } ? (S extends { default: infer D } ? (undefined extends D ? T | undefined : T) : T | undefined) : never;

/** What the resolver returns for a table: one value per row. */
export type SettingsValues<Tb extends Table> = { -readonly [K in keyof Tb]: SettingValue<Tb[K]> };

/** The library options a table accepts: every row is optional. */
export type SettingsOptions<Tb extends Table> = { -readonly [K in keyof Tb]?: (Tb[K] extends { parser: Parser<infer T> } ? T : never) | undefined };

/** Every variable a table reads (values and `_FILE` variants). */
export function variablesOf(table: Table): string[] {
  return Object.values(table).flatMap(row => [row.env, row.fileEnv].filter((name): name is string => name !== undefined));
}
