import { expect } from 'chai';
import { ConfigError, InvalidNameError, TasklineError, isQueueName } from '@taskline/shared';
import { NAME_RULES, assertQueueName, assertTaskName, isJobId } from '@taskline/shared/job';
import { resolvePrefix } from '@taskline/shared/settings';
import { NotLeaderError, parseScheduleFile, type ScheduleFileError } from '@taskline/scheduler';

describe('name rules and coded errors (no Redis)', function () {
  it('queue and task names break their rule with a coded TasklineError', function () {
    expect(assertQueueName('emails.v2')).to.equal('emails.v2');
    expect(() => assertQueueName('has space')).to.throw(InvalidNameError).with.property('code', 'INVALID_QUEUE_NAME');
    expect(() => assertTaskName('a/b')).to.throw(InvalidNameError).with.property('code', 'INVALID_TASK_NAME');
    expect(() => assertTaskName('x'.repeat(201))).to.throw(/use 1-200 letters/);
  });

  it('the schedule file follows the same rules as every process', function () {
    const file = (queue: string, task: string): string => JSON.stringify({ schedules: [{ id: 'a', task, queue, every: '1m' }] });
    expect(parseScheduleFile(file('emails.v2', 'reports:render')).entries[0]?.queue).to.equal('emails.v2');
    const err = (() => {
      try {
        parseScheduleFile(file('q:colon', 'a/b'));
      } catch (e) {
        return e as ScheduleFileError;
      }
      throw new Error('expected a ScheduleFileError');
    })();
    expect(err.problems.map(p => p.field)).to.deep.equal(['task', 'queue']);
    expect(err.problems[1]?.message).to.include(NAME_RULES.queue.says);
    expect(isQueueName('q:colon'), 'the same verdict outside the file').to.equal(false);
  });

  it('a bad prefix is a ConfigError naming the option or the variable', function () {
    expect(resolvePrefix({})).to.equal('taskline');
    expect(resolvePrefix({ TASKLINE_PREFIX: 'app1' }, 'app2')).to.equal('app2');
    expect(() => resolvePrefix({ TASKLINE_PREFIX: 'a b' })).to.throw(ConfigError).with.property('variable', 'TASKLINE_PREFIX');
    expect(() => resolvePrefix({}, 'a:b')).to.throw(ConfigError).with.property('variable', 'prefix');
  });

  it('a beat tick id holds a schedule id by the same rule', function () {
    expect(isJobId('repeat:beat:nightly-report.v2:1700000000000')).to.equal(true);
    expect(isJobId('repeat:beat:a b:1700000000000')).to.equal(false);
  });

  it("NotLeaderError is a TasklineError with a stable code", function () {
    const err = new NotLeaderError();
    expect(err).to.be.instanceOf(TasklineError);
    expect(err.code).to.equal('BEAT_NOT_LEADER');
  });
});
