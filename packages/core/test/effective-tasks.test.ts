import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Scope } from '@garrison/protocol';
import { effectiveTasks, globMatch, GroupTree, targetDevices, taskAppliesTo, type DeviceFacts, type GroupNode } from '../src/index.ts';

/*
 * My Organization (root)
 * ├── Servers
 * │   ├── Web            (blocks inheritance)
 * │   │   └── Frontend
 * │   │       └── Edge
 * │   └── Database
 * │       └── Replicas
 * └── Workstations
 *     └── Laptops
 */
const groups: GroupNode[] = [
  { id: 'root', parentId: null, name: 'My Organization', blockInheritance: false },
  { id: 'servers', parentId: 'root', name: 'Servers', blockInheritance: false },
  { id: 'web', parentId: 'servers', name: 'Web', blockInheritance: true },
  { id: 'frontend', parentId: 'web', name: 'Frontend', blockInheritance: false },
  { id: 'edge', parentId: 'frontend', name: 'Edge', blockInheritance: false },
  { id: 'db', parentId: 'servers', name: 'Database', blockInheritance: false },
  { id: 'replicas', parentId: 'db', name: 'Replicas', blockInheritance: false },
  { id: 'ws', parentId: 'root', name: 'Workstations', blockInheritance: false },
  { id: 'laptops', parentId: 'ws', name: 'Laptops', blockInheritance: false },
];
const tree = new GroupTree(groups);

function device(id: string, groupId: string, extra: Partial<DeviceFacts> = {}): DeviceFacts {
  return { id, groupId, name: id, hostname: `${id}.corp.example`, osPlatform: 'linux', osName: 'Ubuntu', tags: [], products: [], ...extra };
}
const task = (id: string, scope: Scope) => ({ id, scope });
const group = (groupId: string, includeSubgroups?: boolean): Scope =>
  includeSubgroups === undefined ? { type: 'group', groupId } : { type: 'group', groupId, includeSubgroups };

describe('GroupTree', () => {
  it('get, ancestors, descendants', () => {
    assert.equal(tree.get('web')?.name, 'Web');
    assert.equal(tree.get('nope'), undefined);
    assert.deepEqual(tree.ancestors('edge'), ['edge', 'frontend', 'web', 'servers', 'root']);
    assert.deepEqual(tree.ancestors('root'), ['root']);
    assert.deepEqual(tree.ancestors('nope'), []);
    assert.deepEqual(tree.descendants('servers').sort(), ['db', 'edge', 'frontend', 'replicas', 'servers', 'web']);
    assert.deepEqual(tree.descendants('laptops'), ['laptops']);
    assert.deepEqual(tree.descendants('nope'), []);
  });
  it('path and findByPath', () => {
    assert.equal(tree.path('root'), 'My Organization');
    assert.equal(tree.path('frontend'), 'My Organization/Servers/Web/Frontend');
    assert.equal(tree.path('nope'), '');
    assert.equal(tree.findByPath('My Organization/Servers/Web')?.id, 'web');
    assert.equal(tree.findByPath('/My Organization/Workstations/Laptops/')?.id, 'laptops');
    assert.equal(tree.findByPath('My Organization')?.id, 'root');
    assert.equal(tree.findByPath('My Organization/Servers/Nope'), undefined);
    assert.equal(tree.findByPath('Servers'), undefined);
    assert.equal(tree.findByPath(''), undefined);
    for (const g of groups) assert.equal(tree.findByPath(tree.path(g.id))?.id, g.id);
  });
  it('isAncestorOrSelf', () => {
    assert.equal(tree.isAncestorOrSelf('servers', 'edge'), true);
    assert.equal(tree.isAncestorOrSelf('edge', 'edge'), true);
    assert.equal(tree.isAncestorOrSelf('edge', 'servers'), false);
    assert.equal(tree.isAncestorOrSelf('ws', 'edge'), false);
  });
  it('wouldCycle', () => {
    assert.equal(tree.wouldCycle('servers', 'edge'), true); // under its own descendant
    assert.equal(tree.wouldCycle('web', 'web'), true); // under itself
    assert.equal(tree.wouldCycle('web', 'ws'), false);
    assert.equal(tree.wouldCycle('laptops', 'servers'), false);
    assert.equal(tree.wouldCycle('laptops', null), false);
  });
  it('survives a cycle in bad data', () => {
    const bad = new GroupTree([
      { id: 'a', parentId: 'b', name: 'A', blockInheritance: false },
      { id: 'b', parentId: 'a', name: 'B', blockInheritance: false },
    ]);
    assert.deepEqual(bad.ancestors('a'), ['a', 'b']);
  });
});

describe('taskAppliesTo: group scope', () => {
  it('inherits down several levels', () => {
    const t = task('t', group('root'));
    for (const g of ['root', 'servers', 'db', 'replicas', 'ws', 'laptops']) assert.equal(taskAppliesTo(t, device('d', g), tree), true, g);
    const s = task('s', group('servers'));
    assert.equal(taskAppliesTo(s, device('d', 'replicas'), tree), true);
    assert.equal(taskAppliesTo(s, device('d', 'laptops'), tree), false);
    assert.equal(taskAppliesTo(s, device('d', 'root'), tree), false);
  });
  it('includeSubgroups false keeps the task to its own group', () => {
    const t = task('t', group('servers', false));
    assert.equal(taskAppliesTo(t, device('d', 'servers'), tree), true);
    assert.equal(taskAppliesTo(t, device('d', 'db'), tree), false);
    assert.equal(taskAppliesTo(task('t', group('servers', true)), device('d', 'db'), tree), true);
  });
  it('a blocking group stops its ancestors’ tasks for itself and below', () => {
    for (const g of ['web', 'frontend', 'edge']) {
      assert.equal(taskAppliesTo(task('r', group('root')), device('d', g), tree), false, `root task in ${g}`);
      assert.equal(taskAppliesTo(task('s', group('servers')), device('d', g), tree), false, `servers task in ${g}`);
    }
  });
  it('the blocking group’s own tasks still flow to its children', () => {
    for (const g of ['web', 'frontend', 'edge']) assert.equal(taskAppliesTo(task('w', group('web')), device('d', g), tree), true, g);
    assert.equal(taskAppliesTo(task('f', group('frontend')), device('d', 'edge'), tree), true);
  });
  it('a device moved into a group later gets the group’s tasks', () => {
    const t = task('t', group('db'));
    const before = device('d', 'laptops');
    assert.equal(taskAppliesTo(t, before, tree), false);
    const after = { ...before, groupId: 'replicas' };
    assert.equal(taskAppliesTo(t, after, tree), true);
  });
  it('unknown groups match nothing', () => {
    assert.equal(taskAppliesTo(task('t', group('nope')), device('d', 'db'), tree), false);
    assert.equal(taskAppliesTo(task('t', group('db')), device('d', 'nope'), tree), false);
  });
});

describe('taskAppliesTo: local scope', () => {
  it('applies to its device only', () => {
    const t = task('t', { type: 'local', deviceId: 'd1' });
    assert.equal(taskAppliesTo(t, device('d1', 'web'), tree), true);
    assert.equal(taskAppliesTo(t, device('d2', 'web'), tree), false);
  });
});

describe('taskAppliesTo: global scope', () => {
  it('a list of devices', () => {
    const t = task('t', { type: 'global', deviceIds: ['d1', 'd3'] });
    assert.equal(taskAppliesTo(t, device('d1', 'edge'), tree), true);
    assert.equal(taskAppliesTo(t, device('d2', 'edge'), tree), false);
    assert.equal(taskAppliesTo(t, device('d3', 'laptops'), tree), true);
  });
  it('ignores groups and blocking', () => {
    assert.equal(taskAppliesTo(task('t', { type: 'global', selection: { os: ['linux'] } }), device('d', 'edge'), tree), true);
  });
  it('selection by tags: all of them, case-insensitive', () => {
    const t = task('t', { type: 'global', selection: { tags: ['PCI', 'prod'] } });
    assert.equal(taskAppliesTo(t, device('d', 'db', { tags: ['pci', 'Prod', 'eu'] }), tree), true);
    assert.equal(taskAppliesTo(t, device('d', 'db', { tags: ['pci'] }), tree), false);
    assert.equal(taskAppliesTo(t, device('d', 'db'), tree), false);
  });
  it('selection by OS: platform or name, one of them, case-insensitive', () => {
    const t = task('t', { type: 'global', selection: { os: ['Windows', 'macos'] } });
    assert.equal(taskAppliesTo(t, device('d', 'db', { osPlatform: 'windows', osName: 'Windows Server 2022' }), tree), true);
    assert.equal(taskAppliesTo(t, device('d', 'db', { osPlatform: 'darwin', osName: 'macOS' }), tree), true);
    assert.equal(taskAppliesTo(t, device('d', 'db'), tree), false);
    const byName = task('t', { type: 'global', selection: { os: ['ubuntu'] } });
    assert.equal(taskAppliesTo(byName, device('d', 'db'), tree), true);
  });
  it('selection by name pattern: name or hostname, glob, case-insensitive', () => {
    const t = task('t', { type: 'global', selection: { namePattern: 'WEB-??' } });
    assert.equal(taskAppliesTo(t, device('web-01', 'db'), tree), true);
    assert.equal(taskAppliesTo(t, device('web-001', 'db'), tree), false);
    const host = task('t', { type: 'global', selection: { namePattern: '*.corp.example' } });
    assert.equal(taskAppliesTo(host, device('anything', 'db'), tree), true);
    assert.equal(taskAppliesTo(host, device('x', 'db', { hostname: 'x.home' }), tree), false);
  });
  it('selection by product', () => {
    const t = task('t', { type: 'global', selection: { product: 'scanner' } });
    assert.equal(taskAppliesTo(t, device('d', 'db', { products: ['garrison-agent', 'scanner'] }), tree), true);
    assert.equal(taskAppliesTo(t, device('d', 'db', { products: ['garrison-agent'] }), tree), false);
  });
  it('combined criteria must all match', () => {
    const t = task('t', { type: 'global', selection: { tags: ['prod'], os: ['windows'], namePattern: 'sql*', product: 'scanner' } });
    const ok = device('SQL-1', 'db', { tags: ['prod'], osPlatform: 'windows', products: ['scanner'] });
    assert.equal(taskAppliesTo(t, ok, tree), true);
    assert.equal(taskAppliesTo(t, { ...ok, tags: [] }, tree), false);
    assert.equal(taskAppliesTo(t, { ...ok, osPlatform: 'linux' }, tree), false);
    assert.equal(taskAppliesTo(t, { ...ok, name: 'web-1', hostname: 'web-1' }, tree), false);
    assert.equal(taskAppliesTo(t, { ...ok, products: [] }, tree), false);
  });
  it('list or selection: either matches', () => {
    const t = task('t', { type: 'global', deviceIds: ['listed'], selection: { tags: ['x'] } });
    assert.equal(taskAppliesTo(t, device('listed', 'db'), tree), true);
    assert.equal(taskAppliesTo(t, device('tagged', 'db', { tags: ['X'] }), tree), true);
    assert.equal(taskAppliesTo(t, device('other', 'db'), tree), false);
  });
  it('an empty global scope (or empty selection) matches nothing', () => {
    for (const scope of [{ type: 'global' }, { type: 'global', deviceIds: [] }, { type: 'global', selection: {} }, { type: 'global', selection: { tags: [], os: [] } }] as Scope[]) {
      assert.equal(taskAppliesTo(task('t', scope), device('d', 'db', { tags: ['a'] }), tree), false, JSON.stringify(scope));
    }
  });
});

describe('globMatch', () => {
  it('handles * and ?', () => {
    assert.equal(globMatch('*', ''), true);
    assert.equal(globMatch('*', 'anything'), true);
    assert.equal(globMatch('?', ''), false);
    assert.equal(globMatch('a?c', 'abc'), true);
    assert.equal(globMatch('a?c', 'ac'), false);
    assert.equal(globMatch('a*c', 'ac'), true);
    assert.equal(globMatch('a*c', 'abbbbc'), true);
    assert.equal(globMatch('a*c', 'abbbbd'), false);
    assert.equal(globMatch('*web*', 'prod-WEB-01'), true);
    assert.equal(globMatch('web', 'web-01'), false);
    assert.equal(globMatch('*-??', 'db-01'), true);
    assert.equal(globMatch('**a**b', 'xxaxxb'), true);
  });
  it('treats regular-expression characters literally', () => {
    assert.equal(globMatch('a.b', 'a.b'), true);
    assert.equal(globMatch('a.b', 'axb'), false);
    assert.equal(globMatch('(x)[y]+', '(X)[Y]+'), true);
  });
  it('is fast on hostile patterns', () => {
    const started = performance.now();
    assert.equal(globMatch('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)), false);
    assert.ok(performance.now() - started < 500);
  });
});

describe('effectiveTasks and targetDevices', () => {
  const tasks = [
    task('root', group('root')),
    task('servers-only', group('servers', false)),
    task('web', group('web')),
    task('local-d1', { type: 'local', deviceId: 'd1' }),
    task('pci', { type: 'global', selection: { tags: ['pci'] } }),
  ];
  it('effectiveTasks lists the tasks of a device, in order', () => {
    assert.deepEqual(
      effectiveTasks(device('d1', 'edge', { tags: ['PCI'] }), tasks, tree).map((t) => t.id),
      ['web', 'local-d1', 'pci'],
    );
    assert.deepEqual(
      effectiveTasks(device('d2', 'servers'), tasks, tree).map((t) => t.id),
      ['root', 'servers-only'],
    );
    assert.deepEqual(
      effectiveTasks(device('d3', 'replicas'), tasks, tree).map((t) => t.id),
      ['root'],
    );
  });
  it('targetDevices agrees with taskAppliesTo', () => {
    const devices = groups.flatMap((g, i) => [device(`${g.id}-a`, g.id, { tags: i % 2 ? ['pci'] : [] }), device(`${g.id}-b`, g.id)]);
    devices.push(device('d1', 'laptops'));
    for (const t of tasks) {
      const expected = devices.filter((d) => taskAppliesTo(t, d, tree)).map((d) => d.id);
      assert.deepEqual(
        targetDevices(t, devices, tree).map((d) => d.id),
        expected,
        t.id,
      );
    }
    assert.deepEqual(
      targetDevices(task('s', group('servers')), devices, tree).map((d) => d.id),
      ['servers-a', 'servers-b', 'db-a', 'db-b', 'replicas-a', 'replicas-b'],
    );
  });
  it('targetDevices handles 100,000 devices quickly', () => {
    const ids = groups.map((g) => g.id);
    const devices = Array.from({ length: 100_000 }, (_, i) => device(`d${i}`, ids[i % ids.length], { tags: i % 10 === 0 ? ['pci'] : [] }));
    const started = performance.now();
    const servers = targetDevices(task('s', group('servers')), devices, tree);
    const pci = targetDevices(task('pci', { type: 'global', selection: { tags: ['pci'], namePattern: 'd*' } }), devices, tree);
    const listed = targetDevices(task('l', { type: 'global', deviceIds: devices.slice(0, 50_000).map((d) => d.id) }), devices, tree);
    const elapsed = performance.now() - started;
    assert.equal(servers.length, Math.round((100_000 * 3) / 9)); // servers, db, replicas
    assert.equal(pci.length, 10_000);
    assert.equal(listed.length, 50_000);
    assert.ok(elapsed < 2000, `${elapsed} ms`);
  });
});
