import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_SETTINGS, API_TLS_SETTINGS, PRODUCER_SETTINGS } from '@taskline/producer/internal';
import { SCHEDULER_BIN_SETTINGS, SCHEDULER_SETTINGS } from '@taskline/scheduler/internal';
import { CONNECTION_SETTINGS, ENDPOINT_SETTINGS, endpointTable } from '@taskline/shared/connection';
import { PROCESS_SETTINGS, variablesOf, type Setting, type Table } from '@taskline/shared/settings';
import { WORKER_BIN_SETTINGS, WORKER_SETTINGS } from '@taskline/worker/internal';

/**
 * Renders docs/CONFIGURATION.md from every package's settings table and the hand-written prose
 * in scripts/config-doc/template.md, and the list of known variables the unknown-variable
 * warning reads (shared/src/settings/known-variables.ts). `pnpm docs:config` writes both;
 * test/ops/configuration-doc.test.ts fails when the committed files differ.
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DOC_PATH = path.join(ROOT, 'docs/CONFIGURATION.md');
export const KNOWN_PATH = path.join(ROOT, 'shared/src/settings/known-variables.ts');
const TEMPLATE_PATH = path.join(ROOT, 'scripts/config-doc/template.md');

type OptionName = ((key: string) => string | null) | null;

/** Each table by the name the template uses, and how its library option is spelled (`null`: none, the bin's only). */
const TABLES: Record<string, { table: Table; option: OptionName }> = {
  connection: { table: CONNECTION_SETTINGS, option: key => key },
  // Read by isProduction() and createLogger() from the environment only; the others are options of every component.
  process: { table: PROCESS_SETTINGS, option: key => (['prefix', 'resultExpiresSeconds', 'routes'].includes(key) ? key : null) },
  producer: { table: PRODUCER_SETTINGS, option: key => key },
  api: { table: API_SETTINGS, option: key => `startApiServer({ ${key} })` },
  'api-tls': { table: API_TLS_SETTINGS, option: key => `tls.${key}` },
  worker: { table: WORKER_SETTINGS, option: key => key },
  'worker-bin': { table: WORKER_BIN_SETTINGS, option: null },
  scheduler: { table: SCHEDULER_SETTINGS, option: key => key },
  'scheduler-bin': { table: SCHEDULER_BIN_SETTINGS, option: null },
};

const code = (value: string): string => `\`${value}\``;
const cell = (value: string): string => value.replace(/\|/g, '\\|');

function defaultOf(row: Setting): string {
  if (row.defaultDoc !== undefined) return row.defaultDoc;
  if (row.secret || row.default === undefined) return '—';
  return code(Array.isArray(row.default) ? row.default.join(',') : String(row.default));
}

const HEADER = '| variable | flag | option | default | accepted | meaning |\n|---|---|---|---|---|---|';

function line(variable: string, flag: string, option: string, row: Setting): string {
  return `| ${[variable, flag, option, defaultOf(row), row.parser.describe, row.doc].map(cell).join(' | ')} |`;
}

function settingLine(key: string, row: Setting, option: OptionName): string {
  const variable = [row.env, row.fileEnv].filter((name): name is string => name !== undefined).map(code).join(', ') || '—';
  const name = option?.(key) ?? null;
  return line(variable, row.flag ? code(`--${row.flag}`) : '', name === null ? '—' : code(name), row);
}

/** Endpoint rows read from the environment only, to be refused when insecure. */
const NOT_OPTIONS = new Set(['sslCertReqs', 'tlsRejectUnauthorized']);

/** The broker's rows, then one row naming the result backend's variables. */
function endpointLines(keys: string[]): string[] {
  const broker = endpointTable('REDIS_');
  const backend = endpointTable('RESULT_REDIS_');
  const rows = keys.map(key => {
    const row = broker[key as keyof typeof broker];
    const option = NOT_OPTIONS.has(key) ? '—' : code(`broker.${key}`);
    return line(code(row.env ?? ''), row.flag ? code(`--${row.flag}`) : '', option, { ...row, default: ENDPOINT_SETTINGS[key as keyof typeof ENDPOINT_SETTINGS].default });
  });
  const names = keys.map(key => backend[key as keyof typeof backend]);
  const flags = names.filter(row => row.flag).map(row => code(`--${row.flag ?? ''}`));
  const fallback: Setting = { parser: { describe: 'the same', flagType: 'string', parse: raw => raw }, defaultDoc: "the broker's", doc: 'The result backend, same meanings.' };
  rows.push(line(names.map(row => code(row.env ?? '')).join(', '), flags.join(', '), code('backend.*'), fallback));
  return rows;
}

/** `{{settings table:key,key table}}` (a table without keys: its rows no other marker placed) and `{{endpoint key,key}}`. */
function renderMarkers(template: string): string {
  const placed = new Set<string>();
  const explicit = [...template.matchAll(/\{\{settings ([^}]+)\}\}/g)].flatMap(m => (m[1] ?? '').trim().split(/\s+/));
  for (const spec of explicit) {
    const [name, keys] = spec.split(':');
    if (keys) for (const key of keys.split(',')) placed.add(`${name}.${key}`);
  }
  const endpointKeys = new Set<string>();
  const out = template
    .replace(/\{\{endpoint ([^}]+)\}\}/g, (_, keys: string) => {
      const list = keys.trim().split(',');
      for (const key of list) endpointKeys.add(key);
      return [HEADER, ...endpointLines(list)].join('\n');
    })
    .replace(/\{\{settings ([^}]+)\}\}/g, (_, specs: string) => [HEADER, ...specs.trim().split(/\s+/).flatMap(spec => specLines(spec, placed))].join('\n'));
  const missingEndpoint = Object.keys(ENDPOINT_SETTINGS).filter(key => !endpointKeys.has(key));
  if (missingEndpoint.length > 0) throw new Error(`template.md places no {{endpoint}} row for ${missingEndpoint.join(', ')}`);
  return out;
}

function specLines(spec: string, placed: Set<string>): string[] {
  const [name = '', keys] = spec.split(':');
  const entry = TABLES[name];
  if (!entry) throw new Error(`template.md names the unknown settings table "${name}"`);
  const wanted = keys ? keys.split(',') : Object.keys(entry.table).filter(key => !placed.has(`${name}.${key}`));
  return wanted.map(key => {
    const row = entry.table[key];
    if (!row) throw new Error(`template.md names ${name}.${key}, which is not a row`);
    return settingLine(key, row, entry.option);
  });
}

/** Every table name must have a catch-all marker, so a new row always lands in the reference. */
function checkCatchAll(template: string): void {
  const specs = [...template.matchAll(/\{\{settings ([^}]+)\}\}/g)].flatMap(m => (m[1] ?? '').trim().split(/\s+/));
  const missing = Object.keys(TABLES).filter(name => !specs.includes(name));
  if (missing.length > 0) throw new Error(`template.md has no catch-all {{settings NAME}} marker for ${missing.join(', ')}`);
}

export function renderConfigurationDoc(template = readFileSync(TEMPLATE_PATH, 'utf8')): string {
  checkCatchAll(template);
  const banner = '<!-- Generated by scripts/gen-config-doc.ts (`pnpm docs:config`) from the settings tables and scripts/config-doc/template.md; edit those, not this file. -->\n';
  return banner + renderMarkers(template);
}

/** Every variable any table reads, the broker's and the result backend's included. */
export function knownVariables(): string[] {
  const tables = [...Object.values(TABLES).map(entry => entry.table), endpointTable('REDIS_'), endpointTable('RESULT_REDIS_')];
  return [...new Set(tables.flatMap(table => variablesOf(table)))].sort();
}

export function renderKnownVariables(): string {
  const names = knownVariables().map(name => `  '${name}',`).join('\n');
  return `// Generated by scripts/gen-config-doc.ts (\`pnpm docs:config\`) from every package's settings table; do not edit.\n// The unknown-variable warning reads it: shared cannot import the other packages' tables.\nexport const KNOWN_VARIABLES: readonly string[] = [\n${names}\n];\n`;
}
