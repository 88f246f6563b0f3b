/**
 * The console with several administrators, in a real browser against a real server and real
 * agents (ADR 0013): a scoped operator (role operator on one group, created through the API)
 * sees only that group's devices and tasks, no administration pages, and may run tasks but not
 * change them; nor decide duplicates. They set a second factor from Account and sign in with
 * its code, and make and revoke an API token. The main administrator creates a custom role and
 * an administrator from the new pages, changes, disables, resets and deletes them, and approves
 * a duplicate machine. Sign-in with OpenID Connect: the way back (`/?oidc-error=`, `/?oidc=`)
 * against the real server, and the button and the code exchange with the provider's two
 * answers stubbed in the browser.
 * Screenshots go to test-results/console/ like the other browser tests'.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnAgent, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { buildConsole, checkPage, chromiumSkip, openBrowser, type TestBrowser } from './browser.ts';

/** An RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret, `step` steps from now. */
function totp(base32: string, step = 0): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + step));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1]! & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

describe('web console with roles and scoped administrators', { skip: chromiumSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let b: TestBrowser;
  let adminPassword: string;
  let dir: string;
  let groupA: string;
  let groupB: string;
  let a1: AgentProcess & { deviceId: string };
  const agents: AgentProcess[] = [];
  const OPERATOR = 'operator-a';
  const OPERATOR_PASSWORD = 'operator-a-password';
  let totpSecret = '';

  const check = (name: string) => checkPage(b, name);
  const nav = () => b.page.getByRole('navigation', { name: 'Main' });
  /** The browser logs refused requests itself; those of these statuses were expected. */
  function expectOnly(status: RegExp) {
    assert.ok(b.problems.every((p) => status.test(p)), b.problems.join('\n'));
    b.problems.length = 0;
  }
  async function signIn(name: string, password: string) {
    const { page } = b;
    await page.goto('/');
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByRole('textbox', { name: 'Password', exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  async function signOut() {
    await b.page.getByRole('navigation', { name: 'Account' }).getByRole('button', { name: 'Sign out' }).click();
    await b.page.getByRole('heading', { name: 'Sign in to Garrison' }).waitFor();
  }

  before(async () => {
    await buildConsole();
    dir = await tempDir('garrison-console-access-');
    t = await startTestServer();
    adminPassword = (await readFile(t.server.initialPassword!.file, 'utf8')).trim();
    groupA = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Branch A' })).body.id;
    groupB = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Branch B' })).body.id;
    // a-1 has a machine identity of its own, so that a copy of its state is told apart (a duplicate).
    await writeFile(path.join(dir, 'machine-id-a'), 'a'.repeat(32) + '\n');
    await writeFile(path.join(dir, 'machine-id-b'), 'b'.repeat(32) + '\n');
    a1 = await startAgent(t, groupA, 'a-1', { env: { GARRISON_MACHINE_ID_FILE: path.join(dir, 'machine-id-a') } });
    agents.push(a1, await startAgent(t, groupB, 'b-1'));
    for (const [name, groupId] of [
      ['A: say hello', groupA],
      ['B: say hello', groupB],
    ] as const) {
      const r = await t.api('POST', '/api/v1/tasks', { name, type: 'script', settings: { command: 'echo hello from $(hostname)' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    // The scoped operator, made through the API: the operator role on Branch A, and a password.
    const op = await t.api('POST', '/api/v1/admins', { name: OPERATOR, password: OPERATOR_PASSWORD, grants: [{ roleId: 'operator', groupId: groupA }] });
    assert.equal(op.status, 201, JSON.stringify(op.body));
    b = await openBrowser(t.server.url, t.server.tls!.publicKeyPin);
  });
  after(async () => {
    await b?.close();
    await Promise.all(agents.map((a) => a.stop()));
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await Promise.all(agents.map((a) => rm(a.stateDir, { recursive: true, force: true })));
  });

  it('a scoped operator sees only their group, no administration pages, and may run but not change tasks', async () => {
    const { page } = b;
    await signIn(OPERATOR, OPERATOR_PASSWORD);
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    await nav().getByRole('link', { name: 'Tasks', exact: true }).waitFor();
    const links = await nav().getByRole('link').allInnerTexts();
    for (const hidden of ['Administrators', 'Roles', 'Server tasks']) assert.ok(!links.includes(hidden), `${hidden} is not in the navigation: ${links.join(', ')}`);
    for (const shown of ['Dashboard', 'Devices', 'Tasks', 'Events']) assert.ok(links.includes(shown), `${shown} is in the navigation`);
    await check('operator-dashboard');

    // Devices: their group is the top of the tree, and only its devices are listed.
    await nav().getByRole('link', { name: 'Devices' }).click();
    const tree = page.getByRole('navigation', { name: 'Group tree' });
    await tree.getByRole('button', { name: 'Branch A' }).waitFor();
    assert.deepEqual(await tree.getByRole('button').allInnerTexts(), ['Branch A']);
    // The list's card (the page itself is a region named Devices too).
    const devices = page.getByRole('region', { name: 'Devices', exact: true }).last();
    await devices.getByRole('row').filter({ has: page.getByRole('link', { name: 'a-1', exact: true }) }).getByText('online').waitFor();
    assert.equal(await devices.getByRole('link', { name: 'b-1', exact: true }).count(), 0, 'a device of another group is not listed');
    assert.equal(await devices.getByRole('row').count(), 2, 'the header and a-1');
    for (const action of ['New subgroup', 'Group settings', 'Move to group…']) assert.equal(await page.getByRole('button', { name: action }).count(), 0, `no ${action}`);
    await check('operator-devices');
    await devices.getByRole('link', { name: 'a-1', exact: true }).click();
    await page.getByRole('heading', { name: 'a-1', level: 1 }).waitFor();
    for (const action of ['Edit', 'Rotate credential', 'Revoke credential', 'Delete device']) assert.equal(await page.getByRole('button', { name: action, exact: true }).count(), 0, `no ${action}`);

    // Tasks: their group's only; no New task, import, edit or delete; Run now works.
    await nav().getByRole('link', { name: 'Tasks', exact: true }).click();
    await page.getByRole('heading', { name: 'Tasks', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'A: say hello' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'B: say hello' }).count(), 0, "another group's task is not listed");
    assert.equal(await page.getByRole('link', { name: 'New task' }).count(), 0, 'no New task');
    assert.equal(await page.getByRole('button', { name: 'Import' }).count(), 0, 'no Import');
    await page.getByRole('button', { name: 'Export all' }).waitFor();
    await check('operator-tasks');
    await page.getByRole('link', { name: 'A: say hello' }).click();
    await page.getByRole('heading', { name: 'A: say hello', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Run now' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Edit', exact: true }).count(), 0, 'no Edit');
    for (const action of ['Delete', 'Copy', 'Disable']) assert.equal(await page.getByRole('button', { name: action, exact: true }).count(), 0, `no ${action}`);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByRole('img', { name: /Succeeded 1/ }).first().waitFor({ timeout: 30_000 });
    await check('operator-task-details');
  });

  it("lists a copied machine as a pending duplicate, which the operator sees but may not decide", async () => {
    const { page } = b;
    // a-1's state copied to another machine (an image): a second machine identity with its credential.
    await a1.stop();
    agents.push(spawnAgent([], a1.stateDir, { GARRISON_MACHINE_ID_FILE: path.join(dir, 'machine-id-a') }));
    const cloneState = path.join(dir, 'clone-b');
    await cp(a1.stateDir, cloneState, { recursive: true });
    const clone = spawnAgent([], cloneState, { GARRISON_MACHINE_ID_FILE: path.join(dir, 'machine-id-b') });
    agents.push(clone);
    await waitFor(async () => (await t.api<{ items: unknown[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items.length === 1, { what: 'a pending duplicate', output: clone.output });
    await nav().getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('tab', { name: /^Duplicates/ }).click();
    const pending = page.getByRole('region', { name: 'Pending duplicates' });
    const row = pending.getByRole('row').filter({ has: page.getByRole('link', { name: 'a-1', exact: true }) });
    await row.waitFor();
    await page.getByRole('tab', { name: 'Duplicates (1)' }).waitFor();
    assert.equal(await row.getByRole('button', { name: /^(Approve|Reject)/ }).count(), 0, 'the operator may not decide');
    await check('operator-device-duplicates');
  });

  it('the operator sets a second factor and signs in with its code; makes and revokes an API token', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: OPERATOR }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await page.getByRole('region', { name: 'Your access' }).getByText('Operator on My Organization/Branch A').waitFor();

    await page.getByRole('button', { name: 'Set up second factor' }).click();
    totpSecret = (await page.getByLabel('Setup key').innerText()).replace(/\s/g, '');
    assert.match(totpSecret, /^[A-Z2-7]{16,}$/);
    const uri = await page.getByLabel('otpauth address').innerText();
    assert.match(uri, new RegExp(`^otpauth://totp/.*\\bsecret=${totpSecret}\\b`));
    await check('account-second-factor-setup');
    await page.getByLabel('Authentication code').fill(totp(totpSecret));
    await page.getByRole('button', { name: 'Turn on second factor' }).click();
    await page.getByRole('button', { name: 'Remove second factor' }).waitFor();

    // An API token with an expiry: its value shown once, then revoked.
    const tokens = page.getByRole('region', { name: 'API tokens' });
    await tokens.getByLabel('Token name').fill('ci runner');
    await tokens.getByLabel('Expires after').selectOption({ label: '30 days' });
    await tokens.getByRole('button', { name: 'Create token' }).click();
    const value = await tokens.getByLabel('New API token value').innerText();
    assert.ok(value.length > 20, value);
    // Read before the token is used: a live refresh of the list after its use would show when.
    const row = tokens.getByRole('row').filter({ hasText: 'ci runner' });
    await row.getByText('active').waitFor();
    assert.equal(await row.getByRole('cell').nth(2).locator('time').count(), 1, 'it expires');
    assert.equal(await row.getByRole('cell').nth(3).innerText(), 'never', 'not used from the console');
    const me = await t.fetch(`${t.server.url}/api/v1/me`, { headers: { authorization: `Bearer ${value}` } });
    assert.equal(((await me.json()) as { name: string }).name, OPERATOR, 'the token acts as the operator');
    await check('account-tokens');
    await row.getByRole('button', { name: 'Revoke ci runner' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke ci runner' }).click();
    await row.getByText('revoked').waitFor();
    await tokens.getByRole('button', { name: 'I have copied it' }).click();
    assert.ok(!(await page.content()).includes(value), 'the value is not shown again');

    // Signing in again: the password alone is not enough, the code field appears.
    await signOut();
    await signIn(OPERATOR, OPERATOR_PASSWORD);
    const code = page.getByLabel('Authentication code');
    await code.waitFor();
    await page.getByText('This administrator has a second factor').waitFor();
    assert.equal(await page.getByRole('alert').count(), 0, 'asking for the code is not an error');
    await check('sign-in-second-factor');
    const valid = [-1, 0, 1].map((s) => totp(totpSecret, s));
    await code.fill(['000000', '111111', '222222', '333333'].find((c) => !valid.includes(c))!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('UNAUTHENTICATED').waitFor();
    // The next step's code: the one of this step was used to confirm.
    await code.fill(totp(totpSecret, 1));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    expectOnly(/status of 401/);
    await signOut();
  });

  it('the main administrator creates a custom role and an administrator from the new pages, and manages them', async () => {
    const { page } = b;
    await signIn('admin', adminPassword);
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    const links = await nav().getByRole('link').allInnerTexts();
    for (const shown of ['Administrators', 'Roles', 'Server tasks']) assert.ok(links.includes(shown), `${shown} is in the navigation`);

    // A custom role, with permissions chosen by their descriptions.
    await nav().getByRole('link', { name: 'Roles' }).click();
    await page.getByRole('heading', { name: 'Roles', level: 1 }).waitFor();
    const roles = page.getByRole('region', { name: 'Roles', exact: true }).last();
    await roles.getByRole('row').filter({ hasText: 'Operator' }).getByText('built-in').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Edit Operator' }).count(), 0, 'built-in roles cannot be edited');
    await check('roles');
    await page.getByRole('button', { name: 'New role', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Role name').fill('Help desk');
    await dialog.getByLabel('Description').fill('Runs tasks and looks after devices');
    for (const p of ['read', 'tasks:run', 'devices:write']) await dialog.getByRole('checkbox', { name: new RegExp(`^${p} `) }).check();
    await dialog.getByRole('checkbox', { name: /^repository:write .*server-wide/ }).waitFor();
    await check('role-new');
    await dialog.getByRole('button', { name: 'Create role' }).click();
    const helpdesk = roles.getByRole('row').filter({ hasText: 'Help desk' });
    await helpdesk.getByText('devices:write').waitFor();
    const role = (await t.api<{ items: { id: string; name: string; permissions: string[] }[] }>('GET', '/api/v1/roles')).body.items.find((r) => r.name === 'Help desk')!;
    assert.deepEqual(role.permissions, ['read', 'devices:write', 'tasks:run']);
    // Changed: devices:write taken away.
    await page.getByRole('button', { name: 'Edit Help desk' }).click();
    await dialog.getByRole('checkbox', { name: /^devices:write / }).uncheck();
    await dialog.getByRole('button', { name: 'Save role' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await waitFor(async () => (await helpdesk.getByText('devices:write').count()) === 0, { what: 'the role without devices:write' });

    // An administrator holding it on Branch B, chosen from the group tree.
    await nav().getByRole('link', { name: 'Administrators' }).click();
    await page.getByRole('heading', { name: 'Administrators', level: 1 }).waitFor();
    await page.getByRole('row').filter({ hasText: OPERATOR }).getByText('Operator on My Organization/Branch A').waitFor();
    await page.getByRole('button', { name: 'New administrator', exact: true }).click();
    await dialog.getByLabel('Name', { exact: true }).fill('helpdesk-1');
    await dialog.getByLabel('Password', { exact: true }).fill('helpdesk-1-password');
    await dialog.getByLabel('Display name').fill('Help Desk One');
    await dialog.getByLabel('Role', { exact: true }).selectOption({ label: 'Help desk' });
    await dialog.getByLabel('On group').selectOption({ label: 'My Organization/Branch B' });
    await check('administrator-new');
    await dialog.getByRole('button', { name: 'Create administrator' }).click();
    const row = page.getByRole('row').filter({ hasText: 'helpdesk-1' });
    await row.getByText('Help desk on My Organization/Branch B').waitFor();
    const created = (await t.api<{ items: { name: string; grants: { roleId: string; groupId: string }[] }[] }>('GET', '/api/v1/admins')).body.items.find((a) => a.name === 'helpdesk-1')!;
    assert.deepEqual(created.grants.map((g) => ({ roleId: g.roleId, groupId: g.groupId })), [{ roleId: role.id, groupId: groupB }]);
    await check('administrators');

    // Grants edited: an auditor grant added.
    await page.getByRole('button', { name: 'Edit helpdesk-1' }).click();
    await dialog.getByRole('button', { name: 'Add grant' }).click();
    await dialog.getByLabel('Role', { exact: true }).nth(1).selectOption({ label: 'Auditor' });
    await dialog.getByLabel('On group').nth(1).selectOption({ label: 'My Organization/Branch A' });
    await dialog.getByRole('button', { name: 'Save administrator' }).click();
    await row.getByText('Auditor on My Organization/Branch A').waitFor();

    // Disabled (their sessions end) and enabled again; password reset.
    await page.getByRole('button', { name: 'Disable helpdesk-1' }).click();
    await dialog.getByRole('button', { name: 'Disable helpdesk-1' }).click();
    await row.getByText('disabled', { exact: true }).waitFor();
    const refused = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'helpdesk-1', password: 'helpdesk-1-password' }) });
    assert.equal(refused.status, 401, 'a disabled administrator cannot sign in');
    await page.getByRole('button', { name: 'Enable helpdesk-1' }).click();
    await row.getByText('enabled', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Reset password of helpdesk-1' }).click();
    await dialog.getByLabel('New password', { exact: true }).fill('helpdesk-1-new-password');
    await dialog.getByLabel('New password again').fill('helpdesk-1-new-password');
    await dialog.getByRole('button', { name: 'Reset password' }).click();
    await page.getByText('Password of helpdesk-1 reset').waitFor();
    const signedIn = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'helpdesk-1', password: 'helpdesk-1-new-password' }) });
    assert.equal(signedIn.status, 201, 'the new password works');

    // The operator lost their phone: their second factor is removed.
    const secondFactor = page.getByRole('row').filter({ hasText: OPERATOR }).getByRole('cell').nth(3);
    assert.equal(await secondFactor.innerText(), 'on');
    await page.getByRole('button', { name: `Remove second factor of ${OPERATOR}` }).click();
    await dialog.getByRole('button', { name: 'Remove second factor' }).click();
    await secondFactor.getByText('off', { exact: true }).waitFor();

    // Deleted, with a confirmation; then the role nobody holds any more.
    await page.getByRole('button', { name: 'Delete helpdesk-1' }).click();
    await dialog.getByText('cannot be undone').waitFor();
    await dialog.getByRole('button', { name: 'Delete helpdesk-1' }).click();
    await row.waitFor({ state: 'detached' });
    await nav().getByRole('link', { name: 'Roles' }).click();
    await page.getByRole('button', { name: 'Delete Help desk' }).click();
    await dialog.getByRole('button', { name: 'Delete Help desk' }).click();
    await helpdesk.waitFor({ state: 'detached' });
  });

  it('the administrator approves the duplicate: it becomes a device of its own in the group', async () => {
    const { page } = b;
    await nav().getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('tab', { name: 'Duplicates (1)' }).click();
    const pending = page.getByRole('region', { name: 'Pending duplicates' });
    const row = pending.getByRole('row').filter({ has: page.getByRole('link', { name: 'a-1', exact: true }) });
    await row.getByRole('button', { name: /^Approve / }).waitFor();
    await check('device-duplicates');
    await row.getByRole('button', { name: /^Approve / }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('as a new device in My Organization/Branch A').waitFor();
    await dialog.getByRole('button', { name: /^Approve / }).click();
    await pending.getByText('No machine is waiting').waitFor();
    await page.getByRole('tab', { name: 'Duplicates', exact: true }).waitFor();
    await waitFor(async () => {
      const list = (await t.api<{ items: { groupId: string; clonedFrom: string | null; online: boolean }[] }>('GET', `/api/v1/devices?groupId=${groupA}`)).body.items;
      return list.some((d) => d.clonedFrom === a1.deviceId && d.online);
    }, { what: 'the approved copy online as a device of its own' });
  });

  it('works at phone width on the administration pages', async () => {
    const { page } = b;
    await page.setViewportSize({ width: 375, height: 800 });
    for (const [href, heading, shot] of [
      ['/administrators', 'Administrators', 'phone-administrators'],
      ['/roles', 'Roles', 'phone-roles'],
      ['/account', 'Account', 'phone-account'],
      ['/devices?view=duplicates', 'Devices', 'phone-device-duplicates'],
    ] as const) {
      await page.goto(href);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await check(shot);
    }
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it("sign-in with the identity provider: no button when it is off; its errors shown; the button and the one-time code exchange when it is on", async () => {
    const { page } = b;
    await signOut();
    await page.goto('/?oidc-error=OIDC_NO_ROLE');
    const alert = page.getByRole('alert');
    await alert.getByText('OIDC_NO_ROLE').waitFor();
    assert.match(await alert.innerText(), /maps to a role/);
    assert.equal(new URL(page.url()).search, '', 'the error is taken out of the address');
    assert.equal(await page.getByRole('link', { name: /^Sign in with / }).count(), 0, 'no provider button: it is not configured');
    await check('sign-in-oidc-error');
    // A one-time code that is not (or no longer) valid: exchanged, refused, said so.
    await page.goto('/?oidc=not-a-real-code');
    await page.getByRole('alert').getByText('OIDC_CODE_INVALID').waitFor();
    assert.equal(new URL(page.url()).search, '', 'the code is taken out of the address');
    await page.getByLabel('Name', { exact: true }).waitFor();
    expectOnly(/status of 401/);

    // With the provider configured (its two answers stubbed in the browser, as the contract has them):
    // the button leads to the login route, and a code on the way back becomes a session.
    const token = (await t.api<{ token: string }>('POST', '/api/v1/api-tokens', { name: 'stands in for an OIDC session', expiresInDays: 1 })).body.token;
    let exchanged: unknown = null;
    await page.route('**/api/v1/oidc', (route) => route.fulfill({ json: { enabled: true, displayName: 'Contoso ID', loginPath: '/api/v1/oidc/login' } }));
    await page.route('**/api/v1/session/oidc', (route) => {
      exchanged = route.request().postDataJSON();
      return route.fulfill({ status: 201, json: { token, expiresAt: new Date(Date.now() + 3600_000).toISOString(), name: 'admin' } });
    });
    await page.goto('/');
    const button = page.getByRole('link', { name: 'Sign in with Contoso ID' });
    assert.equal(await button.getAttribute('href'), '/api/v1/oidc/login');
    await check('sign-in-oidc');
    await page.goto('/?oidc=one-time-code');
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    assert.deepEqual(exchanged, { code: 'one-time-code' });
    assert.equal(new URL(page.url()).search, '', 'the code is taken out of the address');
    await page.unrouteAll();
  });

  it('left no errors in the browser console', () => {
    assert.deepEqual(b.problems, []);
  });
});
