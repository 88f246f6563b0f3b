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
import { spawnAgent, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { buildConsole, checkPage, chromiumSkip, openBrowser, type TestBrowser } from './browser.ts';
import { enrolRaw } from '../../server/test/support/raw-agent.ts';

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

    // Every figure is a link to the list behind it: the agent version of the two agents opens the device list filtered on it.
    const versions = page.getByRole('region', { name: 'Agent versions' });
    const versionLink = versions.getByRole('link', { name: /: 2 devices$/ });
    await versionLink.waitFor();
    const version = (await versionLink.innerText()).trim();
    await versionLink.click();
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).searchParams.get('agent'), version);
    await page.getByRole('link', { name: 'web-1', exact: true }).waitFor();
    await page.goBack();
    // Not seen: none of the two; the figure links to the device list's "not seen for" filter.
    const notSeen = page.getByRole('region', { name: 'Devices not seen' });
    await notSeen.getByRole('link', { name: '0', exact: true }).waitFor();
    assert.equal(await notSeen.getByRole('link', { name: '0', exact: true }).getAttribute('href'), '/devices?seen=notfor%3A7');
    // A trend's day is a link to that day's events; the table below the bars is its text alternative.
    const trend = page.getByRole('region', { name: 'Trend: devices enrolled per day' });
    await trend.getByRole('list', { name: /one bar per day/ }).getByRole('link').first().waitFor();
    assert.equal(await trend.getByRole('list', { name: /one bar per day/ }).getByRole('link').count(), 7);
    await trend.getByRole('button', { name: '30 days' }).click();
    await waitFor(async () => (await trend.getByRole('list', { name: /one bar per day/ }).getByRole('link').count()) === 30, { what: 'the 30-day trend' });
    await trend.getByText('Figures per day').click();
    await trend.getByRole('table').getByRole('link', { name: '2', exact: true }).waitFor();
    // Today's figure is the device list of those enrolled today.
    await trend.getByRole('table').getByRole('link', { name: '2', exact: true }).click();
    await page.getByText('2 devices match').waitFor();
    await page.getByRole('status').filter({ hasText: /^Enrolled from/ }).waitFor();
    await page.goBack();
    await page.getByRole('button', { name: 'Customize' }).waitFor();

    // Customize: hide one monitor and move another to the top, by keyboard; kept across a reload.
    await page.getByRole('button', { name: 'Customize' }).click();
    const dialog = page.getByRole('dialog', { name: 'Customize the dashboard' });
    await dialog.getByRole('checkbox', { name: 'Recent failures' }).uncheck();
    const up = dialog.getByRole('button', { name: 'Move Operating systems up' });
    for (let i = 0; i < 5; i++) {
      await up.focus();
      await page.keyboard.press('Enter');
    }
    assert.equal(await up.isDisabled(), true, 'at the top');
    await check('dashboard-customize');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const titles = async () => page.locator('main section.card > header h2').allInnerTexts();
    await waitFor(async () => (await titles())[0] === 'Operating systems', { what: 'the moved monitor first' });
    await page.reload();
    await page.getByRole('region', { name: 'Operating systems' }).waitFor();
    const after = await titles();
    assert.equal(after[0], 'Operating systems');
    assert.ok(!after.includes('Recent failures'), after.join(', '));
    assert.ok(after.includes('Devices'));
    // At phone width the dashboard does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 800 });
    await check('phone-dashboard');
    await page.setViewportSize({ width: 1366, height: 900 });
    // Back to the default layout.
    await page.getByRole('button', { name: 'Customize' }).click();
    await dialog.getByRole('button', { name: 'Reset to default' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('region', { name: 'Recent failures' }).waitFor();
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

  it('sorts the device list by a column, keeps the chosen columns, tags a selection in bulk and shows group counts and statuses', async () => {
    const { page } = b;
    await page.goto(`/devices?group=${groupId}`);
    const tree = page.getByRole('navigation', { name: 'Group tree' });
    const list = page.getByRole('region', { name: 'Devices', exact: true }).last();
    await list.getByText('2 devices', { exact: true }).waitFor();
    // The group's count in the tree, and its status with the reason in its card (nothing wrong yet).
    await tree.locator('.tree-row').filter({ has: page.getByRole('button', { name: 'Web servers', exact: true }) }).getByTitle(/^2 devices with its subgroups \(2 in the group itself\)/).waitFor();
    await page.getByRole('region', { name: 'My Organization/Web servers', exact: true }).getByText('OK', { exact: true }).waitFor();
    // Collapsing the root hides its subgroups; expanding shows them again.
    await tree.getByRole('button', { name: 'Collapse' }).first().click();
    assert.equal(await tree.getByRole('button', { name: 'Web servers', exact: true }).count(), 0);
    await tree.getByRole('button', { name: 'Expand' }).first().click();
    await tree.getByRole('button', { name: 'Web servers', exact: true }).waitFor();
    // Sorted by name, then descending from its header.
    const names = () => list.locator('tbody tr td:nth-child(2) a').allInnerTexts();
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify(['web-1', 'web-2']), { what: 'sorted by name' });
    await list.getByRole('button', { name: /^Name/ }).click();
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify(['web-2', 'web-1']), { what: 'sorted by name, descending' });
    assert.equal(await list.getByRole('columnheader', { name: /^Name/ }).getAttribute('aria-sort'), 'descending');
    // A column hidden stays hidden after a reload (kept in the browser).
    await list.getByText('Columns', { exact: true }).click();
    await list.getByRole('checkbox', { name: 'Agent version', exact: true }).uncheck();
    assert.equal(await list.getByRole('columnheader', { name: /Agent version/ }).count(), 0);
    await page.reload();
    await list.getByText('2 devices', { exact: true }).waitFor();
    assert.equal(await list.getByRole('columnheader', { name: /Agent version/ }).count(), 0);
    // Everything on the page selected, tagged in bulk after a confirmation that says how many.
    await list.getByRole('checkbox', { name: 'Select all devices on this page' }).check();
    await list.getByLabel('With the selection').selectOption('addTags');
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Add these tags to 2 devices?').waitFor();
    await dialog.getByLabel('Tags').fill('browser-bulk');
    await check('devices-bulk-dialog');
    await dialog.getByRole('button', { name: 'Tag 2 devices' }).click();
    await page.getByText('2 devices done').waitFor();
    assert.equal((await t.api<{ total: number }>('GET', '/api/v1/devices?tag=browser-bulk')).body.total, 2);
    await list.getByRole('row').filter({ has: page.getByRole('link', { name: 'web-1', exact: true }) }).getByText('browser-bulk').waitFor();
    await check('devices-sorted');
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

  it('imports tasks from an export file and links to what it created', async () => {
    const { page } = b;
    const listed = (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/tasks?limit=1000')).body.items;
    const hello = listed.find((x) => x.name === 'Console: say hello')!;
    const doc = (await t.api<{ tasks: { name: string }[] }>('GET', `/api/v1/tasks/export?ids=${hello.id}`)).body;
    doc.tasks[0]!.name = 'Console: imported hello';
    await page.goto('/tasks');
    await page.getByLabel('Task export file to import').setInputFiles({ name: 'tasks.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(doc)) });
    const notice = page.locator('.import-result');
    await notice.getByText('Imported 1 task').waitFor();
    await notice.getByRole('link', { name: 'Console: imported hello' }).click();
    await page.getByRole('heading', { name: 'Console: imported hello', level: 1 }).waitFor();
  });

  it('pages a task’s results, filters them by state and runs again on the failed devices only', async () => {
    const { page } = b;
    // 105 devices (raw enrolments: no agent) and a run-now: 105 results, more than a page.
    const many = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Many' })).body.id;
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: many, maxUses: 105 });
    for (let i = 0; i < 105; i++) assert.equal((await enrolRaw(t, tok.body.token, `many-${String(i).padStart(3, '0')}`)).status, 201);
    const big = (await t.api<{ id: string }>('POST', '/api/v1/tasks', { name: 'Console: many', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: many } })).body;
    assert.equal((await t.api('POST', `/api/v1/tasks/${big.id}/run`, {})).status, 202);
    await page.goto(`/tasks/${big.id}`);
    const results = page.getByRole('region', { name: 'Results' });
    await results.getByText(/105 devices · showing 1–100/).waitFor();
    assert.equal(await results.getByRole('row').count(), 101, 'a header and one page of rows');
    await results.getByRole('button', { name: 'Next page' }).click();
    await results.getByText(/showing 101–105/).waitFor();
    await results.getByRole('link', { name: 'many-104', exact: true }).waitFor();
    await results.getByRole('button', { name: 'Previous page' }).click();
    await results.getByRole('link', { name: 'many-000', exact: true }).waitFor();
    await results.getByLabel('Device').fill('many-10');
    await results.getByText(/^5 of 105 devices/).waitFor();
    await check('task-results-paged');

    // A task that fails on both agents: the page offers to run it again on them only.
    const flaky = (await t.api<{ id: string }>('POST', '/api/v1/tasks', { name: 'Console: flaky', type: 'script', settings: { shell: 'sh', script: 'exit 3' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } })).body;
    await page.goto(`/tasks/${flaky.id}`);
    await page.getByRole('button', { name: 'Run now' }).click();
    const again = page.getByRole('button', { name: 'Run again on 2 failed devices' });
    await again.waitFor({ timeout: 30_000 });
    await results.getByLabel('State').selectOption('failed');
    await results.getByRole('row').filter({ hasText: 'web-1' }).getByText(/failed/i).first().waitFor();
    await again.click();
    await page.getByText('Run again on 2 devices').waitFor();
    await check('task-run-again');
  });

  it('filters the event log by picked kind, device and time, keeps the filters in the URL, shows an event, saves a selection and exports it as CSV', async () => {
    const { page } = b;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events' }).click();
    // The built-in selections come first.
    const selections = page.getByRole('list', { name: 'Saved selections' });
    await selections.getByRole('button', { name: 'Errors and warnings, last 24 hours' }).waitFor();
    await selections.getByRole('button', { name: 'Audit trail' }).click();
    await waitFor(async () => new URL(page.url()).searchParams.get('kind') === 'audit.*', { what: 'the audit trail selection in the URL' });
    await page.getByRole('button', { name: 'Clear filters' }).click();
    const kind = page.getByLabel('Kind');
    await kind.fill('run.succeeded');
    await kind.press('Enter');
    await page.getByRole('cell', { name: /Console: say hello" succeeded on "web-1"/ }).first().waitFor();
    // A device picked by name, and a relative time.
    await page.getByLabel('Device: search by name').fill('web-1');
    await page.getByRole('list', { name: 'Matching devices' }).getByRole('button', { name: /^web-1/ }).click();
    await page.getByLabel('Time').selectOption('24h');
    await waitFor(async () => {
      const q = new URL(page.url()).searchParams;
      return q.get('kind') === 'run.succeeded' && q.get('deviceId') === agents[0]!.deviceId && q.get('range') === '24h';
    }, { what: 'the filters in the URL' });
    await page.getByRole('link', { name: 'web-1', exact: true }).first().waitFor();
    // Reload and back keep them.
    await page.reload();
    await page.getByRole('cell', { name: /Console: say hello" succeeded on "web-1"/ }).first().waitFor();
    assert.equal(await page.getByLabel('Kind').inputValue(), 'run.succeeded');
    await check('events');
    // An event's detail: every field, its data, links.
    await page.getByRole('button', { name: / details of event / }).first().click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('run.succeeded', { exact: true }).waitFor();
    await dialog.getByRole('link', { name: 'Console: say hello' }).waitFor();
    await check('event-detail');
    await dialog.getByRole('button', { name: 'Close' }).click();
    // Saved under a name, listed, applied, deleted.
    await page.getByRole('button', { name: 'Save the current filters…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('web-1 successes');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await selections.getByRole('button', { name: 'web-1 successes', exact: true }).waitFor();
    const saved = (await t.api<{ items: { name: string; query: Record<string, string> }[] }>('GET', '/api/v1/saved-selections?page=events')).body.items;
    assert.deepEqual(saved.find((x) => x.name === 'web-1 successes')?.query, { range: '24h', kind: 'run.succeeded', deviceId: agents[0]!.deviceId });
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await selections.getByRole('button', { name: 'web-1 successes', exact: true }).click();
    await waitFor(async () => new URL(page.url()).searchParams.get('deviceId') === agents[0]!.deviceId, { what: 'the saved selection applied' });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const csv = await readFile((await download.path())!, 'utf8');
    assert.match(csv.split('\n')[0]!, /^id,time,severity,kind,message/);
    assert.match(csv, /run\.succeeded/);
    assert.doesNotMatch(csv, /agent\.connected/, 'the export has the filter applied');
    await selections.getByRole('button', { name: 'Delete the selection web-1 successes' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await waitFor(async () => (await selections.getByRole('button', { name: 'web-1 successes', exact: true }).count()) === 0, { what: 'the selection deleted' });
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
    await history.getByRole('button', { name: /^Details: the run/ }).first().click();
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
    // A policy on the agents' group: the list shows its groups and compliance from one paged read, none per row.
    const policy = (await t.api<{ id: string }>('POST', '/api/v1/policies', { name: 'Console web policy', product: 'garrison', settings: { logKeepFiles: 4 } })).body;
    assert.equal((await t.api('PUT', `/api/v1/groups/${groupId}/policies/garrison`, { policyId: policy.id, blockInheritance: false })).status, 200);
    // And on the 105 raw devices of the results test (when it ran): more devices than a page of compliance.
    const many = (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/groups?limit=1000')).body.items.find((g) => g.name === 'Many');
    if (many) assert.equal((await t.api('PUT', `/api/v1/groups/${many.id}/policies/garrison`, { policyId: policy.id, blockInheritance: false })).status, 200);
    const reached = many ? 107 : 2;
    const policyReads: string[] = [];
    const onRequest = (r: { url(): string }) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/api/v1/policies')) policyReads.push(u.pathname + u.search);
    };
    page.on('request', onRequest);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Policies', exact: true }).click();
    await page.getByRole('heading', { name: 'Policies', level: 1 }).waitFor();
    await page.getByRole('row', { name: /Console web policy/ }).getByText(/Web servers/).waitFor();
    await check('policies');
    page.off('request', onRequest);
    assert.ok(policyReads.some((r) => r.startsWith('/api/v1/policies?')), policyReads.join(' '));
    assert.deepEqual(policyReads.filter((r) => /^\/api\/v1\/policies\/[^?]/.test(r)), [], 'no read per policy row');
    // Its compliance: the counts of each state over all its devices, the page of devices.
    await page.getByRole('link', { name: 'Console web policy', exact: true }).click();
    await page.getByRole('heading', { name: 'Console web policy', level: 1 }).waitFor();
    await page.getByRole('tab', { name: 'Compliance' }).click();
    await page.getByRole('option', { name: `All states (${reached})` }).waitFor({ state: 'attached' });
    if (many) {
      await page.getByText(`${reached} devices · showing 1–50`).waitFor();
      await check('policy-compliance-paged');
      await page.getByRole('navigation', { name: 'Compliance pages' }).getByRole('button', { name: 'Next page' }).click();
      await page.getByText(`${reached} devices · showing 51–100`).waitFor();
      await page.getByRole('searchbox', { name: 'Device' }).fill('web-');
      await page.getByText(`2 of ${reached} devices · showing 1–2`).waitFor();
    }
    await page.getByRole('link', { name: 'web-1', exact: true }).waitFor();
    await check('policy-compliance');
    for (const [link, heading, shot] of [
      ['Repository', /Repository/, 'repository'],
      ['Deployments', /Deployments/, 'deployments'],
    ] as const) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await check(shot);
    }
    await page.getByRole('tab', { name: 'Compliance' }).click();
    await page.getByRole('region', { name: 'By product' }).waitFor();
    await check('deployment-compliance');
    // The same pages at phone width: no sideways scroll (the tables scroll inside their wrappers).
    await page.setViewportSize({ width: 390, height: 800 });
    for (const [path, heading, shot] of [
      ['/policies', 'Policies', 'phone-policies'],
      [`/policies/${policy.id}`, 'Console web policy', 'phone-policy'],
      ['/repository', 'Repository', 'phone-repository'],
      ['/deployments', 'Deployments', 'phone-deployments'],
    ] as const) {
      await page.goto(path);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await check(shot);
    }
    await page.getByRole('tab', { name: 'Compliance' }).click();
    await page.getByRole('region', { name: 'By product' }).waitFor();
    await check('phone-deployment-compliance');
    await page.setViewportSize({ width: 1366, height: 900 });
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'admin', exact: true }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await check('account');
  });

  it('works at phone width: a menu button opens the navigation, no page scrolls sideways', async () => {
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
    await page.getByRole('region', { name: 'Run history' }).getByRole('button', { name: /^Details: the run/ }).first().click();
    await check('phone-server-task-details');
    // Every other page, including a device's and a task's, at the same width.
    const someTask = (await t.api<{ items: { id: string }[] }>('GET', '/api/v1/tasks?limit=1')).body.items[0]!.id;
    for (const url of ['/', `/devices/${agents[0]!.deviceId}`, `/tasks/${someTask}`, '/tasks/new', '/events', '/notifications', '/policies', '/repository', '/deployments', '/installers', '/push', '/secrets', '/administrators', '/roles', '/account']) {
      await page.goto(url);
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      await check(`phone${url.replace(/\/[0-9a-f-]{36}/, '-one').replace(/\//g, '-')}`.replace(/-$/, '-dashboard'));
    }
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('left no errors in the browser console', () => {
    assert.deepEqual(b.problems, []);
  });
});
