import { expect } from 'chai';
import { celeryException, jobIdFor, kombuListFor, parseCeleryMessage } from '@taskline/worker/internal';

/** The pure parts of the bridge: the wire format as kombu and Celery write it (checked against their sources). */
describe('Celery bridge: message format', () => {
  const envelope = (headers: Record<string, unknown>, body: unknown, properties: Record<string, unknown> = {}) =>
    JSON.stringify({
      body: Buffer.from(JSON.stringify(body)).toString('base64'),
      'content-encoding': 'utf-8',
      'content-type': 'application/json',
      headers: { lang: 'py', task: 'proj.tasks.add', id: 'c0ffee00-0000-4000-8000-000000000001', retries: 0, timelimit: [null, null], ...headers },
      properties: { correlation_id: 'x', delivery_info: { exchange: '', routing_key: 'celery' }, priority: 0, body_encoding: 'base64', delivery_tag: 't', ...properties },
    });

  it('reads a protocol-2 message: args, kwargs, eta, expires, limits, priority', () => {
    const parsed = parseCeleryMessage(
      envelope({ eta: '2026-12-04T10:00:02.123456+00:00', expires: '2026-12-04T10:00:05', timelimit: [30, 25], ignore_result: true, retries: 2 }, [[2, 3], { z: 1 }, { callbacks: null, errbacks: null, chain: null, chord: null }], { priority: 6 }),
    );
    expect(parsed.ok).to.equal(true);
    if (!parsed.ok) return;
    expect(parsed.message).to.deep.include({ task: 'proj.tasks.add', args: [2, 3], kwargs: { z: 1 }, hardLimitMs: 30_000, softLimitMs: 25_000, ignoreResult: true, retries: 2, priority: 6 });
    expect(parsed.message.etaMs).to.equal(Date.parse('2026-12-04T10:00:02.123Z'));
    expect(parsed.message.expiresMs, 'a naive time is UTC').to.equal(Date.parse('2026-12-04T10:00:05.000Z'));
  });

  it('refuses what it cannot run, with a code and a reason', () => {
    const refusal = (raw: string) => {
      const parsed = parseCeleryMessage(raw);
      return parsed.ok ? null : parsed.refusal.code;
    };
    expect(refusal('nope')).to.equal('not-json');
    expect(refusal(`"${'x'.repeat(17 * 1024 * 1024)}"`)).to.equal('too-large');
    expect(refusal('{"a":1}')).to.equal('not-an-envelope');
    expect(refusal(envelope({}, [[], {}, null]).replace(/"body":"[^"]*"/, '"body":"@@@"'))).to.equal('bad-base64');
    expect(refusal(envelope({}, [[], {}, null]).replace('application/json', 'application/x-python-serialize'))).to.equal('unknown-content-type');
    expect(refusal(envelope({ task: undefined }, { task: 'proj.tasks.add', id: 'x', args: [] }))).to.equal('protocol-v1');
    expect(refusal(envelope({}, { not: 'a list' }))).to.equal('bad-body');
    expect(refusal(envelope({ eta: 'tomorrow' }, [[], {}, null]))).to.equal('bad-headers');
  });

  it("derives the job id from the Celery id: a UUID as it is, any other id the same digest every time", () => {
    expect(jobIdFor('c0ffee00-0000-4000-8000-000000000001')).to.equal('c0ffee00-0000-4000-8000-000000000001');
    expect(jobIdFor('report-42')).to.equal(jobIdFor('report-42')).and.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(jobIdFor('report-42')).to.not.equal(jobIdFor('report-43'));
  });

  it("names kombu's priority lists as kombu does: the queue, then queue\\x06\\x16 3, 6, 9", () => {
    expect([0, 1, 2, 3, 5, 6, 8, 9].map(p => kombuListFor('celery', p))).to.deep.equal(['celery', 'celery', 'celery', 'celery\x06\x163', 'celery\x06\x163', 'celery\x06\x166', 'celery\x06\x166', 'celery\x06\x169']);
  });

  it('encodes an error as Celery does, only ever naming a real exception class', () => {
    expect(celeryException({ type: 'TypeError', message: 'bad' })).to.deep.equal({ exc_type: 'TypeError', exc_message: ['bad'], exc_module: 'builtins' });
    expect(celeryException({ type: 'print', message: 'x' }), 'not a lookup in builtins').to.deep.equal({ exc_type: 'print', exc_message: ['x'], exc_module: null });
    expect(celeryException({ type: 'TimeLimitError', message: 't' })).to.include({ exc_type: 'TimeLimitExceeded', exc_module: 'billiard.exceptions' });
  });
});
