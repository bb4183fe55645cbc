import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { ParseContext, Source } from './parsers.js';
import type { Setting, SettingValue, SettingsValues, Table } from './table.js';

type Env = Record<string, string | undefined>;

/**
 * The layers a setting is read from, first wins: library options (by the row's key), flags (by
 * the row's `flag`), the environment (`env`), a file named by the environment (`fileEnv`), and
 * the row's default. An empty string in a flag, variable or file counts as unset.
 */
export interface Layers {
  /** Library options, read by the row's key. */
  options?: object | undefined;
  /** yargs' argv, read by flag name. */
  flags?: object | undefined;
  env?: Env | undefined;
}

/** Reads a value file: a missing or unreadable one names its variable and the fix. */
export function readValueFile(variable: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(
      missing ? 'CONFIG_FILE_MISSING' : 'CONFIG_FILE_UNREADABLE',
      variable,
      missing
        ? `${variable} names the file "${file}" that does not exist; fix the path or mount the file.`
        : `${variable} names the file "${file}" that this process cannot read; fix its permissions.`,
      { cause: err },
    );
  }
}

const isSet = (value: unknown): boolean => value !== undefined && value !== '';

/** The first layer that sets the row, as the raw value and its context; `undefined` when none does. */
function firstLayer(key: string, row: Setting, layers: Layers): { raw: unknown; context: ParseContext } | undefined {
  const secret = row.secret === true;
  const at = (raw: unknown, variable: string, source: Source) => ({ raw, context: { variable, source, secret } });
  const option = (layers.options as Record<string, unknown> | undefined)?.[key];
  if (option !== undefined) return at(option, key, 'option');
  const flag = row.flag === undefined ? undefined : (layers.flags as Record<string, unknown> | undefined)?.[row.flag];
  if (row.flag !== undefined && isSet(flag)) return at(flag, `--${row.flag}`, 'flag');
  const value = row.env === undefined ? undefined : layers.env?.[row.env];
  if (row.env !== undefined && isSet(value)) return at(value, row.env, 'env');
  const file = row.fileEnv === undefined ? undefined : layers.env?.[row.fileEnv];
  if (row.fileEnv !== undefined && file !== undefined && file !== '') {
    const contents = (row.readFile ?? readValueFile)(row.fileEnv, file);
    return isSet(contents) ? at(contents, row.fileEnv, 'file') : undefined;
  }
  return undefined;
}

/** One row through the layers. */
export function resolveSetting<S extends Setting>(key: string, row: S, layers: Layers): SettingValue<S> {
  const found = firstLayer(key, row, layers);
  return (found === undefined ? row.default : row.parser.parse(found.raw, found.context)) as SettingValue<S>;
}

/** Every row of a table through the layers, in one place. */
export function resolveSettings<Tb extends Table>(table: Tb, layers: Layers): SettingsValues<Tb> {
  const out: Record<string, unknown> = {};
  for (const [key, row] of Object.entries(table)) out[key] = resolveSetting(key, row, layers);
  return out as SettingsValues<Tb>;
}

/**
 * The flag layer turned into library options, checked here so an error names the flag
 * (`--concurrency`), for a bin that hands its flags to a library entry point.
 */
export function optionsFromFlags<Tb extends Table>(table: Tb, flags: object): Partial<SettingsValues<Tb>> {
  const out: Record<string, unknown> = {};
  for (const [key, row] of Object.entries(table)) {
    const value = row.flag === undefined ? undefined : (flags as Record<string, unknown>)[row.flag];
    if (row.flag !== undefined && isSet(value)) out[key] = resolveSetting(key, row, { flags });
  }
  return out as Partial<SettingsValues<Tb>>;
}
