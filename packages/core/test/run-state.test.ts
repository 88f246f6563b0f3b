import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runStates, type RunState } from '@garrison/protocol';
import { classifyExit, shouldApplyReport, summarizeProgress } from '../src/index.ts';

describe('shouldApplyReport', () => {
  it('applies the first report', () => {
    assert.equal(shouldApplyReport(null, { state: 'running', seq: 1 }), true);
    assert.equal(shouldApplyReport(null, { state: 'succeeded', seq: 7 }), true);
  });
  it('applies newer reports while the run is not final', () => {
    assert.equal(shouldApplyReport({ state: 'scheduled', seq: 1 }, { state: 'running', seq: 2 }), true);
    assert.equal(shouldApplyReport({ state: 'running', seq: 2 }, { state: 'running', seq: 3 }), true);
    assert.equal(shouldApplyReport({ state: 'running', seq: 3 }, { state: 'failed', seq: 4 }), true);
    assert.equal(shouldApplyReport({ state: 'pending', seq: 0 }, { state: 'succeeded', seq: 9 }), true);
  });
  it('ignores duplicates and older reports', () => {
    assert.equal(shouldApplyReport({ state: 'running', seq: 3 }, { state: 'running', seq: 3 }), false);
    assert.equal(shouldApplyReport({ state: 'running', seq: 3 }, { state: 'succeeded', seq: 3 }), false);
    assert.equal(shouldApplyReport({ state: 'running', seq: 3 }, { state: 'scheduled', seq: 2 }), false);
  });
  it('never changes a final state', () => {
    for (const final of ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'] as RunState[]) {
      assert.equal(shouldApplyReport({ state: final, seq: 4 }, { state: 'running', seq: 5 }), false, final);
      assert.equal(shouldApplyReport({ state: final, seq: 4 }, { state: 'succeeded', seq: 5 }), false, final);
    }
  });
});

describe('classifyExit', () => {
  it('maps exit codes through the lists', () => {
    assert.equal(classifyExit(0, [0], []), 'succeeded');
    assert.equal(classifyExit(3010, [0, 3010], [1]), 'succeeded');
    assert.equal(classifyExit(1, [0], [1, 2]), 'succeeded_with_warnings');
    assert.equal(classifyExit(2, [0], [1]), 'failed');
    assert.equal(classifyExit(-1, [0], []), 'failed');
  });
  it('a null exit code is a failure', () => {
    assert.equal(classifyExit(null, [0], []), 'failed');
  });
  it('success wins over warning; an empty success list means [0]', () => {
    assert.equal(classifyExit(1, [1], [1]), 'succeeded');
    assert.equal(classifyExit(0, [], []), 'succeeded');
    assert.equal(classifyExit(1, [], []), 'failed');
  });
});

describe('summarizeProgress', () => {
  it('counts targets by latest state, with every state present', () => {
    const latest = new Map<string, RunState>([
      ['a', 'succeeded'],
      ['b', 'failed'],
      ['c', 'running'],
      ['not-a-target', 'failed'],
    ]);
    const p = summarizeProgress('t1', ['a', 'b', 'c', 'd'], latest);
    assert.equal(p.taskId, 't1');
    assert.equal(p.targets, 4);
    assert.equal(p.notRun, 1);
    assert.deepEqual(Object.keys(p.states).sort(), [...runStates].sort());
    assert.equal(p.states.succeeded, 1);
    assert.equal(p.states.failed, 1);
    assert.equal(p.states.running, 1);
    assert.equal(p.states.pending, 0);
    assert.equal(p.finished, false);
  });
  it('is finished when every target has a final latest run', () => {
    const latest = new Map<string, RunState>([
      ['a', 'succeeded'],
      ['b', 'skipped'],
      ['c', 'timed_out'],
    ]);
    assert.equal(summarizeProgress('t', ['a', 'b', 'c'], latest).finished, true);
    assert.equal(summarizeProgress('t', ['a', 'b', 'c', 'd'], latest).finished, false, 'a target with no run is not finished');
    assert.equal(summarizeProgress('t', ['a', 'b'], new Map([...latest, ['b', 'scheduled']])).finished, false);
  });
  it('no targets: not finished', () => {
    const p = summarizeProgress('t', [], new Map());
    assert.deepEqual({ targets: p.targets, notRun: p.notRun, finished: p.finished }, { targets: 0, notRun: 0, finished: false });
  });
  it('counts a duplicated target once', () => {
    const p = summarizeProgress('t', ['a', 'a'], new Map([['a', 'succeeded']]));
    assert.equal(p.targets, 1);
    assert.equal(p.states.succeeded, 1);
    assert.equal(p.finished, true);
  });
});
