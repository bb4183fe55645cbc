import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatInZone, loadScheduleFile, nextRuns, parseScheduleFile, ScheduleFileError } from '@taskline/scheduler';

/** Parses `schedules` and returns the error it must throw. */
function invalid(schedules: unknown): ScheduleFileError {
  try {
    parseScheduleFile(JSON.stringify(schedules), 'test.json');
  } catch (err) {
    expect(err).to.be.instanceOf(ScheduleFileError);
    return err as ScheduleFileError;
  }
  throw new Error('expected the schedule file to be rejected');
}

describe('scheduler: schedule file', () => {
  it('accepts both shapes and fills defaults', () => {
    const wrapped = parseScheduleFile(JSON.stringify({ schedules: [{ id: 'a', task: 'echo', every: '30s' }] }));
    const bare = parseScheduleFile(JSON.stringify([{ id: 'a', task: 'echo', every: '30s' }]));
    expect(wrapped.entries[0]).to.include({ id: 'a', queue: 'default', tz: 'UTC', everyMs: 30_000, cron: null });
    expect(bare.entries[0]?.hash).to.equal(wrapped.entries[0]?.hash);
    const cron = parseScheduleFile(JSON.stringify([{ id: 'b', task: 'add', cron: '*/5  * * * *', tz: 'Europe/Berlin', every: undefined }]));
    expect(cron.entries[0]).to.include({ cron: '*/5 * * * *', tz: 'Europe/Berlin', everyMs: null });
    expect(parseScheduleFile('[{"id":"c","task":"t","every":250}]').entries[0]?.everyMs).to.equal(250);
    expect(parseScheduleFile('[{"id":"c","task":"t","every":"5m"}]').entries[0]?.everyMs).to.equal(300_000);
    expect(parseScheduleFile('[{"id":"c","task":"t","every":"1h"}]').entries[0]?.everyMs).to.equal(3_600_000);
  });

  it('changes the entry hash when the timing or payload changes, not when keys are reordered', () => {
    const hash = (entry: object): string | undefined => parseScheduleFile(JSON.stringify([entry])).entries[0]?.hash;
    const base = hash({ id: 'a', task: 'add', cron: '0 * * * *', data: { a: 1, b: 2 } });
    expect(hash({ data: { b: 2, a: 1 }, cron: '0 * * * *', task: 'add', id: 'a' })).to.equal(base);
    expect(hash({ id: 'a', task: 'add', cron: '5 * * * *', data: { a: 1, b: 2 } })).to.not.equal(base);
    expect(hash({ id: 'a', task: 'add', cron: '0 * * * *', data: { a: 1, b: 3 } })).to.not.equal(base);
  });

  const cases: Array<[string, unknown, string, string | null, RegExp]> = [
    ['a bad cron', [{ id: 'x', task: 't', cron: '61 * * * *' }], 'schedules[0] (id "x")', 'cron', /not a valid cron expression/],
    ['a cron with 4 fields', [{ id: 'x', task: 't', cron: '* * * *' }], 'schedules[0] (id "x")', 'cron', /5 fields .* or 6/],
    ['an unknown time zone', [{ id: 'x', task: 't', cron: '0 * * * *', tz: 'Mars/Olympus' }], 'schedules[0] (id "x")', 'tz', /IANA time zone/],
    ['both cron and every', [{ id: 'x', task: 't', cron: '0 * * * *', every: '5s' }], 'schedules[0] (id "x")', 'cron', /both set; keep exactly one/],
    ['neither cron nor every', [{ id: 'x', task: 't' }], 'schedules[0] (id "x")', 'cron', /"every" is required/],
    ['an unknown key', [{ id: 'x', task: 't', every: '5s', cronn: '* * * * *' }], 'schedules[0] (id "x")', 'cronn', /not a known field/],
    ['a bad every', [{ id: 'x', task: 't', every: '5 minutes' }], 'schedules[0] (id "x")', 'every', /duration like "30s"/],
    ['a too-short every', [{ id: 'x', task: 't', every: 5 }], 'schedules[0] (id "x")', 'every', /from 100/],
    ['a wrong type', [{ id: 'x', task: 42, every: '5s' }], 'schedules[0] (id "x")', 'task', /must be a task name/],
    ['a missing id', [{ task: 't', every: '5s' }], 'schedules[0]', 'id', /letters, digits/],
    ['a bad date', [{ id: 'x', task: 't', every: '5s', startDate: 'soon' }], 'schedules[0] (id "x")', 'startDate', /ISO date/],
    ['a bad limit', [{ id: 'x', task: 't', every: '5s', limit: 0 }], 'schedules[0] (id "x")', 'limit', /whole number ≥ 1/],
    ['an unknown job option', [{ id: 'x', task: 't', every: '5s', options: { retries: 3 } }], 'schedules[0] (id "x")', 'options.retries', /not a known job option/],
    ['tz without cron', [{ id: 'x', task: 't', every: '5s', tz: 'UTC' }], 'schedules[0] (id "x")', 'tz', /only applies to "cron"/],
    ['an unknown top-level key', { schedules: [], extra: 1 }, 'file', 'extra', /not a known top-level field/],
  ];
  for (const [what, file, entry, field, message] of cases) {
    it(`names the entry and field for ${what}`, () => {
      const error = invalid(file);
      expect(error.code).to.equal('SCHEDULE_FILE_INVALID');
      expect(error.problems).to.have.length(1);
      expect(error.problems[0]).to.include({ entry, field });
      expect(error.problems[0]?.message).to.match(message);
      expect(error.message).to.include(entry).and.include(`field "${field}"`);
    });
  }

  it('reports a duplicate id against the first one', () => {
    const error = invalid([{ id: 'x', task: 't', every: '5s' }, { id: 'y', task: 't', every: '5s' }, { id: 'x', task: 't', every: '6s' }]);
    expect(error.problems).to.deep.equal([{ entry: 'schedules[2] (id "x")', field: 'id', message: 'duplicates the id of schedules[0]; ids must be unique' }]);
  });

  it('collects every problem of every entry into one error', () => {
    const error = invalid([{ id: 'a', task: 't', cron: 'nope' }, { id: 'b', task: 't', every: '1s', tz: 'Nowhere/City' }, { id: 'c', task: 't', every: '1s' }]);
    expect(error.problems.map(p => `${p.entry}:${p.field}`)).to.deep.equal(['schedules[0] (id "a"):cron', 'schedules[1] (id "b"):tz', 'schedules[1] (id "b"):tz']);
    expect(error.message).to.match(/has 3 problems; fix them/);
  });

  it('explains malformed JSON and a missing file', async () => {
    expect(() => parseScheduleFile('{"schedules": [', 'broken.json')).to.throw(ScheduleFileError, /broken\.json.*not valid JSON/s);
    const dir = await mkdtemp(join(tmpdir(), 'taskline-sched-'));
    try {
      const error = await loadScheduleFile(join(dir, 'missing.json')).then(() => null, (err: unknown) => err as ScheduleFileError);
      expect(error?.message).to.match(/missing\.json.*does not exist; pass the path of a JSON schedule file with --schedule/s);
      await writeFile(join(dir, 'ok.json'), '[{"id":"a","task":"echo","every":"1s"}]');
      expect((await loadScheduleFile(join(dir, 'ok.json'))).entries).to.have.length(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('scheduler: next runs across DST changes', () => {
  const cron = (expression: string, tz: string) => ({ cron: expression, tz, everyMs: null, startDate: null, endDate: null });

  it('keeps 09:00 Europe/Berlin at 09:00 local when clocks go forward (2026-03-29)', () => {
    const runs = nextRuns(cron('0 9 * * *', 'Europe/Berlin'), 3, new Date('2026-03-27T12:00:00Z'));
    expect(runs.map(d => d.toISOString())).to.deep.equal(['2026-03-28T08:00:00.000Z', '2026-03-29T07:00:00.000Z', '2026-03-30T07:00:00.000Z']);
    expect(runs.map(d => formatInZone(d, 'Europe/Berlin').slice(11, 19))).to.deep.equal(['09:00:00', '09:00:00', '09:00:00']);
  });

  it('runs an hourly New York cron once per real hour over the spring-forward gap (2026-03-08)', () => {
    const runs = nextRuns(cron('0 * * * *', 'America/New_York'), 3, new Date('2026-03-08T05:30:00Z'));
    expect(runs.map(d => d.toISOString())).to.deep.equal(['2026-03-08T06:00:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-08T08:00:00.000Z']);
    expect(runs.map(d => formatInZone(d, 'America/New_York'))).to.deep.equal(['2026-03-08 01:00:00 EST', '2026-03-08 03:00:00 EDT', '2026-03-08 04:00:00 EDT']);
  });

  it('moves a 02:30 New York run that does not exist on 2026-03-08 to 03:30 EDT, once', () => {
    const runs = nextRuns(cron('30 2 * * *', 'America/New_York'), 3, new Date('2026-03-06T12:00:00Z'));
    expect(runs.map(d => d.toISOString())).to.deep.equal(['2026-03-07T07:30:00.000Z', '2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z']);
  });

  it('runs a 01:30 New York job once on the fall-back day (2026-11-01)', () => {
    const runs = nextRuns(cron('30 1 * * *', 'America/New_York'), 2, new Date('2026-10-31T12:00:00Z'));
    expect(runs.map(d => d.toISOString())).to.deep.equal(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });
});
