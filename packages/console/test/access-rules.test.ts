/**
 * The console's access rule (src/access-rules.ts), without a browser: what /me, the roles and
 * the visible group tree say the signed-in administrator may do, where.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_ROLES, type GroupView, type Me } from '@garrison/protocol';
import { accessOf } from '../src/access-rules.ts';

const group = (id: string, parentId: string | null): GroupView =>
  ({ id, parentId, name: id, path: id, blockInheritance: false, checkInIntervalMinutes: null, policyEnforcementMinutes: null, createdAt: '', updatedAt: '', effectivePolicy: { checkInIntervalMinutes: 60, policyEnforcementMinutes: 5 } }) as GroupView;
const tree = [group('root', null), group('a', 'root'), group('a-sub', 'a'), group('b', 'root')];
const grant = (roleId: string, groupId: string) => ({ roleId, roleName: roleId, groupId, groupPath: groupId });

describe('console access rule', () => {
  it('allows everything when /me does not say (not read yet, a system token, an older server)', () => {
    for (const me of [undefined, { kind: 'system', name: 'system' } as Me]) {
      const a = accessOf(me, BUILTIN_ROLES, tree);
      assert.ok(a.can('tasks:write') && a.canOnRoot('admins:write') && a.canIn('devices:write', 'b') && a.canIn('tasks:run', []));
    }
  });

  it('an operator on one group: runs tasks there and below, changes nothing, nothing server-wide', () => {
    const me: Me = { kind: 'admin', name: 'op', grants: [grant('operator', 'a')], permissions: ['read', 'tasks:run'], rootPermissions: [] };
    // What an operator on "a" is given of the tree: "a" and below.
    const a = accessOf(me, BUILTIN_ROLES, tree.filter((g) => g.id.startsWith('a')));
    assert.equal(a.can('tasks:run'), true);
    assert.equal(a.can('tasks:write'), false);
    assert.equal(a.canOnRoot('read'), false);
    assert.equal(a.canIn('tasks:run', 'a'), true);
    assert.equal(a.canIn('tasks:run', 'a-sub'), true, 'a grant covers the subtree');
    assert.equal(a.canIn('tasks:write', 'a'), false);
    assert.equal(a.canIn('tasks:run', []), false, 'no groups means server-wide (a global task)');
    assert.equal(a.canIn('repository:write', 'a'), false, 'server-wide permissions count on the root only');
  });

  it('decides per group from grants and the tree: an auditor of everything who operates one branch', () => {
    const me: Me = { kind: 'admin', name: 'x', grants: [grant('auditor', 'root'), grant('operator', 'a')], permissions: ['read', 'tasks:run'], rootPermissions: ['read'] };
    const a = accessOf(me, BUILTIN_ROLES, tree);
    assert.equal(a.canOnRoot('read'), true);
    assert.equal(a.canIn('tasks:run', 'a-sub'), true);
    assert.equal(a.canIn('tasks:run', 'b'), false, 'held on a, not on b');
    assert.equal(a.canIn('tasks:run', ['a', 'b']), false, 'every group is needed');
    assert.equal(a.canIn('read', 'b'), true);
    assert.equal(a.canIn('tasks:run', null), true, 'group unknown: held somewhere');
  });

  it('falls back to "held somewhere" while a custom role is not known yet, and decides once it is', () => {
    const me: Me = { kind: 'admin', name: 'x', grants: [grant('custom-1', 'a')], permissions: ['read', 'devices:write'], rootPermissions: [] };
    assert.equal(accessOf(me, BUILTIN_ROLES, tree).canIn('devices:write', 'b'), true);
    const known = accessOf(me, [...BUILTIN_ROLES, { id: 'custom-1', permissions: ['read', 'devices:write'] }], tree);
    assert.equal(known.canIn('devices:write', 'b'), false);
    assert.equal(known.canIn('devices:write', 'a-sub'), true);
  });
});
