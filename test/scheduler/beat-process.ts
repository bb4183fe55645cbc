import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker, type Job } from 'bullmq';
import { createConnections, resolveConnectionOptions, type TasklineConnections } from '@taskline/shared';

export const BEAT_BIN = fileURLToPath(new URL('../../scheduler/bin/taskline-scheduler.js', import.meta.url));

/** The parent's environment without any Redis or taskline settings (the test sets its own). */
function cleanEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(RESULT_)?REDIS_|^TASKLINE_|^LOG_/.test(k)) continue;
    out[k] = v;
  }
  return out;
}

export interface LogLine {
  level: string;
  message: string;
  [field: string]: unknown;
}

/** One `taskline-scheduler start` child process with its parsed JSON log lines. */
export class BeatProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly raw: string[] = [];
  exited: Promise<number | null>;
  #exitCode: number | null | undefined = undefined;

  constructor(readonly name: string, schedulePath: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [BEAT_BIN, 'start', '--schedule', schedulePath, '--metrics-port', '0', '--metrics-host', '127.0.0.1'], {
      env: { ...cleanEnv(), LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        this.raw.push(line);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', message: line });
        }
      }
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise(resolve => this.child.once('exit', code => resolve((this.#exitCode = code))));
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  has(message: string, since = 0): boolean {
    return this.logs.slice(since).some(l => l.message === message);
  }

  async waitFor(message: string, timeoutMs: number, since = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs.slice(since).find(l => l.message === message);
      if (line) return line;
      if (!this.running) throw new Error(`${this.name} exited before logging "${message}":\n${this.raw.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not log "${message}" within ${timeoutMs} ms:\n${this.raw.slice(-20).join('\n')}`);
      await new Promise(r => setTimeout(r, 50));
    }
  }

  async metric(name: string): Promise<number | null> {
    const port = (this.logs.find(l => l.message === 'ops server listening')?.['port'] as number | undefined) ?? null;
    if (port === null) return null;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const line = text.split('\n').find(l => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.split(' ').pop()) : null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resumes a stopped process first. */
  async stop(graceMs = 5000): Promise<number | null> {
    if (!this.running) return this.#exitCode ?? null;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A BullMQ worker that records each tick job it runs: job id → times run. */
export class TickConsumer {
  readonly runs = new Map<string, number>();
  #connections: TasklineConnections;
  #worker: Worker | null = null;

  constructor(env: Record<string, string>, private readonly queue: string, private readonly prefix: string) {
    this.#connections = createConnections({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env), role: 'worker', component: 'test-ticks' });
  }

  async start(): Promise<void> {
    const connection = await this.#connections.broker.bullmqConnection(1);
    this.#worker = new Worker(
      this.queue,
      async (job: Job) => {
        this.runs.set(job.id ?? '?', (this.runs.get(job.id ?? '?') ?? 0) + 1);
      },
      { connection, prefix: this.prefix, concurrency: 4 },
    );
    this.#worker.on('error', () => undefined);
    await this.#worker.waitUntilReady();
  }

  /** Tick due times (ms) of one schedule, sorted, from the job ids `repeat:beat:<id>:<ms>`. */
  ticks(scheduleId: string): number[] {
    const prefix = `repeat:beat:${scheduleId}:`;
    return [...this.runs.keys()].filter(id => id.startsWith(prefix)).map(id => Number(id.slice(prefix.length))).sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    await this.#worker?.close();
    await this.#connections.close();
  }
}

/** Asserts-friendly summary: duplicates (jobs run twice) and gaps between consecutive ticks. */
export function tickReport(consumer: TickConsumer, scheduleId: string, everyMs: number): { ticks: number[]; duplicates: string[]; gaps: number[] } {
  const ticks = consumer.ticks(scheduleId);
  const duplicates = [...consumer.runs].filter(([id, n]) => id.startsWith(`repeat:beat:${scheduleId}:`) && n > 1).map(([id]) => id);
  const gaps: number[] = [];
  for (let i = 1; i < ticks.length; i++) {
    const step = (ticks[i] as number) - (ticks[i - 1] as number);
    if (step !== everyMs) gaps.push(step);
  }
  return { ticks, duplicates, gaps };
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));
