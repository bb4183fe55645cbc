import { createHash } from 'node:crypto';
import { backoffDelay, ResultWriteError, sleep, type JobResultRecord, type RedisService } from '@taskline/shared';

// One round trip: read the record; if it is REVOKED leave it and say so (-1), else store
// STARTED and return the per-job time limit the producer recorded (0 when none).
// A revoke written by any process (even before this worker started) is seen here.
const START_SCRIPT = `
local current = redis.call('GET', KEYS[1])
local timeout = 0
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' then
    if record['state'] == 'REVOKED' then return -1 end
    if type(record['timeoutMs']) == 'number' then timeout = record['timeoutMs'] end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return timeout
`;
const START_SHA = createHash('sha1').update(START_SCRIPT).digest('hex');

/**
 * Records STARTED in the result backend unless the job was revoked. Retries with backoff
 * through a result-backend outage until the deadline, then throws ResultWriteError (the
 * attempt fails and BullMQ retries it), the same policy as `ResultBackend.write`.
 */
export class JobStartRecorder {
  readonly #service: RedisService;
  readonly #key: (jobId: string) => string;
  readonly #expiresSeconds: number;
  readonly #deadlineMs: number;

  constructor(service: RedisService, key: (jobId: string) => string, expiresSeconds: number, deadlineMs: number) {
    this.#service = service;
    this.#key = key;
    this.#expiresSeconds = expiresSeconds;
    this.#deadlineMs = deadlineMs;
  }

  /**
   * `revoked: true` if the job is revoked (nothing written); otherwise STARTED is stored and
   * `timeoutMs` is the per-job time limit given at enqueue, if any.
   */
  async start(record: JobResultRecord): Promise<{ revoked: boolean; timeoutMs: number | null }> {
    const json = JSON.stringify(record);
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await this.#run(record.id, json);
        return { revoked: answer < 0, timeoutMs: answer > 0 ? answer : null };
      } catch (err) {
        const elapsed = Date.now() - started;
        if (elapsed >= this.#deadlineMs) throw new ResultWriteError(record.id, this.#deadlineMs, err);
        await sleep(Math.min(backoffDelay(attempt, { baseMs: 100, capMs: 2000 }), this.#deadlineMs - elapsed));
      }
    }
  }

  async #run(jobId: string, json: string): Promise<number> {
    const client = this.#service.client();
    const args = [1, this.#key(jobId), json, this.#expiresSeconds] as const;
    try {
      return Number(await client.evalsha(START_SHA, ...args));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return Number(await client.eval(START_SCRIPT, ...args));
    }
  }
}
