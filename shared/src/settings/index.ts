/**
 * Settings as data: the row type, parsers with bounds, the one resolver (options > flags > env > file > default), yargs flags from a table, the unknown-variable check, and the process-wide table.
 * The names other folders of @taskline/shared and taskline's other packages use; no compatibility
 * promise beyond taskline's own packages (applications import `@taskline/shared`).
 */
export { addFlags } from './flags.js';
export { KNOWN_VARIABLES } from './known-variables.js';
export { bool, custom, int, list, oneOf, secondsAsMs, text } from './parsers.js';
export { PROCESS_SETTINGS, metricsPortSetting, resolvePrefix } from './process-table.js';
export { optionsFromFlags, resolveSetting, resolveSettings } from './resolve.js';
export { setting, variablesOf } from './table.js';
export type { Setting, SettingsOptions, SettingsValues, Table } from './table.js';
export { ALLOWED_VARIABLES, describeUnknownVariable, editDistance, findUnknownVariables, warnUnknownVariables } from './unknown-vars.js';
