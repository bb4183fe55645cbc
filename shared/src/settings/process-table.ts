import { NAME_RULES } from '../names.js';
import { int, oneOf, text } from './parsers.js';
import { resolveSetting } from './resolve.js';
import { setting, type Table } from './table.js';

type Env = Record<string, string | undefined>;

/**
 * Settings every taskline process reads besides its connections. `TASKLINE_ENV`/`NODE_ENV`
 * (`isProduction`), `LOG_LEVEL`/`LOG_FORMAT` (`createLogger`) and `TASKLINE_ROUTES`
 * (`resolveRoutes`) are declared here for the reference and the unknown-variable check; their
 * functions read them (their messages are part of the contract).
 */
export const PROCESS_SETTINGS = {
  environment: setting({
    env: 'TASKLINE_ENV',
    parser: oneOf(['production', 'development', 'test'], { code: 'CONFIG_UNKNOWN_ENVIRONMENT' }),
    doc: '`production` turns on strict mode everywhere: plaintext Redis refused, and the producer\'s HTTP API needs a token and HTTPS. Anything else is refused: a typo must not turn strict mode off. When unset, `NODE_ENV` decides.',
  }),
  nodeEnv: setting({
    env: 'NODE_ENV',
    parser: text(),
    doc: 'Read only when `TASKLINE_ENV` is unset: `production` then means production for every process and the HTTP API (one switch, `isProduction()` in `@taskline/shared`).',
  }),
  prefix: setting({
    env: 'TASKLINE_PREFIX',
    flag: 'prefix',
    parser: text({ pattern: NAME_RULES.prefix.pattern, says: NAME_RULES.prefix.says, code: 'CONFIG_INVALID_PREFIX' }),
    default: 'taskline',
    doc: 'BullMQ key prefix and result-key prefix (`<prefix>:result:<id>`). Must be the same in every process of a deployment (and in the ACL files). The flag: producer commands.',
  }),
  resultExpiresSeconds: setting({
    env: 'RESULT_EXPIRES',
    parser: int({ min: 1, max: 31_536_000 }),
    default: 86_400,
    doc: "TTL of result records in seconds (producer and worker). Every result key carries it; an idempotency key answers with its first job as long.",
  }),
  routes: setting({
    env: 'TASKLINE_ROUTES',
    parser: text(),
    doc: 'Which queue each task goes to when a caller names none: a JSON object (`{"send-email": "email", "reports.*": "reports"}`; exact names win over globs, then the first matching glob) or the path of a JSON file holding one. Read by every process: producers (library, HTTP API, CLI) and the beat route with it; a worker consumes its tasks\' routed queues and warns once when a task arrives on a queue its route does not name.',
  }),
  startTimeoutMs: setting({
    env: 'TASKLINE_START_TIMEOUT_MS',
    parser: int({ min: 0, max: 86_400_000 }),
    default: 60_000,
    doc: 'How long `start` / `serve` wait, retrying, for what can heal by waiting — Redis not up yet (refused, timed out, not resolvable yet) or a configured secret or certificate file not mounted yet — before exiting 1 (`START_TIMEOUT`); `0` waits not at all. Anything else (a bad setting, a certificate that does not verify, a rejected password, a malformed URL) exits at once.',
  }),
  logLevel: setting({
    env: 'LOG_LEVEL',
    parser: oneOf(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'], { code: 'CONFIG_INVALID_LOG_LEVEL' }),
    defaultDoc: "`info` for long-running processes (`serve`, `start`); `warn` for the producer's one-shot commands; `error` for `health` (which prints start-up warnings itself, as `WARN …` on stderr) and `taskline-scheduler list`",
    doc: 'The lowest level logged.',
  }),
  logFormat: setting({
    env: 'LOG_FORMAT',
    parser: oneOf(['json', 'pretty']),
    defaultDoc: '`pretty` on a TTY, else `json`',
    doc: '`json` (one JSON object per line, with `jobId`, `task`, `queue`) or `pretty`.',
  }),
} satisfies Table;

/**
 * BullMQ key prefix shared by every taskline process: `option` if given, else `TASKLINE_PREFIX`,
 * else `taskline`; a ConfigError naming the option or the variable when it breaks the rule.
 */
export function resolvePrefix(env: Env = process.env, option?: string): string {
  return resolveSetting('prefix', PROCESS_SETTINGS.prefix, { options: { prefix: option }, env });
}

/** The ops server's port row of a bin (`--metrics-port`, `TASKLINE_METRICS_PORT`); `0` picks a free one. */
export function metricsPortSetting(defaultPort: number, who: string) {
  return setting({
    env: 'TASKLINE_METRICS_PORT',
    flag: 'metrics-port',
    parser: int({ min: 0, max: 65_535 }),
    default: defaultPort,
    doc: `Port of the ${who}'s \`/metrics\`, \`/healthz\`, \`/readyz\` (\`0\` picks a free one).`,
  });
}
