/**
 * Administrators, roles, grants, API tokens and second factors through the CLI: unit tests of
 * the grant syntax; then the real `garrison` binary as a subprocess against a real server (in
 * process) with real agents. A custom role scoped to one group, an operator holding it who
 * signs in with a password given on standard input and makes an API token, the CLI as that
 * operator (what it sees, what it is refused), and the audit trail's channel ("cli").
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Secret, TOTP } from 'otpauth';
import { spawnAgent, startAgent, startTestServer, sqliteKind, tempDir, waitFor, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { nextGrants, parseGrant } from '../src/commands/admins.ts';
import { cliInProcess, cliProcess, type CliResult } from './support/run-cli.ts';
import { userAgent } from '../src/version.ts';
import type { AdminView, DeviceView, GroupView, RoleView, StoredEvent } from '../src/types.ts';

// ---------------------------------------------------------------------------------------------
// ROLE@GROUP
// ---------------------------------------------------------------------------------------------

const role = (id: string, name: string): RoleView => ({ id, name, description: '', permissions: ['read'], builtin: false, createdAt: '', updatedAt: '' });
const group = (id: string, parentId: string | null, name: string, p: string): GroupView =>
  ({ id, parentId, name, path: p, blockInheritance: false, checkInIntervalMinutes: null, policyEnforcementMinutes: null, createdAt: '' }) as unknown as GroupView;

describe('grant specs', () => {
  const roles = [role('operator', 'Operator'), role('r-1', 'Ops@EU'), role('r-2', 'Server operators')];
  const groups = [group('root', null, 'My Organization', 'My Organization'), group('g-1', 'root', 'Servers', 'My Organization/Servers'), group('g-2', 'g-1', 'Web', 'My Organization/Servers/Web'), group('g-3', 'root', 'a@b', 'My Organization/a@b')];

  it('names roles by id or name and groups by id or path, with or without the root', () => {
    assert.deepEqual(parseGrant('operator@My Organization/Servers', roles, groups), { roleId: 'operator', groupId: 'g-1' });
    assert.deepEqual(parseGrant('Operator@Servers', roles, groups), { roleId: 'operator', groupId: 'g-1' });
    assert.deepEqual(parseGrant('server operators@Servers/Web', roles, groups), { roleId: 'r-2', groupId: 'g-2' });
    assert.deepEqual(parseGrant('operator@My Organization', roles, groups), { roleId: 'operator', groupId: 'root' });
    assert.deepEqual(parseGrant(' r-2 @ g-2 ', roles, groups), { roleId: 'r-2', groupId: 'g-2' });
  });

  it('finds the split when a name holds an "@"', () => {
    assert.deepEqual(parseGrant('Ops@EU@Servers', roles, groups), { roleId: 'r-1', groupId: 'g-1' });
    assert.deepEqual(parseGrant('operator@a@b', roles, groups), { roleId: 'operator', groupId: 'g-3' });
  });

  it('passes what it does not know on for the API to refuse, and refuses what is not ROLE@GROUP', () => {
    assert.deepEqual(parseGrant('nobody@Servers', roles, groups), { roleId: 'nobody', groupId: 'g-1' });
    assert.deepEqual(parseGrant('operator@Nowhere', roles, groups), { roleId: 'operator', groupId: 'Nowhere' });
    for (const bad of ['operator', '@Servers', 'operator@', '']) assert.throws(() => parseGrant(bad, roles, groups, '--add-grant'), /--add-grant ".*": give ROLE@GROUP/);
  });

  it('replaces, clears, adds to and removes from the current grants', () => {
    const cur = [{ roleId: 'operator', groupId: 'g-1' }];
    assert.equal(nextGrants(cur, {}), undefined);
    assert.deepEqual(nextGrants(cur, { replace: [{ roleId: 'r-2', groupId: 'g-2' }] }), [{ roleId: 'r-2', groupId: 'g-2' }]);
    assert.deepEqual(nextGrants(cur, { clear: true }), []);
    assert.deepEqual(nextGrants(cur, { add: [{ roleId: 'r-2', groupId: 'g-2' }, { roleId: 'operator', groupId: 'g-1' }] }), [...cur, { roleId: 'r-2', groupId: 'g-2' }]);
    assert.deepEqual(nextGrants(cur, { remove: [{ roleId: 'operator', groupId: 'g-1' }], add: [{ roleId: 'r-2', groupId: 'g-1' }] }), [{ roleId: 'r-2', groupId: 'g-1' }]);
    assert.throws(() => nextGrants(cur, { remove: [{ roleId: 'r-2', groupId: 'g-1' }] }, () => 'Server operators on Servers'), /does not hold Server operators on Servers/);
    assert.throws(() => nextGrants(cur, { replace: [{ roleId: 'r-2', groupId: 'g-2' }], add: [{ roleId: 'r-2', groupId: 'g-1' }] }), /replace the grants/);
    assert.throws(() => nextGrants(cur, { replace: [{ roleId: 'r-2', groupId: 'g-2' }], clear: true }), /not both/);
  });

  it('says it is the CLI in its User-Agent', () => {
    assert.match(userAgent(), /^garrison-cli\/\d+\.\d+\.\d+/);
  });
});

describe('cliMain: the access commands', () => {
  const inProcess = (argv: string[]): Promise<CliResult> => cliInProcess(argv, { XDG_CONFIG_HOME: '/nonexistent-garrison-test', GARRISON_URL: 'http://127.0.0.1:9', GARRISON_TOKEN: 'gat.x.y' });

  it('lists them in the help', async () => {
    const help = await inProcess(['--help']);
    assert.equal(help.code, 0);
    for (const c of ['garrison admin create --name <name>', 'garrison admin reset-password <admin>', 'garrison role create --name <name>', 'garrison api-token create --name <name>', 'garrison 2fa confirm <code>', 'garrison device duplicates', 'garrison device approve-duplicate <id>']) {
      assert.ok(help.stdout.includes(c), c);
    }
  });

  it('checks options before any request', async () => {
    for (const [argv, message] of [
      [['admin', 'create', '--name', 'x', '--password', 'hunter2hunter2'], /a password never goes on the command line/],
      [['admin', 'reset-password', 'x', '--password', 'hunter2hunter2'], /a password never goes on the command line/],
      [['role', 'create', '--name', 'x'], /give at least one --permission/],
      [['2fa', 'confirm', '12 34'], /is not a code/],
      [['api-token', 'create', '--name', 'x', '--expires-days', '0'], /--expires-days must be a whole number from 1 to 3650/],
    ] as const) {
      const r = await inProcess([...argv]);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The binary against a real server
// ---------------------------------------------------------------------------------------------

describe('garrison admin, role, api-token and 2fa against a real server', { timeout: 300_000 }, () => {
  let t: TestServer;
  let configHome: string;
  let dir: string;
  const agents: AgentProcess[] = [];
  let serverAgent: AgentProcess & { deviceId: string };
  let deskAgent: AgentProcess & { deviceId: string };
  let operatorToken = '';
  let operatorId = '';
  const password = 'correct horse battery staple';

  /** cliMain in this process unless the step reads standard input (a spawned CLI costs about a second). */
  const cli = (args: string[], opts: { input?: string; token?: string } = {}): Promise<CliResult> => {
    const env = { HOME: configHome, XDG_CONFIG_HOME: configHome, GARRISON_URL: t.server.url, GARRISON_TOKEN: opts.token ?? t.token, GARRISON_CA: t.caFile };
    return opts.input !== undefined ? cliProcess(args, env, opts.input) : cliInProcess(args, env);
  };
  const ok = async (args: string[], opts?: { input?: string; token?: string }): Promise<string> => {
    const r = await cli(args, opts);
    assert.equal(r.code, 0, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const refused = async (args: string[], code: string, opts?: { input?: string; token?: string }): Promise<CliResult> => {
    const r = await cli(args, opts);
    assert.equal(r.code, 1, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    assert.match(r.stderr, new RegExp(`^error ${code}: `), r.stderr);
    return r;
  };
  const signIn = async (name: string, pw: string): Promise<Response> =>
    t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: pw }) });
  const auditEvents = async (kind: string): Promise<StoredEvent[]> => {
    await t.server.services.events.flush();
    const r = await t.api<{ items: StoredEvent[] }>('GET', `/api/v1/events?kind=${encodeURIComponent(kind)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.items;
  };

  before(async () => {
    configHome = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-home-'));
    dir = await tempDir('garrison-admin-cli-');
    t = await startTestServer(sqliteKind);
    const servers = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Servers' })).body.id;
    const desks = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Desks' })).body.id;
    // The server agent has a machine identity of its own, so that a copy of it is told apart (a duplicate).
    await writeFile(path.join(dir, 'machine-id-a'), 'a'.repeat(32) + '\n');
    await writeFile(path.join(dir, 'machine-id-b'), 'b'.repeat(32) + '\n');
    serverAgent = await startAgent(t, servers, 'srv-1', { env: { GARRISON_MACHINE_ID_FILE: path.join(dir, 'machine-id-a') } });
    agents.push(serverAgent);
    deskAgent = await startAgent(t, desks, 'desk-1');
    agents.push(deskAgent);
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await t?.close();
    for (const a of agents) await rm(a.stateDir, { recursive: true, force: true });
    await rm(configHome, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('lists roles and permissions, and creates a custom role', async () => {
    const roles = await ok(['role', 'list']);
    assert.match(roles, /^NAME\s+BUILT-IN\s+PERMISSIONS\s+ID$/m);
    assert.match(roles, /^Operator\s+yes\s+read, tasks:run\s+operator$/m);
    assert.match(await ok(['role', 'permissions']), /^admins:write\s+yes\s+Manage administrators/m);
    const bad = await cli(['role', 'create', '--name', 'x', '--permission', 'read,tasks:fly']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown permission "tasks:fly"; the permissions are read, groups:write/);
    assert.match(await ok(['role', 'create', '--name', 'Server operators', '--permission', 'read', '--permission', 'tasks:write', '--description', 'runs the servers']), /^created role Server operators \([^)]+\): read, tasks:write$/m);
    // Changed by name: tasks:run instead of tasks:write.
    assert.match(await ok(['role', 'update', 'server operators', '--add-permission', 'tasks:run', '--remove-permission', 'tasks:write']), /: read, tasks:run$/m);
    const shown = await ok(['role', 'show', 'Server operators']);
    assert.match(shown, /^Built-in:\s+no$/m);
    assert.match(shown, /^ {2}tasks:run\s+Run tasks now and stop them$/m);
    await refused(['role', 'update', 'operator', '--name', 'Mine'], 'CONFLICT');
    // A copy of a built-in role, with one more permission; then deleted.
    assert.match(await ok(['role', 'create', '--name', 'Installing operators', '--from', 'Operator', '--permission', 'tokens:write']), /: read, tasks:run, tokens:write$/m);
    assert.match(await ok(['role', 'show', 'Installing operators']), /^Description:\s+Sees the subtree and runs and stops its tasks/m);
    await ok(['role', 'delete', 'Installing operators']);
    const none = await cli(['role', 'create', '--name', 'Empty']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give at least one --permission/);
  });

  it('creates an administrator scoped to a group, with the password from standard input and never from the command line', async () => {
    const onLine = await cli(['admin', 'create', '--name', 'op1', '--password', password]);
    assert.equal(onLine.code, 2);
    assert.match(onLine.stderr, /a password never goes on the command line/);
    const noAt = await cli(['admin', 'create', '--name', 'op1', '--grant', 'Server operators']);
    assert.equal(noAt.code, 2);
    assert.match(noAt.stderr, /give ROLE@GROUP/);
    await refused(['admin', 'create', '--name', 'op1', '--grant', 'Server operators@Nowhere'], 'VALIDATION_FAILED');

    const out = await ok(['admin', 'create', '--name', 'op1', '--display-name', 'Op One', '--email', 'op1@example.org', '--grant', 'Server operators@Servers', '--password-stdin'], { input: `${password}\n` });
    assert.match(out, /^created administrator op1 \([0-9a-f-]+\) with Server operators on My Organization\/Servers$/m);
    const created = JSON.parse(await ok(['admin', 'show', 'op1', '--json'])) as AdminView;
    operatorId = created.id;
    assert.equal(created.hasPassword, true);
    assert.deepEqual(created.grants.map((g) => [g.roleName, g.groupPath]), [['Server operators', 'My Organization/Servers']]);
    const list = await ok(['admin', 'list']);
    assert.match(list, /^NAME\s+DISPLAY NAME\s+STATE\s+GRANTS\s+SIGN-IN\s+LAST SIGN-IN\s+ID$/m);
    assert.match(list, /^admin\s+-\s+active\s+Main administrator on My Organization\s/m);
    assert.match(list, /^op1\s+Op One\s+active\s+Server operators on My Organization\/Servers\s+password\s+never\s/m);
    assert.match(await ok(['admin', 'show', operatorId]), /^Email:\s+op1@example\.org$/m);

    // Grants: added to, removed from, replaced.
    // (The server keeps grants in no particular order.)
    const added = JSON.parse(await ok(['admin', 'update', 'op1', '--add-grant', 'auditor@Desks', '--json'])) as AdminView;
    assert.deepEqual(added.grants.map((g) => `${g.roleName} on ${g.groupPath}`).sort(), ['Auditor on My Organization/Desks', 'Server operators on My Organization/Servers']);
    assert.match(await ok(['admin', 'update', 'op1', '--remove-grant', 'Auditor@My Organization/Desks', '--email', '']), /^Email:\s+-$/m);
    const notHeld = await cli(['admin', 'update', 'op1', '--remove-grant', 'auditor@Desks']);
    assert.equal(notHeld.code, 2);
    assert.match(notHeld.stderr, /does not hold auditor@/);
    assert.match(await ok(['admin', 'update', 'op1', '--grant', 'Server operators@Servers']), /^Grants:\s+Server operators on My Organization\/Servers$/m);

    // The password given works for signing in; a role somebody holds cannot be deleted.
    assert.equal((await signIn('op1', password)).status, 201);
    await refused(['role', 'delete', 'Server operators'], 'CONFLICT');
  });

  it('lets the administrator make an API token from a console session, and shows it once', async () => {
    const session = ((await (await signIn('op1', password)).json()) as { token: string }).token;
    const out = await ok(['api-token', 'create', '--name', 'op1 laptop', '--expires-days', '30'], { token: session });
    operatorToken = /^\s+(gat\.\S+)$/m.exec(out)?.[1] ?? '';
    assert.ok(operatorToken, out);
    assert.match(out, /^API token "op1 laptop" \(id [^,]+, expires \d{4}-/m);
    const list = await ok(['api-token', 'list'], { token: operatorToken });
    assert.match(list, /^op1 laptop\s+active\s+\d{4}-.*\s[0-9a-f-]{8,}$/m);
    assert.ok(!list.includes(operatorToken), 'token values are never listed');
    // A second one, revoked by name.
    await ok(['api-token', 'create', '--name', 'throwaway'], { token: operatorToken });
    assert.match(await ok(['api-token', 'revoke', 'throwaway'], { token: operatorToken }), /^revoked API token /);
    assert.match(await ok(['api-token', 'list'], { token: operatorToken }), /^throwaway\s+revoked\s/m);
    // The main administrator's own tokens are their own.
    assert.ok(!(await ok(['api-token', 'list'])).includes('op1 laptop'));
  });

  it('as the operator: whoami shows the grant, device list only the group, writes and administrators are refused', async () => {
    const me = await ok(['whoami'], { token: operatorToken });
    assert.match(me, /^Name:\s+op1$/m);
    assert.match(me, /^Display name:\s+Op One$/m);
    assert.match(me, /^Roles:\s+Server operators on My Organization\/Servers$/m);
    assert.match(me, /^Permissions:\s+read, tasks:run$/m);
    assert.match(me, /^On the root group:\s+none$/m);
    assert.match(me, /^Second factor:\s+off$/m);
    assert.match(me, /^Signed in via:\s+cli$/m);

    const devices = JSON.parse(await ok(['device', 'list', '--json'], { token: operatorToken })) as DeviceView[];
    assert.deepEqual(devices.map((d) => d.id), [serverAgent.deviceId]);
    const table = await ok(['device', 'list'], { token: operatorToken });
    assert.match(table, /^srv-1\s/m);
    assert.ok(!table.includes('desk-1'), table);
    assert.equal((JSON.parse(await ok(['device', 'list', '--json'])) as DeviceView[]).length, 2, 'the main administrator sees both');

    await refused(['task', 'create', '--name', 'not mine', '--group', 'Servers', '--command', 'true', '--schedule', 'on-demand'], 'FORBIDDEN', { token: operatorToken });
    await refused(['admin', 'list'], 'FORBIDDEN', { token: operatorToken });
    await refused(['admin', 'create', '--name', 'op2', '--grant', 'operator@Servers'], 'FORBIDDEN', { token: operatorToken });
    await refused(['role', 'create', '--name', 'Mine', '--permission', 'read'], 'FORBIDDEN', { token: operatorToken });
    await refused(['device', 'tag', 'srv-1', 'x'], 'FORBIDDEN', { token: operatorToken });
    // What it cannot see does not exist for it.
    await refused(['device', 'show', deskAgent.deviceId], 'NOT_FOUND', { token: operatorToken });
  });

  it('lists duplicates of a copied machine, rejects one and approves another', async () => {
    assert.match(await ok(['device', 'duplicates']), /^no pending duplicates$/m);
    // The server's agent state copied to two other machines (an image): two pending duplicates.
    await serverAgent.stop();
    await writeFile(path.join(dir, 'machine-id-c'), 'c'.repeat(32) + '\n');
    const again = spawnAgent([], serverAgent.stateDir, { GARRISON_MACHINE_ID_FILE: path.join(dir, 'machine-id-a') });
    agents.push(again);
    const clones: AgentProcess[] = [];
    for (const id of ['b', 'c']) {
      const state = path.join(dir, `clone-${id}`);
      await cp(serverAgent.stateDir, state, { recursive: true });
      const clone = spawnAgent([], state, { GARRISON_MACHINE_ID_FILE: path.join(dir, `machine-id-${id}`) });
      clones.push(clone);
      agents.push(clone);
    }
    const pendingList = await waitFor(async () => {
      const l = (await t.api<{ items: { id: string; deviceId: string }[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items;
      return l.length === 2 && l;
    }, { what: 'two pending duplicates', output: () => clones.map((c) => c.output()).join('\n') });
    assert.ok(pendingList.every((d) => d.deviceId === serverAgent.deviceId));
    const [toReject, toApprove] = pendingList.map((d) => d.id) as [string, string];
    const list = await ok(['device', 'duplicates']);
    assert.match(list, /^HOSTNAME\s+CREDENTIAL OF\s+STATE\s+SEEN\s+FIRST SEEN\s+LAST SEEN\s+ADDRESS\s+DECIDED\s+ID$/m);
    for (const id of pendingList.map((d) => d.id)) assert.match(list, new RegExp(`^\\S+\\s+srv-1\\s+pending\\s+\\d+\\s.*${id}$`, 'm'));
    // The operator sees them (they are in the group) but may not decide.
    assert.match(await ok(['device', 'duplicates'], { token: operatorToken }), new RegExp(toReject));
    await refused(['device', 'reject-duplicate', toReject], 'FORBIDDEN', { token: operatorToken });
    await refused(['device', 'approve-duplicate', toApprove], 'FORBIDDEN', { token: operatorToken });
    await refused(['device', 'approve-duplicate', 'no-such-duplicate'], 'NOT_FOUND');

    assert.match(await ok(['device', 'reject-duplicate', toReject]), /^rejected: the machine \S+ is refused from now on; device /);
    await refused(['device', 'approve-duplicate', toReject], 'CONFLICT');
    assert.match(await ok(['device', 'duplicates', '--state', 'rejected']), new RegExp(`rejected\\s+\\d+\\s.*admin .*${toReject}$`, 'm'));

    const approved = JSON.parse(await ok(['device', 'approve-duplicate', toApprove, '--json'])) as { state: string; newDeviceId: string };
    assert.equal(approved.state, 'approved');
    // The approved machine comes back as a device of its own in the same group.
    const newDevice = await waitFor(async () => {
      const d = (JSON.parse(await ok(['device', 'list', '--group', 'Servers', '--json'])) as DeviceView[]).find((x) => x.id === approved.newDeviceId);
      return d?.online && d;
    }, { what: 'the approved clone online', output: () => clones.map((c) => c.output()).join('\n') });
    assert.equal(newDevice.clonedFrom, serverAgent.deviceId);
    assert.match(await ok(['device', 'duplicates', '--state', 'all']), new RegExp(`approved as \\S+\\s+\\d+\\s.*${toApprove}$`, 'm'));
    assert.match(await ok(['device', 'duplicates']), /^no pending duplicates$/m);
    assert.match(await ok(['device', 'refusals']), /^Refused:\s+\d+$/m);
  });

  it('sets and removes a second factor', async () => {
    const setup = JSON.parse(await ok(['2fa', 'enable', '--json'])) as { secret: string; uri: string };
    assert.match(setup.uri, /^otpauth:\/\/totp\/Garrison:admin\?/);
    const totp = new TOTP({ issuer: 'Garrison', secret: Secret.fromBase32(setup.secret) });
    const bad = await cli(['2fa', 'confirm', '12345']);
    assert.equal(bad.code, 2);
    await refused(['2fa', 'confirm', String((Number(totp.generate()) + 1) % 1_000_000).padStart(6, '0')], 'VALIDATION_FAILED');
    assert.match(await ok(['2fa', 'confirm', totp.generate()]), /^second factor set/);
    assert.match(await ok(['whoami']), /^Second factor:\s+on$/m);
    // The next step's code (the one just used works once).
    assert.match(await ok(['2fa', 'disable', totp.generate({ timestamp: Date.now() + 30_000 })]), /^second factor removed$/m);
    assert.match(await ok(['whoami']), /^Second factor:\s+off$/m);

    // The operator's, removed by the main administrator (a lost phone): password sign-ins ask for a code, then no longer.
    const human = await ok(['2fa', 'enable'], { token: operatorToken });
    assert.match(human, /^Add this second factor for op1 to an authenticator app/m);
    assert.match(human, /^ {2}otpauth:\/\/totp\/Garrison:op1\?/m);
    const secret = /^ {2}([A-Z2-7]+)$/m.exec(human)![1]!;
    await ok(['2fa', 'confirm', new TOTP({ issuer: 'Garrison', secret: Secret.fromBase32(secret) }).generate()], { token: operatorToken });
    assert.match(await ok(['admin', 'show', 'op1']), /^Second factor:\s+on$/m);
    assert.equal(((await (await signIn('op1', password)).json()) as { error: { code: string } }).error.code, 'SECOND_FACTOR_REQUIRED');
    assert.match(await ok(['admin', 'remove-2fa', 'op1']), /^second factor of op1 removed$/m);
    assert.match(await ok(['admin', 'show', 'op1']), /^Second factor:\s+off$/m);
  });

  it('disables the operator: their token stops working at once; enabled again, revoked tokens stay revoked', async () => {
    assert.match(await ok(['admin', 'disable', 'op1']), /^disabled administrator op1; their API tokens and console sessions were revoked$/m);
    await refused(['device', 'list'], 'UNAUTHENTICATED', { token: operatorToken });
    assert.match(await ok(['admin', 'list']), /^op1\s+Op One\s+disabled\s/m);
    assert.equal((await signIn('op1', password)).status, 401);
    assert.match(await ok(['admin', 'enable', 'op1']), /^enabled administrator op1$/m);
    await refused(['whoami'], 'UNAUTHENTICATED', { token: operatorToken });
    // A new password from standard input; the old one no longer signs in.
    const next = 'another long password 2';
    assert.match(await ok(['admin', 'reset-password', 'op1'], { input: `${next}\n` }), /^password of op1 set; their console sessions ended$/m);
    assert.equal((await signIn('op1', password)).status, 401);
    assert.equal((await signIn('op1', next)).status, 201);
    const empty = await cli(['admin', 'reset-password', 'op1'], { input: '' });
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /the password is empty/);
  });

  it('deletes an administrator and then the role nobody holds', async () => {
    await ok(['admin', 'delete', 'op1']);
    await refused(['admin', 'show', 'op1'], 'NOT_FOUND');
    assert.match(await ok(['role', 'delete', 'Server operators']), /^deleted role Server operators/);
    await refused(['role', 'show', 'Server operators'], 'NOT_FOUND');
  });

  it('records the CLI as the channel of what was done through it', async () => {
    // One more administrator through the API directly (no garrison-cli User-Agent), for contrast.
    assert.equal((await t.api('POST', '/api/v1/admins', { name: 'api-made', grants: [] })).status, 201);
    const created = await auditEvents('audit.admin.created');
    const byName = (name: string) => created.find((e) => e.message === `administrator "${name}" created`);
    assert.equal(byName('op1')?.via, 'cli', JSON.stringify(created));
    assert.equal(byName('op1')?.actor, 'admin');
    assert.equal(byName('op1')?.data?.adminId, operatorId);
    assert.equal(byName('api-made')?.via, 'api-token');
    // The operator's own token, made from a console session, and what they did with it through the CLI.
    const tokens = await auditEvents('audit.api-token.created');
    assert.equal(tokens.find((e) => e.message === 'API token "op1 laptop" created')?.via, 'console');
    assert.equal(tokens.find((e) => e.message === 'API token "throwaway" created')?.via, 'cli');
    for (const kind of ['audit.admin.disabled', 'audit.admin.enabled', 'audit.admin.updated', 'audit.admin.password-reset', 'audit.admin.deleted', 'audit.device.duplicate-rejected', 'audit.device.duplicate-approved', 'audit.admin.second-factor-set', 'audit.admin.second-factor-removed']) {
      const events = await auditEvents(kind);
      assert.ok(events.length > 0, kind);
      assert.ok(events.every((e) => e.via === 'cli'), `${kind}: ${JSON.stringify(events.map((e) => e.via))}`);
    }
  });
});
