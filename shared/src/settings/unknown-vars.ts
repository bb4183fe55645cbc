import type { Logger } from '../process/index.js';
import { KNOWN_VARIABLES } from './known-variables.js';

type Env = Record<string, string | undefined>;

/** The prefixes taskline owns: a variable under them that no table declares is most likely a typo. */
export const CHECKED_PREFIXES = ['TASKLINE_', 'REDIS_', 'RESULT_REDIS_'] as const;

/**
 * Variables under those prefixes that taskline's processes do not read but that legitimately sit
 * in their environment, each with the reason; they are never warned about.
 */
export const ALLOWED_VARIABLES: Readonly<Record<string, string>> = {
  TASKLINE_HEALTHCHECK_URL: "read by the image's docker/healthcheck.mjs, in the same container",
  TASKLINE_HEALTHCHECK_CERT: "read by the image's docker/healthcheck.mjs",
  TASKLINE_HEALTHCHECK_KEY: "read by the image's docker/healthcheck.mjs",
  TASKLINE_IMAGE: 'compose interpolation (compose/README.md), may be exported in the shell that runs a bin',
  TASKLINE_CERTS_DIR: 'compose interpolation and the ops scripts',
  TASKLINE_SECRETS_DIR: 'compose interpolation and the ops scripts',
  TASKLINE_FILES_GID: 'compose interpolation',
  TASKLINE_TASKS_MODULE: 'compose interpolation (the worker gets it as --tasks)',
  TASKLINE_SCHEDULE_FILE: 'compose interpolation (the beat gets it as --schedule)',
  TASKLINE_REDIS_IMAGE: 'compose interpolation',
  TASKLINE_TEST_REDIS: 'the test harness, whose bins inherit its environment',
  TASKLINE_TEST_REDIS_IMAGE: 'the test harness',
  REDIS_SERVER_BIN: 'the test harness (the redis-server binary)',
  REDIS_IMAGE: 'compose interpolation',
  REDIS_CLI: 'the ops scripts (ops/rotate-certs.sh)',
  REDIS_VERSION: 'the ops scripts (ops/acl/generate-acl.sh)',
  REDIS_CLI_WORDS: 'the ops scripts (ops/rotate-certs.sh)',
  TASKLINE_PULL_TIMEOUT: 'the compose test scripts (test/compose/base-images.sh)',
  TASKLINE_OFFICIAL_REDIS_IMAGE: 'the compose test scripts',
  TASKLINE_OFFICIAL_NODE_IMAGE: 'the compose test scripts',
  TASKLINE_DEBIAN_SUITE: 'the compose test scripts',
  TASKLINE_DEBIAN_MIRROR: 'the compose test scripts',
};

/** Levenshtein distance, for naming the variable a typo most likely meant. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export interface UnknownVariable {
  variable: string;
  /** The known variable nearest by edit distance. */
  closest: string;
}

/** Every set variable under a checked prefix that is neither known nor allowed, with its nearest known name. */
export function findUnknownVariables(env: Env, known: Iterable<string> = KNOWN_VARIABLES): UnknownVariable[] {
  const names = new Set(known);
  const candidates = [...names];
  const unknown = Object.keys(env).filter(
    name => env[name] !== undefined && CHECKED_PREFIXES.some(prefix => name.startsWith(prefix)) && !names.has(name) && !(name in ALLOWED_VARIABLES),
  );
  return unknown.sort().map(variable => {
    let closest = candidates[0] ?? '';
    for (const candidate of candidates) if (editDistance(variable, candidate) < editDistance(variable, closest)) closest = candidate;
    return { variable, closest };
  });
}

/** The warning's sentence: names the variable and its nearest known one, never the value. */
export function describeUnknownVariable({ variable, closest }: UnknownVariable): string {
  return `${variable} is not a taskline setting and is ignored; did you mean ${closest}? (docs/CONFIGURATION.md lists every setting)`;
}

const warned = new Set<string>();

/**
 * Logs one warning per unknown variable and process (a typo must not pass silently): the value is
 * never logged, only the name and the nearest known one. Returns what it found.
 */
export function warnUnknownVariables(env: Env, logger: Logger, known: Iterable<string> = KNOWN_VARIABLES, seen: Set<string> = warned): UnknownVariable[] {
  const found = findUnknownVariables(env, known);
  for (const unknown of found) {
    if (seen.has(unknown.variable)) continue;
    seen.add(unknown.variable);
    logger.warn(describeUnknownVariable(unknown), { variable: unknown.variable, closest: unknown.closest });
  }
  return found;
}
