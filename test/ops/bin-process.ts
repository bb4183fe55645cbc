import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The three bins, as users run them. */
export const BINS = {
  worker: fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url)),
  producer: fileURLToPath(new URL('../../producer/bin/taskline-producer.js', import.meta.url)),
  scheduler: fileURLToPath(new URL('../../scheduler/bin/taskline-scheduler.js', import.meta.url)),
} as const;

export const EXAMPLE_TASKS = fileURLToPath(new URL('../../worker/examples/tasks.ts', import.meta.url));
export const EXAMPLE_SCHEDULE = fileURLToPath(new URL('../../scheduler/examples/schedule.json', import.meta.url));

export interface LogLine {
  level?: string;
  message?: string;
  [field: string]: unknown;
}

const live = new Set<ChildProcess>();

/** One bin process: its output (stdout and stderr), JSON lines parsed, its exit code and how long it ran. */
export class BinProcess {
  readonly child: ChildProcess;
  readonly raw: string[] = [];
  readonly exited: Promise<number | null>;
  readonly startedAt = performance.now();
  ranMs = -1;

  constructor(bin: keyof typeof BINS, args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [BINS[bin], ...args], {
      env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', TASKLINE_METRICS_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    const collect = (chunk: Buffer): void => {
      this.raw.push(chunk.toString('utf8'));
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise(resolve =>
      this.child.once('exit', code => {
        this.ranMs = performance.now() - this.startedAt;
        live.delete(this.child);
        resolve(code);
      }),
    );
  }

  get text(): string {
    return this.raw.join('');
  }

  /** The JSON log lines (other lines, such as the bin's last `taskline-x: …` line, are left out). */
  get logs(): LogLine[] {
    return this.text
      .split('\n')
      .filter(line => line.startsWith('{'))
      .flatMap(line => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
  }

  /** Waits for a log line with this message (or matching it); throws with the output on timeout or exit. */
  async waitFor(message: string | RegExp, timeoutMs: number): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find(l => (typeof message === 'string' ? l.message === message : message.test(l.message ?? '')));
      if (hit) return hit;
      if (this.ranMs >= 0 || Date.now() > deadline) throw new Error(`no log line ${String(message)} (${this.ranMs >= 0 ? 'exited' : 'timed out'}); output:\n${this.text.slice(-3000)}`);
      await new Promise(resolve => setTimeout(resolve, 50));
    }
  }

  /** The ops (or API) port the process logged. */
  async port(timeoutMs = 20_000): Promise<number> {
    const line = await this.waitFor(/Serving \/metrics|ops server listening|Producer API listening/, timeoutMs);
    return Number(line['port']);
  }

  /** The exit code, or a failure if it has not exited within `timeoutMs`. */
  async exitWithin(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; output:\n${this.text.slice(-3000)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<number | null> {
    if (this.ranMs < 0) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Kills every bin process still running (afterEach); resolves once they are gone. */
export async function killAllBins(): Promise<number> {
  const left = [...live];
  for (const child of left) child.kill('SIGKILL');
  await Promise.all(left.map(child => new Promise(resolve => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)))));
  return left.length;
}
