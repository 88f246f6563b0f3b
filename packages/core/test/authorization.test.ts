import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_PERMISSIONS, BUILTIN_ROLES, Permission, PermissionSchema, SERVER_WIDE_PERMISSIONS } from '@garrison/protocol';
import { Access, GroupTree } from '../src/index.ts';

//   root ─ a ─ a1 ─ a11
//        └ b
const tree = new GroupTree([
  { id: 'root', parentId: null, name: 'My Organization', blockInheritance: false },
  { id: 'a', parentId: 'root', name: 'A', blockInheritance: false },
  { id: 'a1', parentId: 'a', name: 'A1', blockInheritance: true },
  { id: 'a11', parentId: 'a1', name: 'A11', blockInheritance: false },
  { id: 'b', parentId: 'root', name: 'B', blockInheritance: false },
]);
const role = (id: string) => BUILTIN_ROLES.find((r) => r.id === id)!.permissions;

describe('authorization rules', () => {
  it('a grant covers its group and everything below it, whatever blocks inheritance', () => {
    const x = new Access([{ groupId: 'a', permissions: role('operator') }], tree);
    for (const g of ['a', 'a1', 'a11']) assert.equal(x.can(Permission.runTasks, g), true, g);
    for (const g of ['root', 'b', 'nope']) assert.equal(x.can(Permission.runTasks, g), false, g);
    assert.equal(x.can(Permission.manageTasks, 'a'), false);
    assert.deepEqual([...(x.reach(Permission.read) as { groups: ReadonlySet<string> }).groups].sort(), ['a', 'a1', 'a11']);
    assert.equal(x.reaches(Permission.read, 'b'), false);
  });
  it('several grants add up; canAll needs every group', () => {
    const x = new Access([{ groupId: 'a1', permissions: role('administrator') }, { groupId: 'b', permissions: role('auditor') }], tree);
    assert.equal(x.canAll(Permission.read, ['a11', 'b']), true);
    assert.equal(x.canAll(Permission.manageTasks, ['a11', 'b']), false);
    assert.equal(x.canAll(Permission.manageTasks, ['a1', 'a11']), true);
  });
  it('server-wide permissions and objects of no group need a grant on the root', () => {
    const sub = new Access([{ groupId: 'a', permissions: role('main-administrator') }], tree);
    for (const p of SERVER_WIDE_PERMISSIONS) {
      assert.equal(sub.canServerWide(p), false, p);
      assert.equal(sub.holdsAnywhere(p), false, p);
      assert.equal(sub.can(p, 'a'), false, p);
      assert.equal(sub.reach(p).all, false, p);
    }
    assert.equal(sub.canAll(Permission.manageTasks, []), false, 'a global task needs the root');
    const root = new Access([{ groupId: 'root', permissions: role('main-administrator') }], tree);
    assert.equal(root.canAll(Permission.manageAdmins, []), true);
    assert.deepEqual(root.reach(Permission.read), { all: true });
  });
  it('a grant on a group that no longer exists gives nothing', () => {
    const x = new Access([{ groupId: 'gone', permissions: ALL_PERMISSIONS }], tree);
    assert.equal(x.holdsAnywhere(Permission.read), false);
    assert.equal(x.can(Permission.read, 'root'), false);
    assert.deepEqual(x.summary(ALL_PERMISSIONS), { anywhere: [], root: [] });
  });
  it('the built-in roles are what the product says, and the schema lists every permission', () => {
    assert.deepEqual([...role('operator')].sort(), ['read', 'tasks:run']);
    assert.deepEqual([...role('auditor')], ['read']);
    assert.deepEqual([...role('installer')].sort(), ['push:run', 'read', 'tokens:write']);
    assert.equal(role('administrator').includes(Permission.manageAdmins), false);
    assert.deepEqual([...role('main-administrator')].sort(), [...ALL_PERMISSIONS].sort());
    const listed = (PermissionSchema as unknown as { anyOf: { const: string }[] }).anyOf.map((x) => x.const).sort();
    assert.deepEqual(listed, [...ALL_PERMISSIONS].sort());
  });
});
