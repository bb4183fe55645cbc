import winston from 'winston';
import { ConfigError } from '../errors.js';
import { Secret, scrubSecrets } from './secret.js';
import { activeTraceIds } from './trace-ids.js';

export type Logger = winston.Logger;

export interface LoggerOptions {
  /** The process or component, put in every line as `component`. */
  component: string;
  /** @defaultValue `LOG_LEVEL` or `info` */
  level?: string;
  /** `json` for machines, `pretty` for people. @defaultValue `pretty` on a TTY, else `json` (`LOG_FORMAT` overrides) */
  format?: 'json' | 'pretty';
  /** Where lines go; tests pass a stream to capture them. @defaultValue stderr */
  stream?: NodeJS.WritableStream;
  /** Literal values (passwords, tokens) to blank out wherever they appear. */
  secrets?: string[];
  /** Where `LOG_LEVEL` and `LOG_FORMAT` are read. @defaultValue `process.env` */
  env?: Record<string, string | undefined>;
}

const SECRET_KEY = /pass(word)?|secret|token|authorization|api[-_]?key|credential/i;
const LEVELS = new Set(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']);

function redactValue(value: unknown, secrets: string[], depth: number): unknown {
  if (value instanceof Secret) return '[redacted]';
  if (typeof value === 'string') {
    let out = scrubSecrets(value);
    for (const secret of secrets) if (secret) out = out.split(secret).join('[redacted]');
    return out;
  }
  if (value instanceof Error) return redactValue({ name: value.name, message: value.message, code: (value as { code?: unknown }).code }, secrets, depth);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(v => redactValue(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) && v !== undefined && v !== null && v !== '' ? '[redacted]' : redactValue(v, secrets, depth + 1);
  }
  return out;
}

/** Blanks passwords, tokens and URL credentials out of every log record. */
const redact = winston.format((info, opts: unknown) => {
  const secrets = (opts as { secrets?: string[] } | undefined)?.secrets ?? [];
  for (const key of Object.keys(info)) {
    const value = info[key];
    info[key] = SECRET_KEY.test(key) && typeof value === 'string' && key !== 'message' ? '[redacted]' : redactValue(value, secrets, 0);
  }
  return info;
});

/** Adds `trace_id` and `span_id` (OpenTelemetry's log field names) while a span is active. */
const traceIds = winston.format(info => {
  const ids = activeTraceIds();
  if (ids) Object.assign(info, ids);
  return info;
});

/**
 * A winston logger: JSON lines by default, a readable single line per record on a TTY,
 * with secrets redacted. Extra fields (`jobId`, `task`, `queue`) go on the line as given, and
 * `trace_id`/`span_id` when an OpenTelemetry span is active.
 */
export function createLogger(options: LoggerOptions): Logger {
  const env = options.env ?? process.env;
  const level = options.level ?? env['LOG_LEVEL'] ?? 'info';
  if (!LEVELS.has(level)) {
    throw new ConfigError('CONFIG_INVALID_LOG_LEVEL', 'LOG_LEVEL', `LOG_LEVEL must be one of ${[...LEVELS].join(', ')}, got "${level}"; fix or unset it.`);
  }
  const stream = options.stream ?? process.stderr;
  const envFormat = env['LOG_FORMAT'];
  const isTty = (stream as { isTTY?: boolean }).isTTY === true;
  const format = options.format ?? (envFormat === 'json' || envFormat === 'pretty' ? envFormat : isTty ? 'pretty' : 'json');
  const pretty = winston.format.printf(info => {
    const { level: lvl, message, timestamp, component, ...rest } = info;
    const fields = Object.entries(rest)
      .filter(([k]) => typeof k === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${String(timestamp)} ${lvl} [${String(component)}] ${String(message)}${fields ? ` ${fields}` : ''}`;
  });
  return winston.createLogger({
    level,
    defaultMeta: { component: options.component },
    format: winston.format.combine(
      redact({ secrets: options.secrets ?? [] }),
      traceIds(),
      winston.format.timestamp(),
      format === 'json' ? winston.format.json() : winston.format.combine(winston.format.colorize(), pretty),
    ),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that drops everything; for library users who pass none. */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
