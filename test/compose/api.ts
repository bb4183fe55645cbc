// The producer's HTTP API as the compose checks use it: enqueue, read records, wait for states.
import { sleep } from './docker.js';

export interface JobRecord {
  id: string;
  task: string;
  state: string;
  attempt: number;
  worker?: string;
  result?: unknown;
  finishedAt?: string | null;
}

export class Api {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async request(method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${this.token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
  }

  /** Enqueues each job; resolves to the ids the API acknowledged (202). */
  async enqueue(jobs: Array<{ task: string; data: unknown }>): Promise<string[]> {
    const { status, json } = await this.request('POST', '/api/v1/jobs/bulk', { jobs });
    if (status !== 202) throw new Error(`bulk enqueue answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
    return (json as { jobs: Array<{ id: string }> }).jobs.map(j => j.id);
  }

  async record(id: string): Promise<JobRecord | undefined> {
    const { status, json } = await this.request('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
    if (status === 404) return undefined;
    if (status !== 200) throw new Error(`GET job answered ${status}`);
    return json as JobRecord;
  }

  async records(ids: string[]): Promise<Map<string, JobRecord | undefined>> {
    const out = new Map<string, JobRecord | undefined>();
    // A few at a time: the API is one producer process on a 2-core machine shared with the stack.
    for (let i = 0; i < ids.length; i += 20) {
      const batch = ids.slice(i, i + 20);
      const got = await Promise.all(batch.map(id => this.record(id)));
      batch.forEach((id, k) => out.set(id, got[k]));
    }
    return out;
  }

  /** Waits until every job is in a final state; throws naming how many are not, at the deadline. */
  async settle(ids: string[], timeoutMs: number): Promise<Map<string, JobRecord>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const records = await this.records(ids);
      const open = [...records.values()].filter(r => !r || !['SUCCESS', 'FAILURE', 'REVOKED'].includes(r.state));
      if (open.length === 0) return records as Map<string, JobRecord>;
      if (Date.now() > deadline) {
        const states = [...records.values()].reduce<Record<string, number>>((acc, r) => ({ ...acc, [r?.state ?? 'missing']: (acc[r?.state ?? 'missing'] ?? 0) + 1 }), {});
        throw new Error(`${open.length} of ${ids.length} jobs not finished after ${Math.round(timeoutMs / 1000)} s: ${JSON.stringify(states)}`);
      }
      await sleep(1000);
    }
  }
}

/** The container host name in a record's `worker` (`host:pid`). */
export const workerHost = (record: JobRecord | undefined): string => (record?.worker ?? '').split(':')[0] ?? '';
