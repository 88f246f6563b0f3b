import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideRollout, deviceBucket, eligibleInPhase, rolloutPhases } from '../src/rollout.ts';

describe('staged rollout', () => {
  it('lists phases: the pilot group, then the percentages', () => {
    assert.deepEqual(rolloutPhases({ pilotGroupId: 'g', percentages: [10, 50, 100] }), ['pilot', '10%', '50%', '100%']);
    assert.deepEqual(rolloutPhases({}), ['100%']);
  });
  it('spreads devices over stable buckets, and growing percentages only add devices', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `device-${i}`);
    const in10 = ids.filter((id) => eligibleInPhase({ percentages: [10, 50] }, 0, { id, inPilot: false }));
    const in50 = ids.filter((id) => eligibleInPhase({ percentages: [10, 50] }, 1, { id, inPilot: false }));
    assert.ok(in10.length > 120 && in10.length < 280, `${in10.length} of 2000 in 10%`);
    assert.ok(in50.length > 850 && in50.length < 1150, `${in50.length} of 2000 in 50%`);
    assert.ok(in10.every((id) => in50.includes(id)));
    assert.equal(deviceBucket('device-7'), deviceBucket('device-7'));
  });
  it('lets only pilot devices in during the pilot phase', () => {
    const r = { pilotGroupId: 'p', percentages: [100] };
    assert.equal(eligibleInPhase(r, 0, { id: 'x', inPilot: true }), true);
    assert.equal(eligibleInPhase(r, 0, { id: 'x', inPilot: false }), false);
    assert.equal(eligibleInPhase(r, 1, { id: 'x', inPilot: false }), true);
  });
  it('waits, advances, completes, and halts past the failure threshold', () => {
    const r = { pilotGroupId: 'p', percentages: [100], failureThresholdPercent: 25 };
    assert.deepEqual(decideRollout(r, 0, { eligible: 2, eligibleDone: 1, succeeded: 1, failed: 0 }), { action: 'wait' });
    assert.deepEqual(decideRollout(r, 0, { eligible: 2, eligibleDone: 2, succeeded: 2, failed: 0 }), { action: 'advance' });
    assert.deepEqual(decideRollout(r, 1, { eligible: 5, eligibleDone: 5, succeeded: 5, failed: 0 }), { action: 'complete' });
    assert.equal(decideRollout(r, 1, { eligible: 5, eligibleDone: 3, succeeded: 3, failed: 1 }).action, 'wait');
    const halt = decideRollout(r, 1, { eligible: 5, eligibleDone: 2, succeeded: 2, failed: 1 });
    assert.equal(halt.action, 'halt');
    assert.match((halt as { reason: string }).reason, /1 of 3 installs failed/);
  });
});
