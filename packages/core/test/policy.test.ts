import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyProfile } from '@garrison/protocol';
import {
  agentPolicy,
  canonicalJson,
  GroupTree,
  policiesEtag,
  policyChanges,
  PolicyIndex,
  policyShapeProblems,
  reconcilePolicy,
  type DeviceFacts,
  type PolicyAssignmentFacts,
  type PolicyFacts,
  type PolicyTypeFacts,
} from '../src/index.ts';

/*
 * root ── servers ── web ── frontend
 *    │          └── db
 *    └── ws ── laptops
 */
const tree = new GroupTree([
  { id: 'root', parentId: null, name: 'My Organization', blockInheritance: false },
  { id: 'servers', parentId: 'root', name: 'Servers', blockInheritance: false },
  { id: 'web', parentId: 'servers', name: 'Web', blockInheritance: false },
  { id: 'frontend', parentId: 'web', name: 'Frontend', blockInheritance: false },
  { id: 'db', parentId: 'servers', name: 'Database', blockInheritance: false },
  { id: 'ws', parentId: 'root', name: 'Workstations', blockInheritance: false },
  { id: 'laptops', parentId: 'ws', name: 'Laptops', blockInheritance: false },
]);

const scanner: PolicyTypeFacts = {
  product: 'scanner',
  defaults: { realTime: false, folders: [], action: 'report', maxSizeMb: 100, exclusions: [] },
  lockable: ['realTime', 'folders', 'action', 'exclusions'],
};
const agent: PolicyTypeFacts = { product: 'garrison', defaults: { checkIn: 60, enforcement: 5 }, lockable: null };

function device(id: string, groupId: string, extra: Partial<DeviceFacts> = {}): DeviceFacts {
  return { id, groupId, name: id, hostname: `${id}.corp.example`, osPlatform: 'linux', osName: 'Debian', tags: [], products: [], ...extra };
}
function policy(id: string, settings: Record<string, unknown>, locked: string[] = [], profiles: PolicyProfile[] = [], product = 'scanner'): PolicyFacts {
  return { id, name: `Policy ${id}`, product, revision: 3, settings, locked, profiles };
}
function profile(id: string, priority: number, condition: PolicyProfile['condition'], settings: Record<string, unknown>, locked: string[] = [], enabled = true): PolicyProfile {
  return { id, name: `Profile ${id}`, priority, enabled, condition, settings, locked };
}
const assign = (groupId: string, policyId: string | null, blockInheritance = false, product = 'scanner'): PolicyAssignmentFacts => ({ groupId, product, policyId, blockInheritance });

function values(index: PolicyIndex, d: DeviceFacts, product = 'scanner'): Record<string, unknown> {
  return agentPolicy(index.effective(d, product, tree)!).settings;
}

describe('effective policy', () => {
  it('is the defaults, with origin "default", when nothing is assigned', () => {
    const index = new PolicyIndex([scanner], [], []);
    const e = index.effective(device('d', 'frontend'), 'scanner', tree)!;
    assert.deepEqual(agentPolicy(e).settings, scanner.defaults);
    for (const s of Object.values(e.settings)) {
      assert.deepEqual(s.origin, { kind: 'default' });
      assert.equal(s.lockedBy, null);
    }
    assert.equal(index.effective(device('d', 'frontend'), 'unknown-product', tree), null);
  });

  it('inherits down the tree; the nearest policy wins per setting, unset settings come from above', () => {
    const index = new PolicyIndex([scanner], [policy('top', { realTime: true, action: 'quarantine' }), policy('web', { action: 'report', maxSizeMb: 5 })], [assign('root', 'top'), assign('web', 'web')]);
    const e = index.effective(device('d', 'frontend'), 'scanner', tree)!;
    assert.equal(e.settings.realTime!.value, true);
    assert.deepEqual(e.settings.realTime!.origin, { kind: 'policy', policyId: 'top', policyName: 'Policy top', revision: 3, groupId: 'root' });
    assert.equal(e.settings.action!.value, 'report');
    assert.deepEqual(e.settings.action!.origin, { kind: 'policy', policyId: 'web', policyName: 'Policy web', revision: 3, groupId: 'web' });
    assert.equal(e.settings.maxSizeMb!.value, 5);
    assert.deepEqual(e.settings.folders!.origin, { kind: 'default' });
    // Another branch only sees the top policy.
    assert.deepEqual(values(index, device('x', 'laptops')), { ...scanner.defaults, realTime: true, action: 'quarantine' });
  });

  it('a lock freezes the setting below its group: child policies and profiles are overridden and say so', () => {
    const index = new PolicyIndex(
      [scanner],
      [
        policy('top', { realTime: true }, ['realTime']),
        policy('web', { realTime: false, action: 'quarantine' }, [], [profile('tagged', 1, { tags: ['kiosk'] }, { realTime: false })]),
      ],
      [assign('root', 'top'), assign('web', 'web')],
    );
    const e = index.effective(device('d', 'frontend', { tags: ['kiosk'] }), 'scanner', tree)!;
    assert.equal(e.settings.realTime!.value, true);
    assert.equal(e.settings.realTime!.lockedBy?.kind, 'policy');
    assert.deepEqual(
      e.settings.realTime!.overridden.map((o) => [o.origin.kind, o.value]),
      [
        ['policy', false],
        ['profile', false],
      ],
    );
    assert.equal(e.settings.action!.value, 'quarantine'); // unlocked settings of the child still apply
    assert.deepEqual(agentPolicy(e).locked, ['realTime']);
  });

  it('a group that blocks inheritance starts from the defaults, but locks from above still come down', () => {
    const index = new PolicyIndex(
      [scanner],
      [policy('top', { realTime: true, action: 'quarantine', folders: ['/srv'] }, ['folders']), policy('db', { maxSizeMb: 1 })],
      [assign('root', 'top'), assign('db', 'db', true)],
    );
    const v = values(index, device('d', 'db'));
    assert.equal(v.realTime, false); // blocked: default
    assert.equal(v.action, 'report'); // blocked: default
    assert.deepEqual(v.folders, ['/srv']); // locked above: not escaped by the block
    assert.equal(v.maxSizeMb, 1);
    // A block without a policy of its own: defaults plus the locks.
    const bare = new PolicyIndex([scanner], [policy('top', { realTime: true, folders: ['/srv'] }, ['folders'])], [assign('root', 'top'), assign('db', null, true)]);
    assert.deepEqual(values(bare, device('d', 'db')), { ...scanner.defaults, folders: ['/srv'] });
    // Blocking at a group stops only the groups above it: its own policy flows down to its children.
    const below = new PolicyIndex([scanner], [policy('top', { realTime: true }), policy('web', { action: 'quarantine' })], [assign('root', 'top'), assign('web', 'web', true)]);
    assert.deepEqual(values(below, device('d', 'frontend')), { ...scanner.defaults, action: 'quarantine' });
  });

  it('profiles apply on matching devices only, in ascending priority; disabled and empty-condition profiles never', () => {
    const p = policy('top', { maxSizeMb: 10 }, [], [
      profile('high', 20, { tags: ['big'] }, { maxSizeMb: 1000 }),
      profile('low', 10, { os: ['linux'] }, { maxSizeMb: 50, action: 'quarantine' }),
      profile('off', 99, { os: ['linux'] }, { maxSizeMb: 1 }, [], false),
      profile('empty', 98, {}, { maxSizeMb: 2 }),
    ]);
    const index = new PolicyIndex([scanner], [p], [assign('root', 'top')]);
    const both = index.effective(device('a', 'web', { tags: ['big'] }), 'scanner', tree)!;
    assert.equal(both.settings.maxSizeMb!.value, 1000);
    assert.equal(both.settings.maxSizeMb!.origin.kind === 'profile' && both.settings.maxSizeMb!.origin.profileId, 'high');
    assert.equal(both.settings.action!.value, 'quarantine');
    assert.deepEqual(
      both.profiles.map((x) => x.profileId),
      ['low', 'high'],
    );
    assert.equal(values(index, device('b', 'web', { osPlatform: 'win32', osName: 'Windows' })).maxSizeMb, 10);
    assert.equal(values(index, device('c', 'web')).maxSizeMb, 50);
  });

  it('a profile may change and lock a setting within its own group; the lock then holds below', () => {
    const index = new PolicyIndex(
      [scanner],
      [policy('top', { action: 'report' }, ['action'], [profile('strict', 1, { tags: ['dmz'] }, { action: 'quarantine', realTime: true }, ['realTime'])]), policy('web', { realTime: false, action: 'report' })],
      [assign('root', 'top'), assign('web', 'web')],
    );
    const dmz = index.effective(device('d', 'web', { tags: ['dmz'] }), 'scanner', tree)!;
    assert.equal(dmz.settings.action!.value, 'quarantine'); // the profile of the locking policy itself
    assert.equal(dmz.settings.realTime!.value, true);
    assert.equal(dmz.settings.realTime!.lockedBy?.kind, 'profile');
    const plain = index.effective(device('e', 'web'), 'scanner', tree)!;
    assert.equal(plain.settings.action!.value, 'report');
    assert.equal(plain.settings.realTime!.value, false); // not locked for devices the profile does not match
  });

  it('ignores locks on settings that cannot be locked, settings the type does not know, and policies of another product', () => {
    const index = new PolicyIndex(
      [scanner, agent],
      [policy('top', { maxSizeMb: 7, bogus: 1 }, ['maxSizeMb', 'bogus']), policy('agentpol', { checkIn: 15 }, [], [], 'garrison'), policy('web', { maxSizeMb: 8 })],
      [assign('root', 'top'), assign('web', 'web'), assign('servers', 'agentpol'), assign('db', 'agentpol')],
    );
    const e = index.effective(device('d', 'web'), 'scanner', tree)!;
    assert.equal(e.settings.maxSizeMb!.value, 8);
    assert.equal(e.settings.maxSizeMb!.lockedBy, null);
    assert.equal(e.settings.bogus, undefined);
    // An assignment whose policy is of another product counts for nothing.
    assert.deepEqual(values(index, device('x', 'db')), { ...scanner.defaults, maxSizeMb: 7 });
    assert.deepEqual(values(index, device('y', 'db'), 'garrison'), { checkIn: 60, enforcement: 5 });
    assert.deepEqual(
      index.effectiveAll(device('y', 'web'), tree).map((p) => p.product),
      ['garrison', 'scanner'],
    );
  });

  it('blocking below a lock keeps the locked value, even when a profile of the locking policy locks what its base sets', () => {
    const index = new PolicyIndex(
      [scanner],
      [policy('top', { maxSizeMb: 5 }), policy('web', { action: 'quarantine' }, [], [profile('all-linux', 1, { os: ['linux'] }, {}, ['action'])])],
      [assign('root', 'top'), assign('web', 'web'), assign('frontend', null, true)],
    );
    const e = index.effective(device('d', 'frontend'), 'scanner', tree)!;
    assert.equal(e.settings.action!.value, 'quarantine');
    assert.equal(e.settings.action!.lockedBy?.kind, 'profile');
    assert.equal(e.settings.maxSizeMb!.value, 100); // blocked, unlocked: the default
  });

  it('an ancestor lock stands against a descendant lock of the same setting', () => {
    const index = new PolicyIndex([scanner], [policy('top', { action: 'quarantine' }, ['action']), policy('web', { action: 'report' }, ['action'])], [assign('root', 'top'), assign('web', 'web')]);
    const e = index.effective(device('d', 'frontend'), 'scanner', tree)!;
    assert.equal(e.settings.action!.value, 'quarantine');
    assert.equal(e.settings.action!.lockedBy?.kind === 'policy' && e.settings.action!.lockedBy.groupId, 'root');
  });

  it('returns copies: changing an effective value never changes the policy or the defaults', () => {
    const p = policy('top', { folders: ['/a'] });
    const index = new PolicyIndex([scanner], [p], [assign('root', 'top')]);
    (agentPolicy(index.effective(device('d', 'web'), 'scanner', tree)!).settings.folders as string[]).push('/evil');
    assert.deepEqual(p.settings.folders, ['/a']);
    assert.deepEqual(values(index, device('d', 'web')).folders, ['/a']);
    (values(new PolicyIndex([scanner], [], []), device('d', 'web')).folders as string[]).push('/x');
    assert.deepEqual(scanner.defaults.folders, []);
  });

  it('survives a group cycle in bad data and an unknown group', () => {
    const cyclic = new GroupTree([
      { id: 'a', parentId: 'b', name: 'A', blockInheritance: false },
      { id: 'b', parentId: 'a', name: 'B', blockInheritance: false },
    ]);
    const index = new PolicyIndex([scanner], [policy('p', { maxSizeMb: 3 })], [assign('a', 'p')]);
    assert.equal(agentPolicy(index.effective(device('d', 'b'), 'scanner', cyclic)!).settings.maxSizeMb, 3);
    assert.deepEqual(values(index, device('d', 'nowhere')), scanner.defaults);
  });
});

describe('revision, etag and changes', () => {
  it('the revision depends on values and locks only, not on where they come from or key order', () => {
    const a = new PolicyIndex([scanner], [policy('p', { action: 'quarantine', realTime: true })], [assign('root', 'p')]);
    const b = new PolicyIndex([scanner], [{ ...policy('q', { realTime: true, action: 'quarantine' }), revision: 9 }], [assign('servers', 'q')]);
    const ra = a.effective(device('d', 'web'), 'scanner', tree)!.revision;
    assert.equal(ra, b.effective(device('d', 'web'), 'scanner', tree)!.revision);
    assert.match(ra, /^[0-9a-f]{16}$/);
    const locked = new PolicyIndex([scanner], [policy('p', { action: 'quarantine', realTime: true }, ['action'])], [assign('root', 'p')]);
    assert.notEqual(ra, locked.effective(device('d', 'web'), 'scanner', tree)!.revision);
    const other = new PolicyIndex([scanner], [policy('p', { action: 'quarantine', realTime: false })], [assign('root', 'p')]);
    assert.notEqual(ra, other.effective(device('d', 'web'), 'scanner', tree)!.revision);
    assert.equal(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] }), canonicalJson({ a: [{ c: 2, d: 1 }], b: 1 }));
  });

  it('the etag changes when any product changes', () => {
    const e1 = policiesEtag([
      { product: 'a', revision: '1' },
      { product: 'b', revision: '2' },
    ]);
    assert.equal(e1, policiesEtag([{ product: 'a', revision: '1' }, { product: 'b', revision: '2' }]));
    assert.notEqual(e1, policiesEtag([{ product: 'a', revision: '1' }, { product: 'b', revision: '3' }]));
    assert.notEqual(e1, policiesEtag([{ product: 'a', revision: '1' }]));
  });

  it('policyChanges lists values and locks that differ, for a preview', () => {
    const before = new PolicyIndex([scanner], [policy('p', { realTime: true })], [assign('root', 'p')]).effective(device('d', 'web'), 'scanner', tree);
    const after = new PolicyIndex([scanner], [policy('p', { realTime: true, maxSizeMb: 5 }, ['realTime'])], [assign('root', 'p')]).effective(device('d', 'web'), 'scanner', tree);
    assert.deepEqual(policyChanges(before, after), [
      { setting: 'maxSizeMb', before: 100, after: 5, lockedBefore: false, lockedAfter: false },
      { setting: 'realTime', before: true, after: true, lockedBefore: false, lockedAfter: true },
    ]);
    assert.deepEqual(policyChanges(before, before), []);
  });
});

describe('policyShapeProblems', () => {
  it('names unknown settings, unlockable and unknown locks, duplicate locks and profile ids', () => {
    assert.deepEqual(policyShapeProblems(scanner, { settings: { realTime: true }, locked: ['realTime'], profiles: [] }), []);
    // A lock needs a value from the same policy (a profile may lock what its policy sets).
    assert.deepEqual(policyShapeProblems(scanner, { settings: {}, locked: ['realTime'], profiles: [] }), ['policy: cannot lock "realTime" without setting it']);
    assert.deepEqual(policyShapeProblems(scanner, { settings: { action: 'report' }, locked: [], profiles: [profile('p', 1, { tags: ['a'] }, {}, ['action'])] }), []);
    const problems = policyShapeProblems(scanner, {
      settings: { nope: 1, action: 'report', maxSizeMb: 1 },
      locked: ['maxSizeMb', 'ghost', 'action', 'action'],
      profiles: [profile('x', 1, { tags: ['a'] }, { alsoNope: 2 }), profile('x', 2, { tags: ['b'] }, {})],
    });
    assert.equal(problems.length, 6, problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('"nope" is not a setting')));
    assert.ok(problems.some((p) => p.includes('"maxSizeMb" cannot be locked')));
    assert.ok(problems.some((p) => p.includes('cannot lock "ghost"')));
    assert.ok(problems.some((p) => p.includes('locked twice')));
    assert.ok(problems.some((p) => p.includes('"alsoNope"')));
    assert.ok(problems.some((p) => p.includes('profile "x" appears twice')));
  });
});

describe('reconcilePolicy (on the device)', () => {
  const policyNow = { settings: { realTime: true, action: 'quarantine', maxSizeMb: 100 }, locked: ['realTime'] };

  it('the first application applies the policy, whatever the device had', () => {
    const r = reconcilePolicy(policyNow, null, { realTime: false, action: 'report' });
    assert.deepEqual(r.target, policyNow.settings);
    assert.deepEqual(r.drift, []);
    assert.equal(r.drifted, false);
  });

  it('puts back a locked setting changed locally; keeps an unlocked one until the administrator changes it', () => {
    const previous = { policy: policyNow.settings, applied: policyNow.settings };
    const r = reconcilePolicy(policyNow, previous, { realTime: false, action: 'report', maxSizeMb: 100 });
    assert.deepEqual(r.target, { realTime: true, action: 'report', maxSizeMb: 100 });
    assert.deepEqual(
      r.drift.map((d) => [d.setting, d.action, d.fresh]),
      [
        ['realTime', 'restored', true],
        ['action', 'kept-local', true],
      ],
    );
    assert.equal(r.drifted, true);
    // Next enforcement: the local change still stands, and is nothing new.
    const again = reconcilePolicy(policyNow, { policy: policyNow.settings, applied: r.target }, r.target);
    assert.deepEqual(again.target, r.target);
    assert.deepEqual(
      again.drift.map((d) => [d.setting, d.action, d.fresh]),
      [['action', 'kept-local', false]],
    );
    assert.equal(again.drifted, false);
    // The administrator changes that setting: the new value replaces the local one.
    const changed = { ...policyNow, settings: { ...policyNow.settings, action: 'delete' } };
    const after = reconcilePolicy(changed, { policy: policyNow.settings, applied: r.target }, r.target);
    assert.equal(after.target.action, 'delete');
    assert.equal(after.drifted, false); // not a new local change: the device had what was applied
  });

  it('an administrator change reaches a device that had no local change, without drift', () => {
    const previous = { policy: policyNow.settings, applied: policyNow.settings };
    const next = { ...policyNow, settings: { ...policyNow.settings, maxSizeMb: 5 } };
    const r = reconcilePolicy(next, previous, policyNow.settings);
    assert.equal(r.target.maxSizeMb, 5);
    assert.deepEqual(r.drift, []);
  });

  it('a lock added on a setting whose local change stood puts it back; a locked value the administrator changed is no drift', () => {
    const unlocked = { settings: policyNow.settings, locked: [] as string[] };
    const applied = { ...policyNow.settings, action: 'report' }; // the local change stood
    const nowLocked = { settings: policyNow.settings, locked: ['action'] };
    const r = reconcilePolicy(nowLocked, { policy: unlocked.settings, applied }, applied);
    assert.equal(r.target.action, 'quarantine');
    assert.deepEqual(r.drift.map((d) => [d.setting, d.action, d.fresh]), [['action', 'restored', false]]);
    const moved = { settings: { ...policyNow.settings, realTime: false }, locked: ['realTime'] };
    const u = reconcilePolicy(moved, { policy: policyNow.settings, applied: policyNow.settings }, policyNow.settings);
    assert.equal(u.target.realTime, false);
    assert.deepEqual(u.drift, []);
  });

  it('applies settings the product does not report', () => {
    const r = reconcilePolicy(policyNow, { policy: policyNow.settings, applied: policyNow.settings }, {});
    assert.deepEqual(r.target, policyNow.settings);
    assert.deepEqual(r.drift, []);
  });
});
