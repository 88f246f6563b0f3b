/**
 * The console's policy pages in a real browser (Debian's Chromium through playwright-core)
 * against a real server over HTTPS with a real agent: create an agent policy from the form
 * generated from the policy type, with a locked setting; assign it to the agent's group from
 * the Devices page after its preview; change it, preview which device changes and how, save;
 * and read on the device page the effective value with its origin and its lock. Every page is
 * checked for unlabelled controls, sideways scrolling and console errors (browser.ts).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startAgent, startTestServer, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { buildConsole, checkPage, chromiumSkip, openBrowser, type TestBrowser } from './browser.ts';

describe('console policies in Chromium', { skip: chromiumSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let b: TestBrowser;
  let password: string;
  let groupId: string;
  let agent: AgentProcess & { deviceId: string };
  const check = (name: string) => checkPage(b, name);

  before(async () => {
    await buildConsole();
    t = await startTestServer();
    password = (await readFile(t.server.initialPassword!.file, 'utf8')).trim();
    groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Policy lab' })).body.id;
    agent = await startAgent(t, groupId, 'lab-1');
    b = await openBrowser(t.server.url, t.server.tls!.publicKeyPin);
    const { page } = b;
    await page.goto('/');
    await page.getByLabel('Name', { exact: true }).fill('admin');
    await page.getByRole('textbox', { name: 'Password', exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  });
  after(async () => {
    await b?.close();
    await agent?.stop();
    await t?.close();
  });

  const interval = /^check.in interval/i;

  it('creates a policy with a locked setting from the generated form', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { name: 'Policies', level: 1 }).waitFor();
    await check('policies-empty');
    await page.getByRole('link', { name: 'New policy' }).click();
    await page.getByRole('heading', { name: 'New policy', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Console agent policy');
    await page.getByRole('combobox', { name: 'Product', exact: true }).selectOption('garrison');
    const lock = page.getByRole('checkbox', { name: /^Lock check.in interval/i });
    assert.equal(await lock.isDisabled(), true, 'a setting not set here cannot be locked');
    await page.getByRole('checkbox', { name: /^Set check.in interval.* in this policy$/i }).check();
    await page.getByRole('spinbutton', { name: interval }).fill('20');
    await lock.check();
    await check('policy-new');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await page.getByRole('heading', { name: 'Console agent policy', level: 1 }).waitFor();
    assert.equal(await page.getByRole('spinbutton', { name: interval }).inputValue(), '20');
    assert.equal(await page.getByRole('checkbox', { name: /^Lock check.in interval/i }).isChecked(), true);
    await page.getByRole('link', { name: 'all policies' }).click();
    await page.getByRole('row').filter({ hasText: 'Console agent policy' }).getByText('no group').waitFor();
    await check('policies');
  });

  it("assigns it to the agent's group after the preview", async () => {
    const { page } = b;
    await page.goto(`/devices?group=${groupId}`);
    const policies = page.getByRole('region', { name: 'Policies' });
    await policies.getByRole('button', { name: /^Assign a .* policy to Policy lab$/ }).first().waitFor();
    const row = policies.getByRole('row').filter({ has: page.getByRole('button', { name: /^Assign a .* policy to Policy lab$/ }) });
    // The agent's own product: the row whose product is the agent ("garrison").
    const agentRow = (await row.count()) > 1 ? row.filter({ hasText: /garrison|agent/i }) : row;
    await agentRow.getByRole('button').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Policy', { exact: true }).selectOption({ label: 'Console agent policy' });
    await dialog.getByRole('button', { name: 'Preview' }).click();
    const change = dialog.getByRole('row').filter({ hasText: 'lab-1' });
    await change.waitFor();
    assert.match(await change.innerText(), /checkInIntervalMinutes\s+60\s+20\s+becomes locked/);
    await check('group-policy-preview');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await policies.getByRole('link', { name: 'Console agent policy' }).waitFor();
  });

  it('changes the policy: the preview shows the device and the change, the save names its revision', async () => {
    const { page } = b;
    await page.getByRole('region', { name: 'Policies' }).getByRole('link', { name: 'Console agent policy' }).click();
    await page.getByRole('heading', { name: 'Console agent policy', level: 1 }).waitFor();
    await page.getByRole('spinbutton', { name: interval }).fill('25');
    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.getByRole('region', { name: 'Preview' });
    await preview.getByText(/changes\s+1/).waitFor();
    assert.match(await preview.getByRole('row').filter({ hasText: 'lab-1' }).innerText(), /checkInIntervalMinutes\s+20\s+25\s+locked/);
    await check('policy-preview');
    // Someone else saves first: this save is refused, plainly.
    const id = new URL(page.url()).pathname.split('/').pop()!;
    const other = await t.api('PATCH', `/api/v1/policies/${id}`, { revision: 1, description: 'changed elsewhere' });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    await page.getByRole('button', { name: 'Save policy' }).click();
    const alert = page.getByRole('alert');
    await alert.getByText('POLICY_REVISION_CONFLICT').waitFor();
    assert.match(await alert.innerText(), /changed this policy since you opened it/);
    assert.ok(b.problems.every((p) => /status of 409/.test(p)), b.problems.join('\n'));
    b.problems.length = 0;
    await alert.getByRole('button', { name: 'Reload the policy' }).click();
    await page.getByText('revision 2', { exact: false }).first().waitFor();
    await page.getByRole('spinbutton', { name: interval }).fill('25');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText(/saved: revision 3/).waitFor();
  });

  it("shows on the device page the value's origin and its lock", async () => {
    const { page } = b;
    await page.goto(`/devices/${agent.deviceId}`);
    await page.getByRole('tab', { name: 'Policy' }).click();
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: interval }) });
    await row.getByText('25', { exact: true }).waitFor();
    const text = await row.innerText();
    assert.match(text, /policy “Console agent policy” \(revision 3\) at My Organization\/Policy lab/);
    assert.match(text, /locked by policy “Console agent policy”/);
    await page.getByRole('region', { name: 'Maintenance window' }).getByText(/No maintenance window/).waitFor();
    await check('device-policy');
  });

  it('left no errors in the browser console', () => {
    assert.deepEqual(b.problems, []);
  });
});
