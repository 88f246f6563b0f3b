import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PackageManifest } from '@garrison/protocol';
import {
  effectiveAssignments,
  GroupTree,
  planDeployment,
  type CandidatePackage,
  type DeploymentAssignment,
  type DeploymentBranch,
  type DeploymentPlan,
  type EffectiveAssignment,
  type InstalledProductFact,
} from '../src/index.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

interface PkgOptions {
  branch?: DeploymentBranch | null;
  platforms?: string[];
  kind?: PackageManifest['kind'];
  dependencies?: { product: string; minVersion?: string }[];
  order?: number;
  conflicts?: string[];
  contentFor?: string;
  id?: string;
  versionScheme?: PackageManifest['versionScheme'];
}

function pkg(product: string, version: string, o: PkgOptions = {}): CandidatePackage {
  const platforms = o.platforms ?? ['linux-*'];
  const manifest: PackageManifest = {
    product,
    name: product,
    version,
    kind: o.kind ?? 'application',
    platforms,
    commands: { install: { shell: 'sh', command: 'true' } },
  };
  if (o.dependencies !== undefined) manifest.dependencies = o.dependencies;
  if (o.order !== undefined) manifest.order = o.order;
  if (o.conflicts !== undefined) manifest.conflicts = o.conflicts;
  if (o.contentFor !== undefined) manifest.contentFor = o.contentFor;
  if (o.versionScheme !== undefined) manifest.versionScheme = o.versionScheme;
  const branch = o.branch === undefined ? 'current' : o.branch;
  return {
    id: o.id ?? `${product}@${version}/${branch ?? 'none'}/${platforms.join('+')}`,
    product,
    version,
    branch,
    platforms,
    manifest,
    sha256: 'a'.repeat(64),
    signature: 'sig',
  };
}

function assign(product: string, o: Partial<EffectiveAssignment> = {}): EffectiveAssignment {
  const groupId = o.groupId ?? 'root';
  return {
    groupId,
    product,
    branch: o.branch ?? 'current',
    pinnedVersion: o.pinnedVersion ?? null,
    action: o.action ?? 'install',
    removeConflicts: o.removeConflicts ?? false,
    inheritedFrom: o.inheritedFrom ?? groupId,
  };
}

const inst = (id: string, version: string): InstalledProductFact => ({ id, version });

function plan(
  assignments: EffectiveAssignment[],
  installed: InstalledProductFact[],
  packages: CandidatePackage[],
  platform = 'linux',
  arch = 'x64',
): DeploymentPlan {
  return planDeployment({ assignments, installed, packages, platform, arch });
}

/** Steps as short strings: "install av 2.0 (missing)", "uninstall x 1.0 (conflict)". */
function steps(p: DeploymentPlan): string[] {
  return p.steps.map((s) =>
    s.action === 'install' ? `install ${s.product} ${s.version} (${s.reason})` : `uninstall ${s.product} ${s.fromVersion} (${s.reason})`,
  );
}

function state(p: DeploymentPlan, product: string) {
  const found = p.products.find((s) => s.product === product);
  assert.ok(found, `no state for ${product}`);
  return found;
}

/** Deterministic shuffles (a fixed LCG), to check that input order does not matter. */
function shuffled<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// effectiveAssignments
// ---------------------------------------------------------------------------------------------

/*
 * root
 * ├── servers
 * │   ├── db
 * │   │   └── replicas
 * │   │       └── archive
 * │   └── web (blocks inheritance of tasks)
 * └── ws
 *     └── laptops
 */
const tree = new GroupTree([
  { id: 'root', parentId: null, name: 'My Organization', blockInheritance: false },
  { id: 'servers', parentId: 'root', name: 'Servers', blockInheritance: false },
  { id: 'db', parentId: 'servers', name: 'Database', blockInheritance: false },
  { id: 'replicas', parentId: 'db', name: 'Replicas', blockInheritance: false },
  { id: 'archive', parentId: 'replicas', name: 'Archive', blockInheritance: false },
  { id: 'web', parentId: 'servers', name: 'Web', blockInheritance: true },
  { id: 'ws', parentId: 'root', name: 'Workstations', blockInheritance: false },
  { id: 'laptops', parentId: 'ws', name: 'Laptops', blockInheritance: false },
]);

function da(groupId: string, product: string, o: Partial<DeploymentAssignment> = {}): DeploymentAssignment {
  return {
    groupId,
    product,
    branch: o.branch ?? 'current',
    pinnedVersion: o.pinnedVersion ?? null,
    action: o.action ?? 'install',
    removeConflicts: o.removeConflicts ?? false,
  };
}

const treeAssignments: DeploymentAssignment[] = [
  da('root', 'autoupdate'),
  da('root', 'av', { removeConflicts: true }),
  da('root', 'rms'),
  da('servers', 'av', { branch: 'previous' }), // servers roll back
  da('db', 'av', { pinnedVersion: '10.7.0.1234' }), // the database servers pin
  da('replicas', 'av', { action: 'remove' }), // replicas remove it
  da('replicas', 'backup'),
  da('archive', 'av', { branch: 'evaluation' }), // and archive brings it back, on evaluation
  da('laptops', 'firewall', { branch: 'evaluation' }),
  da('ws', 'rms', { action: 'remove' }),
];

const summary = (list: EffectiveAssignment[]) =>
  list.map((a) => `${a.product}:${a.action}:${a.branch}:${a.pinnedVersion ?? '-'}:${a.inheritedFrom}`);

describe('effectiveAssignments', () => {
  it('the root assignments reach every group', () => {
    assert.deepEqual(summary(effectiveAssignments('root', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:current:-:root',
      'rms:install:current:-:root',
    ]);
  });
  it('a subgroup switching branch overrides its ancestors for that product only', () => {
    assert.deepEqual(summary(effectiveAssignments('servers', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:previous:-:servers',
      'rms:install:current:-:root',
    ]);
  });
  it('pinning, removing and re-adding down several levels: the nearest group wins', () => {
    assert.deepEqual(summary(effectiveAssignments('db', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:current:10.7.0.1234:db',
      'rms:install:current:-:root',
    ]);
    assert.deepEqual(summary(effectiveAssignments('replicas', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:remove:current:-:replicas',
      'backup:install:current:-:replicas',
      'rms:install:current:-:root',
    ]);
    assert.deepEqual(summary(effectiveAssignments('archive', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:evaluation:-:archive',
      'backup:install:current:-:replicas',
      'rms:install:current:-:root',
    ]);
  });
  it('siblings do not see each other; a removal in one branch of the tree stays there', () => {
    assert.deepEqual(summary(effectiveAssignments('laptops', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:current:-:root',
      'firewall:install:evaluation:-:laptops',
      'rms:remove:current:-:ws',
    ]);
  });
  it('keeps every field of the assignment', () => {
    const av = effectiveAssignments('ws', tree, treeAssignments).find((a) => a.product === 'av');
    assert.deepEqual(av, {
      groupId: 'root',
      product: 'av',
      branch: 'current',
      pinnedVersion: null,
      action: 'install',
      removeConflicts: true,
      inheritedFrom: 'root',
    });
  });
  it('deployment ignores blockInheritance (a subgroup overrides by assigning)', () => {
    assert.deepEqual(summary(effectiveAssignments('web', tree, treeAssignments)), [
      'autoupdate:install:current:-:root',
      'av:install:previous:-:servers',
      'rms:install:current:-:root',
    ]);
  });
  it('an unknown group has nothing; assignments of unknown groups are ignored', () => {
    assert.deepEqual(effectiveAssignments('nope', tree, treeAssignments), []);
    assert.deepEqual(effectiveAssignments('root', tree, [da('elsewhere', 'av')]), []);
  });
  it('does not depend on input order, even with duplicates in one group', () => {
    const withDuplicates = [...treeAssignments, da('db', 'av', { pinnedVersion: '9.0' }), da('laptops', 'firewall', { action: 'remove' })];
    for (const group of ['root', 'servers', 'db', 'replicas', 'archive', 'laptops']) {
      const expected = effectiveAssignments(group, tree, withDuplicates);
      for (let seed = 1; seed <= 5; seed++) assert.deepEqual(effectiveAssignments(group, tree, shuffled(withDuplicates, seed)), expected);
    }
    // Of two assignments of one product in one group, install wins over remove.
    assert.equal(effectiveAssignments('laptops', tree, withDuplicates).find((a) => a.product === 'firewall')?.action, 'install');
  });
});

// ---------------------------------------------------------------------------------------------
// planDeployment: targets and installed versions
// ---------------------------------------------------------------------------------------------

const avRepo = [
  pkg('av', '1.9', { branch: 'previous' }),
  pkg('av', '1.10'),
  pkg('av', '1.11-beta.1', { branch: 'evaluation' }),
  pkg('av', '1.8', { branch: null }),
];

describe('planDeployment: installed versus target', () => {
  it('not installed → install (missing)', () => {
    const p = plan([assign('av')], [], avRepo);
    assert.deepEqual(steps(p), ['install av 1.10 (missing)']);
    assert.deepEqual(p.products, [{ product: 'av', state: 'pending', installedVersion: null, targetVersion: '1.10' }]);
    const step = p.steps[0];
    assert.equal(step.action, 'install');
    if (step.action === 'install') {
      assert.equal(step.fromVersion, null);
      assert.equal(step.package.id, 'av@1.10/current/linux-*');
    }
  });
  it('installed older → install (older), with the version it comes from', () => {
    const p = plan([assign('av')], [inst('av', '1.9')], avRepo);
    assert.deepEqual(steps(p), ['install av 1.10 (older)']);
    assert.equal(p.steps[0].fromVersion, '1.9');
    assert.deepEqual(p.products, [{ product: 'av', state: 'pending', installedVersion: '1.9', targetVersion: '1.10' }]);
  });
  it('installed equal → compliant (versions compare, not strings)', () => {
    for (const have of ['1.10', '1.10.0', 'v1.10']) {
      const p = plan([assign('av')], [inst('av', have)], avRepo);
      assert.deepEqual(p.steps, []);
      assert.deepEqual(p.products, [{ product: 'av', state: 'compliant', installedVersion: have, targetVersion: '1.10' }]);
    }
  });
  it('installed newer on current or evaluation → left alone', () => {
    const p = plan([assign('av')], [inst('av', '2.0')], avRepo);
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.products, [{ product: 'av', state: 'compliant', installedVersion: '2.0', targetVersion: '1.10', detail: 'newer than the branch' }]);
    const e = plan([assign('av', { branch: 'evaluation' })], [inst('av', '1.11')], avRepo);
    assert.deepEqual(e.steps, []);
    assert.equal(state(e, 'av').state, 'compliant');
  });
  it('rollback: the previous branch downgrades a newer installed version', () => {
    const p = plan([assign('av', { branch: 'previous' })], [inst('av', '1.10')], avRepo);
    assert.deepEqual(steps(p), ['install av 1.9 (rollback)']);
    assert.equal(p.steps[0].fromVersion, '1.10');
    assert.deepEqual(state(p, 'av'), { product: 'av', state: 'pending', installedVersion: '1.10', targetVersion: '1.9' });
    // Previous and not installed, or older: an ordinary install.
    assert.deepEqual(steps(plan([assign('av', { branch: 'previous' })], [], avRepo)), ['install av 1.9 (missing)']);
    assert.deepEqual(steps(plan([assign('av', { branch: 'previous' })], [inst('av', '1.2')], avRepo)), ['install av 1.9 (older)']);
    assert.deepEqual(plan([assign('av', { branch: 'previous' })], [inst('av', '1.9')], avRepo).steps, []);
  });
  it('pinned: exactly that version, from any branch or none; downgrades too', () => {
    assert.deepEqual(steps(plan([assign('av', { pinnedVersion: '1.8' })], [], avRepo)), ['install av 1.8 (missing)']);
    assert.deepEqual(steps(plan([assign('av', { pinnedVersion: '1.8' })], [inst('av', '1.10')], avRepo)), ['install av 1.8 (pinned)']);
    assert.deepEqual(steps(plan([assign('av', { pinnedVersion: '1.11-beta.1' })], [inst('av', '1.9')], avRepo)), ['install av 1.11-beta.1 (older)']);
    // Pinned beats the branch's rollback reason.
    assert.deepEqual(steps(plan([assign('av', { branch: 'previous', pinnedVersion: '1.8' })], [inst('av', '1.9')], avRepo)), [
      'install av 1.8 (pinned)',
    ]);
    const same = plan([assign('av', { pinnedVersion: '1.8' })], [inst('av', '1.8.0')], avRepo);
    assert.deepEqual(same.steps, []);
    assert.deepEqual(state(same, 'av'), { product: 'av', state: 'compliant', installedVersion: '1.8.0', targetVersion: '1.8' });
  });
  it('pinned to a version not in the repository, or not for this platform → unavailable', () => {
    const p = plan([assign('av', { pinnedVersion: '3.0' })], [inst('av', '1.9')], avRepo);
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.products, [
      { product: 'av', state: 'unavailable', installedVersion: '1.9', targetVersion: null, detail: 'pinned version 3.0 of av is not in the repository' },
    ]);
    const mac = plan([assign('av', { pinnedVersion: '1.10' })], [], avRepo, 'darwin', 'arm64');
    assert.equal(state(mac, 'av').state, 'unavailable');
    assert.match(state(mac, 'av').detail ?? '', /no package for darwin-arm64/);
  });
  it('a pinned version with builds in several branches prefers the exact spelling, then the assignment\'s branch', () => {
    const repo = [pkg('av', '2.0', { branch: 'evaluation', id: 'e' }), pkg('av', '2.0', { branch: 'current', id: 'c' }), pkg('av', '2.0.0', { branch: 'previous', id: 'p' })];
    const first = (p: DeploymentPlan) => (p.steps[0].action === 'install' ? p.steps[0].package.id : '');
    assert.equal(first(plan([assign('av', { pinnedVersion: '2.0' })], [], repo)), 'c');
    assert.equal(first(plan([assign('av', { pinnedVersion: '2.0', branch: 'evaluation' })], [], repo)), 'e');
    assert.equal(first(plan([assign('av', { pinnedVersion: '2.0.0', branch: 'evaluation' })], [], repo)), 'p');
  });
  it('nothing in the branch → unavailable; nothing assigned → nothing to do', () => {
    const p = plan([assign('av'), assign('nope')], [], [pkg('av', '1.0', { branch: 'evaluation' })]);
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.products, [
      { product: 'av', state: 'unavailable', installedVersion: null, targetVersion: null, detail: 'no package of av in branch current' },
      { product: 'nope', state: 'unavailable', installedVersion: null, targetVersion: null, detail: 'no package of nope in branch current' },
    ]);
    assert.deepEqual(plan([], [inst('av', '1.0')], avRepo), { steps: [], products: [] });
  });
});

describe('planDeployment: platforms and newest version', () => {
  const repo = [
    pkg('agent', '5.0', { platforms: ['darwin-*'] }),
    pkg('agent', '4.2', { platforms: ['linux-*', 'win32-x64'] }),
    pkg('agent', '4.1', { platforms: ['any'] }),
    pkg('agent', '4.3', { platforms: ['linux-arm64'] }),
  ];
  it('takes the newest package built for the device', () => {
    assert.deepEqual(steps(plan([assign('agent')], [], repo, 'linux', 'x64')), ['install agent 4.2 (missing)']);
    assert.deepEqual(steps(plan([assign('agent')], [], repo, 'linux', 'arm64')), ['install agent 4.3 (missing)']);
    assert.deepEqual(steps(plan([assign('agent')], [], repo, 'darwin', 'arm64')), ['install agent 5.0 (missing)']);
    assert.deepEqual(steps(plan([assign('agent')], [], repo, 'win32', 'x64')), ['install agent 4.2 (missing)']);
    assert.deepEqual(steps(plan([assign('agent')], [], repo, 'freebsd', 'x64')), ['install agent 4.1 (missing)']);
  });
  it('unavailable when the branch has the product only for other platforms', () => {
    const p = plan([assign('agent')], [], [pkg('agent', '5.0', { platforms: ['darwin-*'] })]);
    assert.deepEqual(p.products, [
      { product: 'agent', state: 'unavailable', installedVersion: null, targetVersion: null, detail: 'no package of agent in branch current for linux-x64' },
    ]);
  });
  it('equal versions: the most specific platform wins, then the package id', () => {
    const build = (platforms: string[], id: string) => pkg('agent', '4.0', { platforms, id });
    const pick = (packages: CandidatePackage[]) => {
      const s = plan([assign('agent')], [], packages).steps[0];
      return s.action === 'install' ? s.package.id : '';
    };
    assert.equal(pick([build(['any'], 'a'), build(['linux-*'], 'b'), build(['linux-x64'], 'c')]), 'c');
    assert.equal(pick([build(['any'], 'a'), build(['linux-*'], 'b')]), 'b');
    assert.equal(pick([build(['any'], 'z'), build(['any'], 'y')]), 'y');
  });
  it('compares versions, not strings: 1.10 > 1.9, four-part Windows versions, pre-releases', () => {
    const newest = (...versions: string[]) => {
      const p = plan([assign('x')], [], versions.map((v) => pkg('x', v)));
      return state(p, 'x').targetVersion;
    };
    assert.equal(newest('1.9', '1.10', '1.2'), '1.10');
    assert.equal(newest('10.7.0.999', '10.7.0.1234', '10.6.9.9999'), '10.7.0.1234');
    assert.equal(newest('2.0.0-rc.1', '2.0.0', '2.0.0-beta'), '2.0.0');
    assert.equal(newest('2.0.0-rc.1', '1.9'), '2.0.0-rc.1');
  });
  it('stays in the assignment\'s branch', () => {
    const repo2 = [pkg('x', '3.0', { branch: 'evaluation' }), pkg('x', '2.0'), pkg('x', '1.0', { branch: 'previous' }), pkg('x', '9.9', { branch: null })];
    assert.equal(state(plan([assign('x')], [], repo2), 'x').targetVersion, '2.0');
    assert.equal(state(plan([assign('x', { branch: 'evaluation' })], [], repo2), 'x').targetVersion, '3.0');
    assert.equal(state(plan([assign('x', { branch: 'previous' })], [], repo2), 'x').targetVersion, '1.0');
  });
});

// ---------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------

describe('planDeployment: dependencies', () => {
  it('adds a missing dependency from the same branch, before its dependant', () => {
    const repo = [
      pkg('app', '2.0', { dependencies: [{ product: 'lib' }], order: 1 }),
      pkg('app', '3.0', { branch: 'evaluation', dependencies: [{ product: 'lib' }] }),
      pkg('lib', '1.0'),
      pkg('lib', '1.5', { branch: 'evaluation' }),
    ];
    const p = plan([assign('app')], [], repo);
    assert.deepEqual(steps(p), ['install lib 1.0 (dependency)', 'install app 2.0 (missing)']);
    assert.deepEqual(p.products, [
      { product: 'app', state: 'pending', installedVersion: null, targetVersion: '2.0' },
      { product: 'lib', state: 'pending', installedVersion: null, targetVersion: '1.0', detail: 'required by app' },
    ]);
    assert.deepEqual(steps(plan([assign('app', { branch: 'evaluation' })], [], repo)), ['install lib 1.5 (dependency)', 'install app 3.0 (missing)']);
  });
  it('an installed dependency is enough when it meets minVersion', () => {
    const repo = [pkg('app', '2.0', { dependencies: [{ product: 'lib', minVersion: '1.2' }] }), pkg('lib', '1.4')];
    assert.deepEqual(steps(plan([assign('app')], [inst('lib', '1.2.0')], repo)), ['install app 2.0 (missing)']);
    assert.deepEqual(steps(plan([assign('app')], [inst('lib', '1.10')], repo)), ['install app 2.0 (missing)']);
    // Too old: updated from the branch, as a dependency.
    const p = plan([assign('app')], [inst('lib', '1.1')], repo);
    assert.deepEqual(steps(p), ['install lib 1.4 (dependency)', 'install app 2.0 (missing)']);
    assert.equal(p.steps[0].fromVersion, '1.1');
    // Without minVersion any installed version will do.
    const anyLib = [pkg('app', '2.0', { dependencies: [{ product: 'lib' }] }), pkg('lib', '9.0')];
    assert.deepEqual(steps(plan([assign('app')], [inst('lib', '0.1')], anyLib)), ['install app 2.0 (missing)']);
  });
  it('a dependency that cannot be found makes the dependant unavailable', () => {
    const missing = plan([assign('app')], [], [pkg('app', '2.0', { dependencies: [{ product: 'lib' }] })]);
    assert.deepEqual(missing.steps, []);
    assert.deepEqual(missing.products, [
      {
        product: 'app',
        state: 'unavailable',
        installedVersion: null,
        targetVersion: '2.0',
        detail: 'dependency lib has no package in branch current for linux-x64',
      },
    ]);
    // Only in another branch, or only for another platform: still missing.
    for (const lib of [pkg('lib', '1.0', { branch: 'evaluation' }), pkg('lib', '1.0', { platforms: ['darwin-*'] })]) {
      const p = plan([assign('app')], [], [pkg('app', '2.0', { dependencies: [{ product: 'lib' }] }), lib]);
      assert.equal(state(p, 'app').state, 'unavailable');
      assert.match(state(p, 'app').detail ?? '', /dependency lib/);
    }
    // Present but older than minVersion.
    const old = plan([assign('app')], [inst('app', '1.0')], [pkg('app', '2.0', { dependencies: [{ product: 'lib', minVersion: '2' }] }), pkg('lib', '1.9')]);
    assert.deepEqual(old.steps, []);
    assert.deepEqual(state(old, 'app'), {
      product: 'app',
      state: 'unavailable',
      installedVersion: '1.0',
      targetVersion: '2.0',
      detail: 'dependency lib >= 2: branch current has 1.9',
    });
  });
  it('resolves chains, deepest first', () => {
    const repo = [
      pkg('a', '1.0', { dependencies: [{ product: 'b' }], order: 1 }),
      pkg('b', '1.0', { dependencies: [{ product: 'c' }], order: 2 }),
      pkg('c', '1.0', { dependencies: [{ product: 'd', minVersion: '1.0' }], order: 3 }),
      pkg('d', '1.0', { order: 4 }),
    ];
    const p = plan([assign('a')], [], repo);
    assert.deepEqual(steps(p), ['install d 1.0 (dependency)', 'install c 1.0 (dependency)', 'install b 1.0 (dependency)', 'install a 1.0 (missing)']);
    assert.deepEqual(
      p.products.map((s) => `${s.product}:${s.state}:${s.detail ?? ''}`),
      ['a:pending:', 'b:pending:required by a', 'c:pending:required by b', 'd:pending:required by c'],
    );
    // The end of the chain missing: the whole chain is unavailable and nothing is installed.
    const broken = plan([assign('a')], [], repo.slice(0, 3));
    assert.deepEqual(broken.steps, []);
    assert.deepEqual(
      broken.products.map((s) => `${s.product}:${s.state}`),
      ['a:unavailable'],
    );
    assert.match(state(broken, 'a').detail ?? '', /dependency b is unavailable \(dependency c is unavailable \(dependency d >= 1.0 has no package/);
  });
  it('a dependency needed by several products is installed once, before all of them', () => {
    const repo = [
      pkg('x', '1.0', { dependencies: [{ product: 'lib' }], order: 5 }),
      pkg('y', '1.0', { dependencies: [{ product: 'lib' }], order: 1 }),
      pkg('lib', '1.0', { order: 50 }),
    ];
    const p = plan([assign('x'), assign('y')], [], repo);
    assert.deepEqual(steps(p), ['install lib 1.0 (dependency)', 'install y 1.0 (missing)', 'install x 1.0 (missing)']);
    assert.equal(state(p, 'lib').detail, 'required by x, y');
  });
  it('an assigned dependency is installed first whatever its order, and is not overridden', () => {
    const repo = [pkg('app', '2.0', { dependencies: [{ product: 'lib', minVersion: '1.5' }], order: 1 }), pkg('lib', '1.5', { order: 99 }), pkg('lib', '1.0', { branch: 'previous' })];
    assert.deepEqual(steps(plan([assign('app'), assign('lib')], [], repo)), ['install lib 1.5 (missing)', 'install app 2.0 (missing)']);
    // lib assigned to a branch that does not meet minVersion: app waits, lib is installed as assigned.
    const p = plan([assign('app'), assign('lib', { branch: 'previous' })], [], repo);
    assert.deepEqual(steps(p), ['install lib 1.0 (missing)']);
    assert.deepEqual(state(p, 'app'), {
      product: 'app',
      state: 'unavailable',
      installedVersion: null,
      targetVersion: '2.0',
      detail: 'dependency lib >= 1.5: this plan installs lib 1.0',
    });
    // lib assigned but unavailable, and not installed: app is unavailable too.
    const q = plan([assign('app'), assign('lib', { pinnedVersion: '7' })], [], repo);
    assert.deepEqual(q.steps, []);
    assert.match(state(q, 'app').detail ?? '', /dependency lib is unavailable \(pinned version 7/);
    // lib assigned but unavailable, yet installed at a good version: app goes ahead.
    assert.deepEqual(steps(plan([assign('app'), assign('lib', { pinnedVersion: '7' })], [inst('lib', '1.6')], repo)), ['install app 2.0 (missing)']);
  });
  it('a dependency assigned for removal blocks its dependant (the removal still happens)', () => {
    const repo = [pkg('app', '2.0', { dependencies: [{ product: 'lib' }] }), pkg('lib', '1.0')];
    const p = plan([assign('app'), assign('lib', { action: 'remove' })], [inst('lib', '1.0')], repo);
    assert.deepEqual(steps(p), ['uninstall lib 1.0 (unassigned)']);
    assert.deepEqual(state(p, 'app'), { product: 'app', state: 'unavailable', installedVersion: null, targetVersion: '2.0', detail: 'dependency lib is assigned for removal' });
  });
  it('dependencies added for a product that turns out unavailable are dropped', () => {
    const repo = [pkg('app', '2.0', { dependencies: [{ product: 'lib' }, { product: 'zzz' }] }), pkg('lib', '1.0')];
    const p = plan([assign('app')], [], repo);
    assert.deepEqual(p.steps, []);
    assert.deepEqual(
      p.products.map((s) => s.product),
      ['app'],
    );
    assert.match(state(p, 'app').detail ?? '', /dependency zzz/);
  });
  it('cycles: the products of the cycle and what needs them are unavailable; the rest goes ahead', () => {
    const repo = [
      pkg('a', '1.0', { dependencies: [{ product: 'b' }] }),
      pkg('b', '1.0', { dependencies: [{ product: 'c' }] }),
      pkg('c', '1.0', { dependencies: [{ product: 'b' }] }),
      pkg('top', '1.0', { dependencies: [{ product: 'a' }] }),
      pkg('self', '1.0', { dependencies: [{ product: 'self' }] }),
      pkg('fine', '1.0'),
    ];
    const p = plan([assign('top'), assign('a'), assign('b'), assign('self'), assign('fine')], [], repo);
    assert.deepEqual(steps(p), ['install fine 1.0 (missing)']);
    assert.deepEqual(
      p.products.map((s) => `${s.product}:${s.state}`),
      ['a:unavailable', 'b:unavailable', 'fine:pending', 'self:unavailable', 'top:unavailable'],
    );
    assert.equal(state(p, 'b').detail, 'dependency cycle: b → c → b');
    assert.equal(state(p, 'self').detail, 'dependency cycle: self → self');
    assert.match(state(p, 'a').detail ?? '', /^dependency b is unavailable/);
    // c is not assigned and not installed: it is named in b's detail, not listed on its own.
    assert.ok(!p.products.some((s) => s.product === 'c'));
  });
  it('a cycle through unassigned dependencies terminates and installs nothing', () => {
    const repo = [pkg('a', '1.0', { dependencies: [{ product: 'b' }] }), pkg('b', '1.0', { dependencies: [{ product: 'a' }] })];
    const p = plan([assign('a')], [], repo);
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.products.map((s) => `${s.product}:${s.state}`), ['a:unavailable']);
    assert.equal(state(p, 'a').detail, 'dependency cycle: a → b → a');
  });
  it('no cycle when the other side is already installed and not being changed', () => {
    const repo = [pkg('a', '2.0', { dependencies: [{ product: 'b' }] }), pkg('b', '1.0', { dependencies: [{ product: 'a' }] })];
    assert.deepEqual(steps(plan([assign('a'), assign('b')], [inst('b', '1.0')], repo)), ['install a 2.0 (missing)']);
  });
});

describe('planDeployment: definitions', () => {
  const repo = [
    pkg('av', '10.7.0.1234', { order: 30 }),
    pkg('av-defs', '2024.11.21', { kind: 'definitions', contentFor: 'av', order: 0 }),
  ];
  it('definitions are installed after their application, whatever their order', () => {
    assert.deepEqual(steps(plan([assign('av-defs'), assign('av')], [], repo)), ['install av 10.7.0.1234 (missing)', 'install av-defs 2024.11.21 (missing)']);
  });
  it('definitions for an application already installed go alone', () => {
    assert.deepEqual(steps(plan([assign('av-defs'), assign('av')], [inst('av', '10.7.0.1234'), inst('av-defs', '2024.11.20')], repo)), [
      'install av-defs 2024.11.21 (older)',
    ]);
  });
  it('definitions alone bring their application as a dependency', () => {
    const p = plan([assign('av-defs')], [], repo);
    assert.deepEqual(steps(p), ['install av 10.7.0.1234 (dependency)', 'install av-defs 2024.11.21 (missing)']);
    assert.equal(state(p, 'av').detail, 'required by av-defs');
  });
  it('definitions whose application is unavailable are unavailable', () => {
    const p = plan([assign('av-defs')], [], [repo[1]]);
    assert.deepEqual(p.steps, []);
    assert.match(state(p, 'av-defs').detail ?? '', /dependency av has no package/);
  });
});

// ---------------------------------------------------------------------------------------------
// Order, conflicts and removals: the Sophos sequence
// ---------------------------------------------------------------------------------------------

const sophos = [
  pkg('sophos-autoupdate', '5.2.1', { order: 10 }),
  pkg('sophos-rms', '4.1.2', { order: 20, dependencies: [{ product: 'sophos-autoupdate', minVersion: '5.0' }] }),
  pkg('sophos-av', '10.8.11', {
    order: 30,
    dependencies: [{ product: 'sophos-autoupdate', minVersion: '5.0' }, { product: 'sophos-rms' }],
    conflicts: ['mcafee-vse', 'norton-av', 'sophos-av-legacy'],
  }),
  pkg('sophos-firewall', '3.5', { order: 40, dependencies: [{ product: 'sophos-av' }] }),
  pkg('sophos-compliance', '1.2', { order: 50, dependencies: [{ product: 'sophos-rms' }] }),
  pkg('sophos-patch', '1.0', { order: 70, dependencies: [{ product: 'sophos-rms' }] }),
  pkg('sophos-av-defs', '5.99', { kind: 'definitions', contentFor: 'sophos-av', order: 35 }),
];
const sophosAssignments = [
  assign('sophos-patch'),
  assign('sophos-firewall'),
  assign('sophos-av', { removeConflicts: true }),
  assign('sophos-autoupdate'),
  assign('sophos-compliance'),
  assign('sophos-rms'),
];

describe('planDeployment: order, conflicts and removals', () => {
  it('reproduces the Sophos install order: updater, management, anti-virus, then the optional components', () => {
    const p = plan(sophosAssignments, [], sophos);
    assert.deepEqual(steps(p), [
      'install sophos-autoupdate 5.2.1 (missing)',
      'install sophos-rms 4.1.2 (missing)',
      'install sophos-av 10.8.11 (missing)',
      'install sophos-firewall 3.5 (missing)',
      'install sophos-compliance 1.2 (missing)',
      'install sophos-patch 1.0 (missing)',
    ]);
    assert.ok(p.products.every((s) => s.state === 'pending'));
  });
  it('the order holds when only the application is assigned (the rest comes as dependencies)', () => {
    assert.deepEqual(steps(plan([assign('sophos-firewall')], [], sophos)), [
      'install sophos-autoupdate 5.2.1 (dependency)',
      'install sophos-rms 4.1.2 (dependency)',
      'install sophos-av 10.8.11 (dependency)',
      'install sophos-firewall 3.5 (missing)',
    ]);
  });
  it('dependencies come before manifest.order', () => {
    const repo = [pkg('early', '1.0', { order: 1, dependencies: [{ product: 'late' }] }), pkg('late', '1.0', { order: 900 }), pkg('mid', '1.0', { order: 500 }), pkg('plain', '1.0')];
    // late (900) must precede early (1); among the products ready to go, lower order first.
    assert.deepEqual(steps(plan([assign('early'), assign('late'), assign('mid'), assign('plain')], [], repo)), [
      'install plain 1.0 (missing)',
      'install mid 1.0 (missing)',
      'install late 1.0 (missing)',
      'install early 1.0 (missing)',
    ]);
  });
  it('equal orders install by product id', () => {
    const repo = [pkg('b', '1.0', { order: 5 }), pkg('a', '1.0', { order: 5 }), pkg('c', '1.0', { order: 5 })];
    assert.deepEqual(steps(plan([assign('c'), assign('b'), assign('a')], [], repo)), ['install a 1.0 (missing)', 'install b 1.0 (missing)', 'install c 1.0 (missing)']);
  });
  it('removes installed conflicting products first, only when the assignment asks', () => {
    const installed = [inst('mcafee-vse', '8.8'), inst('norton-av', '22.1'), inst('other', '1.0')];
    const p = plan(sophosAssignments, installed, sophos);
    assert.deepEqual(steps(p).slice(0, 3), ['uninstall mcafee-vse 8.8 (conflict)', 'uninstall norton-av 22.1 (conflict)', 'install sophos-autoupdate 5.2.1 (missing)']);
    assert.equal(p.steps.filter((s) => s.action === 'uninstall').length, 2);
    assert.equal(state(p, 'sophos-av').detail, 'removes conflicting mcafee-vse, norton-av first');
    // The conflicting products are not assignments: no state of their own.
    assert.deepEqual(
      p.products.map((s) => s.product),
      ['sophos-autoupdate', 'sophos-av', 'sophos-compliance', 'sophos-firewall', 'sophos-patch', 'sophos-rms'],
    );
    const without = sophosAssignments.map((a) => ({ ...a, removeConflicts: false }));
    assert.ok(plan(without, installed, sophos).steps.every((s) => s.action === 'install'));
  });
  it('conflict removal for an already compliant product makes it pending', () => {
    const installed = [inst('sophos-autoupdate', '5.2.1'), inst('sophos-rms', '4.1.2'), inst('sophos-av', '10.8.11'), inst('norton-av', '22.1')];
    const p = plan([assign('sophos-av', { removeConflicts: true })], installed, sophos);
    assert.deepEqual(steps(p), ['uninstall norton-av 22.1 (conflict)']);
    assert.deepEqual(state(p, 'sophos-av'), {
      product: 'sophos-av',
      state: 'pending',
      installedVersion: '10.8.11',
      targetVersion: '10.8.11',
      detail: 'removes conflicting norton-av first',
    });
    // Without a conflicting product installed: compliant.
    const clean = plan([assign('sophos-av', { removeConflicts: true })], installed.slice(0, 3), sophos);
    assert.deepEqual(clean.steps, []);
    assert.equal(state(clean, 'sophos-av').state, 'compliant');
  });
  it('no conflict removal for an unavailable product', () => {
    const p = plan([assign('sophos-av', { removeConflicts: true, pinnedVersion: '99' })], [inst('norton-av', '22.1')], sophos);
    assert.deepEqual(p.steps, []);
    assert.equal(state(p, 'sophos-av').state, 'unavailable');
  });
  it('never uninstalls a conflict that an install assignment targets or the plan needs', () => {
    const repo = [
      pkg('edr', '2.0', { conflicts: ['legacy', 'helper', 'tool'], dependencies: [{ product: 'helper' }] }),
      pkg('legacy', '1.0'),
      pkg('helper', '1.0'),
      pkg('tool', '1.0'),
    ];
    const installed = [inst('legacy', '1.0'), inst('helper', '1.0'), inst('tool', '1.0')];
    const p = plan([assign('edr', { removeConflicts: true }), assign('legacy')], installed, repo);
    assert.deepEqual(steps(p), ['uninstall tool 1.0 (conflict)', 'install edr 2.0 (missing)']);
    assert.equal(state(p, 'edr').detail, 'removes conflicting tool first; conflicting helper, legacy kept: needed by this deployment');
  });
  it('dependencies added for a removeConflicts assignment remove their conflicts too', () => {
    const repo = [pkg('app', '1.0', { dependencies: [{ product: 'agent' }] }), pkg('agent', '1.0', { conflicts: ['rival-agent'] })];
    const installed = [inst('rival-agent', '3.0')];
    assert.deepEqual(steps(plan([assign('app', { removeConflicts: true })], installed, repo)), [
      'uninstall rival-agent 3.0 (conflict)',
      'install agent 1.0 (dependency)',
      'install app 1.0 (missing)',
    ]);
    assert.deepEqual(steps(plan([assign('app')], installed, repo)), ['install agent 1.0 (dependency)', 'install app 1.0 (missing)']);
  });
  it('remove assignments: uninstall when installed (after conflicts, before installs), compliant otherwise', () => {
    const assignments = [...sophosAssignments, assign('old-updater', { action: 'remove' }), assign('gone', { action: 'remove' }), assign('a-tool', { action: 'remove' })];
    const p = plan(assignments, [inst('old-updater', '1.0'), inst('a-tool', '0.9'), inst('norton-av', '22.1')], sophos);
    assert.deepEqual(steps(p).slice(0, 4), [
      'uninstall norton-av 22.1 (conflict)',
      'uninstall a-tool 0.9 (unassigned)',
      'uninstall old-updater 1.0 (unassigned)',
      'install sophos-autoupdate 5.2.1 (missing)',
    ]);
    assert.deepEqual(state(p, 'old-updater'), { product: 'old-updater', state: 'pending', installedVersion: '1.0', targetVersion: null });
    assert.deepEqual(state(p, 'gone'), { product: 'gone', state: 'compliant', installedVersion: null, targetVersion: null });
  });
  it('a product both conflicting and assigned for removal is uninstalled once, as unassigned', () => {
    const p = plan([assign('sophos-av', { removeConflicts: true }), assign('norton-av', { action: 'remove' })], [inst('norton-av', '22.1'), inst('sophos-autoupdate', '5.2.1'), inst('sophos-rms', '4.1.2')], sophos);
    assert.deepEqual(steps(p), ['uninstall norton-av 22.1 (unassigned)', 'install sophos-av 10.8.11 (missing)']);
  });
  it('duplicate assignments of one product: install wins over remove, never both', () => {
    const p = plan([assign('av', { action: 'remove' }), assign('av')], [inst('av', '1.0')], avRepo);
    assert.deepEqual(steps(p), ['install av 1.10 (older)']);
    assert.equal(p.products.length, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Invariants and determinism
// ---------------------------------------------------------------------------------------------

function checkInvariants(p: DeploymentPlan): void {
  const firstInstall = p.steps.findIndex((s) => s.action === 'install');
  if (firstInstall >= 0) assert.ok(p.steps.slice(firstInstall).every((s) => s.action === 'install'), 'uninstalls before installs');
  const installs = new Set(p.steps.filter((s) => s.action === 'install').map((s) => s.product));
  const uninstalls = p.steps.filter((s) => s.action === 'uninstall').map((s) => s.product);
  assert.equal(new Set(uninstalls).size, uninstalls.length, 'one uninstall per product');
  assert.equal(installs.size, p.steps.length - uninstalls.length, 'one install per product');
  for (const u of uninstalls) assert.ok(!installs.has(u), `${u} both installed and uninstalled`);
  // Every install's dependencies are either installed earlier in the plan or not in it.
  const seen = new Set<string>();
  for (const s of p.steps) {
    if (s.action !== 'install') continue;
    for (const d of s.package.manifest.dependencies ?? []) if (installs.has(d.product)) assert.ok(seen.has(d.product), `${d.product} before ${s.product}`);
    seen.add(s.product);
  }
  for (const s of p.products) if (s.state === 'unavailable') assert.ok(!installs.has(s.product));
}

describe('planDeployment: determinism and invariants', () => {
  const repo = [...sophos, ...avRepo, pkg('lib', '1.0'), pkg('app', '2.0', { dependencies: [{ product: 'lib' }] }), pkg('cyc', '1.0', { dependencies: [{ product: 'cyc' }] })];
  const assignments = [
    ...sophosAssignments,
    assign('av', { branch: 'previous' }),
    assign('app'),
    assign('cyc'),
    assign('old', { action: 'remove' }),
    assign('missing-product'),
  ];
  const installed = [inst('av', '1.10'), inst('old', '3'), inst('mcafee-vse', '8.8'), inst('sophos-rms', '4.0'), inst('unrelated', '1')];

  it('the same plan whatever the order of the inputs', () => {
    const expected = plan(assignments, installed, repo);
    checkInvariants(expected);
    assert.deepEqual(steps(expected), [
      'uninstall mcafee-vse 8.8 (conflict)',
      'uninstall old 3 (unassigned)',
      'install sophos-autoupdate 5.2.1 (missing)',
      'install sophos-rms 4.1.2 (older)',
      'install sophos-av 10.8.11 (missing)',
      'install sophos-firewall 3.5 (missing)',
      'install sophos-compliance 1.2 (missing)',
      'install sophos-patch 1.0 (missing)',
      // Order 100 (the default) for the rest: av is ready first by product id, app waits for lib.
      'install av 1.9 (rollback)',
      'install lib 1.0 (dependency)',
      'install app 2.0 (missing)',
    ]);
    for (let seed = 1; seed <= 20; seed++) {
      const again = plan(shuffled(assignments, seed), shuffled(installed, seed + 100), shuffled(repo, seed + 200));
      assert.deepEqual(again, expected);
    }
  });
  it('holds the invariants over many combinations', () => {
    const products = ['sophos-autoupdate', 'sophos-rms', 'sophos-av', 'sophos-firewall', 'sophos-av-defs', 'app', 'lib', 'cyc', 'norton-av'];
    const branches: DeploymentBranch[] = ['current', 'previous', 'evaluation'];
    for (let seed = 1; seed <= 200; seed++) {
      let x = seed;
      const next = (n: number) => {
        x = (x * 1103515245 + 12345) % 2147483648;
        return x % n;
      };
      const as: EffectiveAssignment[] = [];
      const ins: InstalledProductFact[] = [];
      for (const product of products) {
        const roll = next(4);
        if (roll === 1) as.push(assign(product, { branch: branches[next(3)], removeConflicts: next(2) === 0 }));
        if (roll === 2) as.push(assign(product, { action: 'remove' }));
        if (next(2) === 0) ins.push(inst(product, `${next(12)}.${next(3)}`));
      }
      const p = plan(as, ins, repo);
      checkInvariants(p);
      assert.deepEqual(plan(shuffled(as, seed), shuffled(ins, seed), shuffled(repo, seed)), p);
    }
  });
  it('reports one state per assignment, sorted by product', () => {
    const p = plan(assignments, installed, repo);
    assert.deepEqual(
      p.products.map((s) => `${s.product}:${s.state}`),
      [
        'app:pending',
        'av:pending',
        'cyc:unavailable',
        'lib:pending',
        'missing-product:unavailable',
        'old:pending',
        'sophos-autoupdate:pending',
        'sophos-av:pending',
        'sophos-compliance:pending',
        'sophos-firewall:pending',
        'sophos-patch:pending',
        'sophos-rms:pending',
      ],
    );
  });
});

describe('planDeployment: version schemes', () => {
  it("orders a dpkg product's versions by dpkg: an epoch beats a bigger upstream version", () => {
    const packages = [pkg('tool', '1:1.0', { versionScheme: 'dpkg' }), pkg('tool', '9.0', { branch: 'evaluation', versionScheme: 'dpkg' })];
    const p = plan([assign('tool')], [inst('tool', '9.0')], packages);
    assert.deepEqual(p.products, [{ product: 'tool', state: 'pending', installedVersion: '9.0', targetVersion: '1:1.0' }]);
    assert.equal(p.steps[0]?.action === 'install' && p.steps[0].reason, 'older');
    // The same text under the default scheme: 9.0 is newer, nothing to do.
    const semver = plan([assign('tool')], [inst('tool', '9.0')], [pkg('tool', '1.1')]);
    assert.equal(semver.products[0]?.state, 'compliant');
  });
  it('a Debian revision is newer, a tilde older', () => {
    const packages = [pkg('tool', '2.2-1', { versionScheme: 'dpkg' })];
    assert.equal(plan([assign('tool')], [inst('tool', '2.2~rc-4')], packages).products[0]?.state, 'pending');
    assert.equal(plan([assign('tool')], [inst('tool', '2.2-1ubuntu1')], packages).products[0]?.detail, 'newer than the branch');
  });
  it('pins and minVersion use the scheme of their product', () => {
    const packages = [
      pkg('lib', '1:0.5', { versionScheme: 'rpm' }),
      pkg('app', '2.0', { dependencies: [{ product: 'lib', minVersion: '3.0' }] }),
    ];
    const p = plan([assign('app')], [], packages);
    assert.deepEqual(p.steps.map((s) => s.product), ['lib', 'app']); // rpm: 1:0.5 >= 3.0
    const pinned = plan([assign('lib', { pinnedVersion: '0:1:0.5' })], [], packages);
    assert.equal(pinned.products[0]?.state, 'unavailable'); // not the same EVR
  });
  it('says when an installed version does not parse under the scheme', () => {
    const p = plan([assign('tool')], [inst('tool', 'weird build')], [pkg('tool', '1.0', { versionScheme: 'windows' })]);
    assert.match(p.products[0]?.detail ?? '', /installed version weird build is not a valid windows version/);
  });
});
