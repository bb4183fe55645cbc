import { createHash } from 'node:crypto';
import { CommandBatcher, evalScript, ResultWriteError, retryUntilDeadline, type JobResultRecord, type RedisService } from '@taskline/shared';

// One round trip for every job starting in the same tick: per record, if it is REVOKED leave it
// and answer -1, else store STARTED and answer the per-job time limit the producer recorded
// (0 when none). A revoke written by any process (even before this worker started) is seen here.
// KEYS: record keys. ARGV: ttl, then one STARTED record (JSON) per key.
const START_SCRIPT = `
local answers = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local answer = 0
  if current then
    local ok, record = pcall(cjson.decode, current)
    if ok and type(record) == 'table' then
      if record['state'] == 'REVOKED' then answer = -1
      elseif type(record['timeoutMs']) == 'number' then answer = record['timeoutMs'] end
    end
  end
  if answer >= 0 then redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1]) end
  answers[i] = answer
end
return answers
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
  readonly #batch = new CommandBatcher<{ key: string; json: string }, number>(items =>
    evalScript(this.#service.client(), START_SHA, START_SCRIPT, items.map(i => i.key), [this.#expiresSeconds, ...items.map(i => i.json)]).then(
      answers => (answers as unknown[]).map(Number),
    ),
  );

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
    const answer = await retryUntilDeadline(() => this.#run(record.id, json), {
      deadlineMs: this.#deadlineMs,
      giveUp: err => new ResultWriteError(record.id, this.#deadlineMs, err),
    });
    return { revoked: answer < 0, timeoutMs: answer > 0 ? answer : null };
  }

  #run(jobId: string, json: string): Promise<number> {
    return this.#batch.submit({ key: this.#key(jobId), json });
  }
}
