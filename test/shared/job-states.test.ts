// The job state machine's one declaration and what is derived from it (pure: no Redis; the Lua
// preamble runs against Redis in job-state-machine.test.ts).
import { expect } from 'chai';
import { TERMINAL_STATES, isTerminalState } from '@taskline/shared';
import { JOB_STATES, LUA_JOB_STATES, canTransition, isJobState } from '@taskline/shared/job';

describe('shared: the job states (pure)', function () {
  it('declares the six Celery states; the final ones are SUCCESS, FAILURE and REVOKED', function () {
    expect([...JOB_STATES]).to.deep.equal(['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED']);
    expect([...TERMINAL_STATES]).to.deep.equal(['SUCCESS', 'FAILURE', 'REVOKED']);
    expect(JOB_STATES.filter(isTerminalState)).to.deep.equal(['SUCCESS', 'FAILURE', 'REVOKED']);
  });

  it('a final state goes nowhere; every other state may go to any state but PENDING', function () {
    for (const from of JOB_STATES) {
      for (const to of JOB_STATES) {
        const expected = !isTerminalState(from) && to !== 'PENDING';
        expect(canTransition(from, to), `${from} → ${to}`).to.equal(expected);
      }
    }
    expect(canTransition(null, 'SUCCESS'), 'no record yet reads as PENDING').to.equal(true);
    expect(canTransition(null, 'PENDING')).to.equal(false);
  });

  it('accepts only declared state names from storage', function () {
    for (const s of JOB_STATES) expect(isJobState(s), s).to.equal(true);
    for (const s of ['success', 'constructor', 'toString', '', 'OK', 42, null, undefined]) expect(isJobState(s), String(s)).to.equal(false);
  });

  it('the Lua preamble is generated from the same table', function () {
    expect(LUA_JOB_STATES).to.include('local FINAL = {SUCCESS = true, FAILURE = true, REVOKED = true}');
    expect(LUA_JOB_STATES).to.include('SUCCESS = {}, FAILURE = {}, REVOKED = {}');
    expect(LUA_JOB_STATES).to.include('STARTED = {STARTED = true, RETRY = true, SUCCESS = true, FAILURE = true, REVOKED = true}');
    expect(LUA_JOB_STATES).to.match(/local function allowed\(from, to\)/);
  });
});
