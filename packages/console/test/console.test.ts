/**
 * The web console in a real browser (Debian's Chromium, driven by playwright-core) against a
 * real server over HTTPS with real agent processes: sign-in, the dashboard, the group tree
 * with live online state, creating a group task from the form, running it, watching its
 * progress and reading a device's output, the event log and its export, secrets, a server
 * task run watched live and one created from the form, the other pages at laptop and phone
 * widths. Every page is checked for unlabelled controls and console errors; screenshots are
 * saved in test-results/console/.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { spawnAgent, startAgent, startTestServer, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { buildConsole, checkPage, chromiumSkip, openBrowser, type TestBrowser } from './browser.ts';

describe('web console in Chromium', { skip: chromiumSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let b: TestBrowser;
  let password: string;
  let groupId: string;
  const agents: (AgentProcess & { deviceId: string })[] = [];
  const others: AgentProcess[] = [];

  const check = (name: string) => checkPage(b, name);

  before(async () => {
    await buildConsole();
    t = await startTestServer();
    assert.ok(t.server.consoleBuilt, 'the server serves the console');
    password = (await readFile(t.server.initialPassword!.file, 'utf8')).trim();
    const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Web servers' });
    groupId = g.body.id;
    agents.push(await startAgent(t, groupId, 'web-1'), await startAgent(t, groupId, 'web-2'));
    b = await openBrowser(t.server.url, t.server.tls!.publicKeyPin);
  });
  after(async () => {
    await b?.close();
    await Promise.all([...agents, ...others].map((a) => a.stop()));
    await t?.close();
  });

  it('signs in: a wrong password shows the error code, the right one opens the dashboard', async () => {
    const { page } = b;
    await page.goto('/');
    await page.getByLabel('Name', { exact: true }).fill('admin');
    await page.getByRole('textbox', { name: 'Password', exact: true }).fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /UNAUTHENTICATED/);
    assert.match(await alert.innerText(), /name or the password is wrong/);
    await check('sign-in-error');
    // The browser logs the refused request itself; that one is expected.
    assert.ok(b.problems.every((p) => /status of 401/.test(p)), b.problems.join('\n'));
    b.problems.length = 0;
    // By keyboard: Enter in the password field submits the form.
    await page.getByRole('textbox', { name: 'Password', exact: true }).fill(password);
    await page.getByRole('textbox', { name: 'Password', exact: true }).press('Enter');
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    await page.getByText('managed devices').waitFor();
    const devicesCard = page.getByRole('region', { name: 'Devices' });
    await devicesCard.getByRole('img', { name: /Online 2/ }).waitFor();
    await check('dashboard');
  });

  it('shows the group tree and its devices, whose online state changes live', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('navigation', { name: 'Group tree' }).getByRole('button', { name: 'Web servers' }).click();
    const row = (name: string) => page.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });
    await row('web-1').getByText('online').waitFor();
    await row('web-2').getByText('online').waitFor();
    await check('devices');
    // web-2's agent stops: the page shows it offline without a reload.
    await agents[1]!.stop();
    await row('web-2').getByText(/offline/).waitFor({ timeout: 15_000 });
    await row('web-1').getByText('online').waitFor();
    // A subgroup from the dialog; the same name again is refused with the API's code, shown in the dialog.
    const tree = page.getByRole('navigation', { name: 'Group tree' });
    const dialog = page.getByRole('dialog');
    await page.getByRole('button', { name: 'New subgroup' }).click();
    await dialog.getByLabel('Group name').fill('Staging');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('region', { name: 'My Organization/Web servers/Staging' }).waitFor();
    await tree.getByRole('button', { name: 'Web servers' }).click();
    await page.getByRole('button', { name: 'New subgroup' }).click();
    await dialog.getByLabel('Group name').fill('Staging');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await dialog.getByRole('alert').getByText('CONFLICT', { exact: true }).waitFor();
    assert.match(await dialog.getByRole('alert').innerText(), /already exists/);
    assert.ok(b.problems.every((p) => /status of 409/.test(p)), b.problems.join('\n'));
    b.problems.length = 0;
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('link', { name: 'web-1', exact: true }).click();
    await page.getByRole('heading', { name: 'web-1', level: 1 }).waitFor();
    await page.getByText('Host name').waitFor();
    await check('device-details');
  });

  it('creates a group task from the form, runs it, watches its progress and reads a device result', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tasks', exact: true }).click();
    await page.getByRole('heading', { name: 'Tasks', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'New task' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Console: say hello');
    await page.getByLabel('Task type').selectOption('script');
    await page.getByLabel('Command', { exact: true }).fill('echo "hello from $(hostname) via the console"');
    await page.getByLabel('Scope type').selectOption('group').catch(() => page.getByRole('radio', { name: /group/i }).check());
    await page.getByLabel('Group', { exact: true }).selectOption({ label: 'My Organization/Web servers' });
    const preview = page.getByRole('region', { name: 'Devices in scope' });
    await preview.getByText(/2 devices/).waitFor();
    await check('task-new');
    await page.getByRole('button', { name: 'Save task' }).click();
    await page.getByRole('heading', { name: 'Console: say hello', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Run now' }).click();
    // web-1 runs it at once; web-2 is offline and gets it when it comes back.
    await page.getByRole('img', { name: /Succeeded 1/ }).first().waitFor({ timeout: 30_000 });
    await check('task-running');
    // web-2 comes back: it gets the pending run, and the bar moves on without a reload.
    others.push(spawnAgent([], agents[1]!.stateDir));
    await page.getByRole('img', { name: /Succeeded 2/ }).first().waitFor({ timeout: 30_000 });
    const results = page.getByRole('region', { name: 'Results' });
    const row = results.getByRole('row').filter({ hasText: 'web-1' });
    await row.getByText(/succeeded/i).first().waitFor();
    await row.getByRole('button', { name: /output/i }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText(/hello from .* via the console/).waitFor();
    await b.screenshot('task-result-output');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await check('task-details');
  });

  it('filters the event log and exports it as CSV', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events' }).click();
    await page.getByLabel('Kind').fill('run.succeeded');
    await page.getByRole('cell', { name: /Console: say hello" succeeded on "web-1"/ }).first().waitFor();
    await check('events');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const csv = await readFile((await download.path())!, 'utf8');
    assert.match(csv.split('\n')[0]!, /^id,time,severity,kind,message/);
    assert.match(csv, /run\.succeeded/);
    assert.doesNotMatch(csv, /agent\.connected/, 'the export has the filter applied');
  });

  it('sets a secret whose value is never shown again', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Secrets' }).click();
    await page.getByLabel('Name', { exact: true }).fill('deploy-password');
    await page.getByLabel('Value', { exact: true }).fill('s3cret-value-from-the-browser');
    await page.getByLabel('Description', { exact: true }).fill('for the console test');
    await page.getByRole('button', { name: 'Save secret' }).click();
    await page.getByRole('cell', { name: 'deploy-password', exact: true }).waitFor();
    assert.equal(await page.getByLabel('Value', { exact: true }).inputValue(), '', 'the value field is cleared');
    assert.ok(!(await page.content()).includes('s3cret-value-from-the-browser'));
    await check('secrets');
  });

  it('creates an installer link whose one-line command pins the server key', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Installers', exact: true }).click();
    await page.getByRole('combobox', { name: 'Group' }).first().selectOption({ label: 'My Organization/Web servers' });
    await page.getByRole('button', { name: 'Create installer link' }).click();
    const link = page.getByLabel('Installer link', { exact: true });
    await link.waitFor();
    assert.match(await link.innerText(), new RegExp(`^${t.server.url.replace(/[.]/g, '\\.')}/install/`));
    await page.getByText(/--pinnedpubkey/).first().waitFor();
    await check('installers');
  });

  it('starts a push installation and shows the outcome of each host as it ends', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Push installation', exact: true }).click();
    await page.getByRole('combobox', { name: 'Enrol into group' }).selectOption({ label: 'My Organization/Web servers' });
    // Port 1 on this machine refuses connections: the host ends UNREACHABLE within seconds.
    await page.getByLabel('Hosts', { exact: true }).fill('127.0.0.1:1');
    await page.getByLabel('Username', { exact: true }).fill('root');
    await page.getByLabel('Password', { exact: true }).fill('not-used-anywhere');
    await check('push');
    await page.getByRole('button', { name: 'Start push installation' }).click();
    await page.getByRole('heading', { level: 1, name: /Push installation/ }).waitFor();
    await page.getByText('UNREACHABLE').first().waitFor({ timeout: 30_000 });
    assert.ok(!(await page.content()).includes('not-used-anywhere'), 'the password is not shown back');
    await check('push-job');
  });

  it('runs the default server task and watches its run live, then creates a server task from the form', async () => {
    const { page } = b;
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Server tasks' }).click();
    await page.getByRole('heading', { name: 'Server tasks', level: 1 }).waitFor();
    await check('server-tasks');
    await page.getByRole('link', { name: 'Database maintenance', exact: true }).click();
    await page.getByRole('heading', { name: 'Database maintenance', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Run now' }).click();
    const history = page.getByRole('region', { name: 'Run history' });
    await history.getByText('Succeeded', { exact: true }).waitFor({ timeout: 30_000 });
    // A run started elsewhere (the API) shows up through the live topic alone, well before the 15 s fallback refresh.
    assert.equal((await t.api('POST', `/api/v1${new URL(page.url()).pathname}/run`)).status, 202);
    await history.getByText('Succeeded', { exact: true }).nth(1).waitFor({ timeout: 10_000 });
    await history.getByRole('button', { name: /^Details of the run/ }).first().click();
    const run = history.getByRole('region', { name: /^Run / });
    await run.getByText(/^removed \d+ events and \d+ runs/).waitFor();
    assert.match(await run.getByLabel('Result').innerText(), /"sizeAfterBytes"/);
    await check('server-task-details');
    await nav.getByRole('link', { name: 'Server tasks' }).click();
    await page.getByRole('link', { name: 'New server task' }).click();
    await page.getByRole('radio', { name: 'Database maintenance' }).check();
    await page.getByLabel('Name', { exact: true }).fill('Console: nightly maintenance');
    await page.getByLabel('Runs', { exact: true }).selectOption('daily');
    await page.getByLabel('Time', { exact: true }).fill('02:15');
    await check('server-task-new');
    await page.getByRole('button', { name: 'Save server task' }).click();
    await page.getByRole('heading', { name: 'Console: nightly maintenance', level: 1 }).waitFor();
    await page.getByRole('region', { name: 'Properties' }).getByText('daily at 02:15').waitFor();
    await page.getByRole('region', { name: 'Status' }).getByText('never run').waitFor();
  });

  it('shows the repository, deployments and account pages', async () => {
    const { page } = b;
    for (const [link, heading, shot] of [
      ['Repository', /Repository/, 'repository'],
      ['Deployments', /Deployments/, 'deployments'],
    ] as const) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await check(shot);
    }
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'admin', exact: true }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await check('account');
  });

  it('works at phone width: a menu button opens the navigation, pages do not scroll sideways', async () => {
    const { page } = b;
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto('/tasks');
    const nav = page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.isVisible(), false, 'the navigation is folded away');
    await page.getByRole('button', { name: 'Menu' }).click();
    await nav.getByRole('link', { name: 'Dashboard' }).waitFor();
    await check('phone-menu');
    await nav.getByRole('link', { name: 'Tasks', exact: true }).click();
    await page.getByRole('heading', { name: 'Tasks', level: 1 }).waitFor();
    await check('phone-tasks');
    await page.goto('/devices');
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await check('phone-devices');
    await page.goto('/server-tasks');
    await page.getByRole('link', { name: 'Database maintenance', exact: true }).waitFor();
    await check('phone-server-tasks');
    await page.getByRole('link', { name: 'Database maintenance', exact: true }).click();
    await page.getByRole('region', { name: 'Run history' }).getByRole('button', { name: /^Details of the run/ }).first().click();
    await check('phone-server-task-details');
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('left no errors in the browser console', () => {
    assert.deepEqual(b.problems, []);
  });
});
