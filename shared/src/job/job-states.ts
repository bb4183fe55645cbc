/**
 * The job state machine, declared once: Celery's states (kept so dashboards and habits carry
 * over) and where each may go next. The TypeScript type, the final states, the transition check
 * and the Lua both record scripts run are all derived from `NEXT`, so a new state is one row here
 * plus the code that acts on it.
 *
 * PENDING is never stored: a job without a record is PENDING (the broker holds it). A state with
 * nowhere to go is final: once stored, no write, revoke or later delivery changes it.
 */
const NEXT = {
  PENDING: ['STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'],
  // STARTED → STARTED: a redelivery (lost lock, stalled worker) starts the job again.
  STARTED: ['STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'],
  // RETRY → RETRY: the next attempt failed before its STARTED (held back briefly) was stored.
  RETRY: ['STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'],
  SUCCESS: [],
  FAILURE: [],
  REVOKED: [],
} as const satisfies Record<string, readonly string[]>;

export type JobState = keyof typeof NEXT;

/** The states with no way out. */
export type FinalState = { [S in JobState]: (typeof NEXT)[S] extends readonly [] ? S : never }[JobState];

export const JOB_STATES: readonly JobState[] = Object.keys(NEXT) as JobState[];

/** The final states: SUCCESS, FAILURE, REVOKED. */
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(JOB_STATES.filter(s => NEXT[s].length === 0));

export function isTerminalState(state: JobState): state is FinalState {
  return TERMINAL_STATES.has(state);
}

/** True for a state name this module declares (a stored value is checked before it is trusted). */
export function isJobState(value: unknown): value is JobState {
  return typeof value === 'string' && Object.hasOwn(NEXT, value);
}

/** Whether a job in `from` (`null`: no record yet, i.e. PENDING) may be written as `to`. */
export function canTransition(from: JobState | null, to: JobState): boolean {
  return (NEXT[from ?? 'PENDING'] as readonly JobState[]).includes(to);
}

const luaSet = (states: Iterable<JobState>): string => `{${[...states].map(s => `${s} = true`).join(', ')}}`;

/**
 * Put after the `#!lua` line of every script that reads or writes a record: `FINAL[state]` is
 * true for a final state, `allowed(from, to)` is the transition check (`from` nil: no record).
 * Generated here so the scripts never spell the state machine by hand.
 */
export const LUA_JOB_STATES = [
  '-- The job states, generated from shared/src/job/job-states.ts.',
  `local FINAL = ${luaSet(TERMINAL_STATES)}`,
  `local NEXT = {${JOB_STATES.map(s => `${s} = ${luaSet(NEXT[s])}`).join(', ')}}`,
  "local function allowed(from, to) return (NEXT[from or 'PENDING'] or {})[to] == true end",
  '',
].join('\n');
