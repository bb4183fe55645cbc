// The producer's HTTPS API as the compose checks use it: enqueue, read records, wait for states.
// The API's certificate is verified against the deployment's CA and the host name (127.0.0.1).
import { Agent, request as httpsRequest } from 'node:https';
import { sleep } from './docker.js';

/** A job record as the API serves it: no `worker` (it stays internal; see storedRecords in checks.ts). */
export interface JobRecord {
  id: string;
  task: string;
  state: string;
  attempt: number;
  result?: unknown;
  finishedAt?: string | null;
}

export class Api {
  readonly #agent: Agent;

  /** @param base `https://host:port` @param ca the PEM CA the API's certificate must chain to */
  constructor(
    private readonly base: string,
    private readonly token: string,
    ca: string,
  ) {
    this.#agent = new Agent({ ca, minVersion: 'TLSv1.2', keepAlive: true, maxSockets: 20 });
  }

  async request(method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; json: unknown }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${this.base}${path}`,
        {
          method,
          agent: this.#agent,
          timeout: 15_000,
          headers: {
            'content-type': 'application/json',
            ...(payload === undefined ? {} : { 'content-length': Buffer.byteLength(payload) }),
            ...(auth ? { authorization: `Bearer ${this.token}` } : {}),
          },
        },
        res => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (data += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: data }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
      req.on('error', reject);
      req.end(payload);
    });
    return { status, json: text ? (JSON.parse(text) as unknown) : null };
  }

  /** Closes the kept-alive connections (else they hold the checks' process open). */
  close(): void {
    this.#agent.destroy();
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

