import type { Argv, Options } from 'yargs';
import type { Setting, Table } from './table.js';

/** What a flag's `--help` line says: the row's doc, its variable and its default. */
export function flagHelp(row: Setting): string {
  const env = row.env ? `env ${row.env}` : '';
  const value = row.defaultDoc?.replace(/`/g, '') ?? (row.default === undefined || row.secret ? '' : String(row.default));
  const fallback = value ? `default ${value}` : '';
  const extra = [env, fallback].filter(Boolean).join(', ');
  const doc = row.flagDoc ?? row.doc;
  return extra ? `${doc} (${extra})` : doc;
}

/**
 * Declares a flag for every row of `table` that has one. No yargs default is set: an absent flag
 * leaves the value to the next layer (environment, file, default). The flags' values are read
 * back by name with `optionsFromFlags` (or the resolver's `flags` layer), which parse and check them.
 */
export function addFlags<T>(yargs: Argv<T>, table: Table): Argv<T> {
  let y = yargs;
  for (const row of Object.values(table)) {
    if (row.flag === undefined) continue;
    const option: Options = { type: row.parser.flagType, describe: flagHelp(row) };
    if (row.parser.choices) option.choices = [...row.parser.choices];
    y = y.option(row.flag, option) as Argv<T>;
  }
  return y;
}
