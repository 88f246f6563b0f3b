/**
 * Report distribution (a server task type): real agents give real task results and real
 * deployment states (one product installed, one whose install fails with exit code 7); the
 * reports go through a real SMTP server (smtp-server, STARTTLS with the test server's own
 * certificate, password login) and into a real folder. The received message is taken apart
 * as a mail client would: recipients, subject, the HTML body with its chart tables and
 * figures, the text alternative, and the CSV attachments row by row.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import type { DeviceProductState, Page, PackageManifest, ServerTask, ServerTaskRun, Task, TaskProgress } from '@garrison/protocol';
import { DEPLOYMENT_TASK_TYPE, checker, finalServerTaskRunStates } from '@garrison/protocol';
import { systemActor } from '../src/services/actor.ts';
import { builtinServerTaskTypes } from '../src/server-tasks/types.ts';
import { systemClock, type Clock } from '../src/clock.ts';
import { reportTaskType, type ReportSettings } from '../src/server-tasks/report.ts';
import { csvCell, escapeHtml } from '../src/server-tasks/report-render.ts';
import type { ServerTaskResult } from '../src/server-tasks/server-task.ts';
import { dbKinds, serverTaskContext, startAgent, tempDir, useTestServer, waitFor } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

/** Registered by types.ts once the list names it; until then, given to the test server. */
const withReportType = builtinServerTaskTypes.some((x) => x.type === 'report') ? {} : { serverTaskTypes: [reportTaskType] };
const USER = 'reporter';
const PASSWORD = 'S3cret-Pa55-w0rd!';

interface Received {
  rcpt: string[];
  from: string;
  raw: string;
}
interface Part {
  headers: Record<string, string>;
  body: string;
  parts: Part[];
}

/** Enough MIME for the test: headers (unfolded), multipart bodies, base64 and quoted-printable. */
function parseMime(raw: string): Part {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  const body = raw.slice(split + 4);
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const type = headers['content-type'] ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (type.startsWith('multipart/') && boundary) {
    const sections = body.split(`--${boundary}`).slice(1, -1);
    return { headers, body: '', parts: sections.map((s) => parseMime(s.replace(/^\r\n/, '').replace(/\r\n$/, ''))) };
  }
  const encoding = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  const bytes =
    encoding === 'base64'
      ? Buffer.from(body.replace(/\s+/g, ''), 'base64')
      : encoding === 'quoted-printable'
        ? Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1')
        : Buffer.from(body, 'latin1');
  return { headers, body: bytes.toString('utf8'), parts: [] };
}
function leaves(p: Part): Part[] {
  return p.parts.length ? p.parts.flatMap(leaves) : [p];
}
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') (cell += '"'), i++;
      else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  if (cell || row.length) row.push(cell), rows.push(row);
  return rows;
}
/** CSV rows as objects keyed by the header row. */
function records(text: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text);
  for (const r of rows) assert.equal(r.length, header!.length, `a CSV row has ${r.length} cells, the header ${header!.length}`);
  return rows.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i]!])));
}

/** `order` puts the good product first: a deployment stops at its first failed step. */
function product(id: string, version: string, order: number, install: string): PackageManifest {
  return { product: id, name: id, version, kind: 'application', order, platforms: ['linux-*', 'darwin-*'], commands: { install: { shell: 'sh', script: install }, uninstall: { shell: 'sh', script: 'true' } } };
}

for (const kind of dbKinds) {
  describe(`report distribution (${kind.name})`, () => {
    let smtp: SMTPServer;
    // Registered first, so that it runs first: the mail server closes before the agents and the server.
    after(async () => {
      await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    });
    const t = useTestServer(kind, withReportType);
    let smtpPort: number;
    const received: Received[] = [];
    let groupId: string;
    let okTask: Task;
    let failTask: Task;
    const oddName = '=HYPERLINK("http://evil") <b>x</b>';

    /** The run context the framework would give, built by hand; `lines` collects the output. */
    const context = (clock: Clock = systemClock, signal = new AbortController().signal) => serverTaskContext(t, { clock, signal, taskId: 'report-test', taskName: 'weekly report' });
    const mail = (extra: Partial<NonNullable<ReportSettings['delivery']['email']>['smtp']> = {}): NonNullable<ReportSettings['delivery']['email']> => ({
      to: ['ops@example.com', 'boss@example.com'],
      cc: ['audit@example.com'],
      smtp: { host: '127.0.0.1', port: smtpPort, security: 'starttls', user: USER, password: PASSWORD, from: 'Garrison <garrison@example.com>', rejectUnauthorized: false, timeoutSeconds: 10, ...extra },
    });
    const run = (settings: ReportSettings, ctx = context()) => reportTaskType.run(settings as unknown as Record<string, unknown>, ctx);

    before(async () => {
      const api = async <T>(method: string, url: string, body?: unknown) => {
        const r = await t.api<T>(method, url, body);
        assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
      };
      groupId = (await api<{ id: string }>('POST', '/api/v1/groups', { name: 'Reports' })).id;
      const branch = (await api<{ id: string }>('POST', '/api/v1/groups', { name: 'Branch', parentId: groupId })).id;
      const upload = async (m: PackageManifest) => {
        const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(m)) });
        assert.equal(res.status, 201, await res.text());
      };
      await upload(product('secapp', '1.0', 10, 'true'));
      await upload(product('brokenapp', '2.0', 20, 'echo "disk full" >&2; exit 7'));
      await api('PUT', `/api/v1/groups/${groupId}/deployments/secapp`, {});
      const [a, b] = await Promise.all([startAgent(t, groupId, 'report-a'), startAgent(t, branch, 'report-b')]);
      t.track(a);
      t.track(b);
      const output = () => a.output() + b.output();
      const states = async () => (await api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${groupId}`)).items;
      const reported = async (id: string) => (await api<{ products: { id: string }[] }>('GET', `/api/v1/devices/${id}`)).products.some((p) => p.id === 'secapp');
      // Installed, and reported at the check-in that follows the install.
      await waitFor(async () => (await states()).filter((x) => x.state === 'compliant').length === 2 && (await reported(a.deviceId)) && (await reported(b.deviceId)), { what: 'secapp installed on both agents', timeoutMs: 20_000, output });
      await api('PATCH', `/api/v1/devices/${b.deviceId}`, { name: oddName });
      const task = (name: string, script: string) => api<Task>('POST', '/api/v1/tasks', { name, type: 'script', settings: { shell: 'sh', script }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } });
      okTask = await task('nightly check', 'echo ok');
      failTask = await task('nightly <cleanup>', 'echo "no space" >&2; exit 5');
      for (const x of [okTask, failTask]) await api('POST', `/api/v1/tasks/${x.id}/run`, {});
      const finished = (id: string) => waitFor(async () => (await api<TaskProgress>('GET', `/api/v1/tasks/${id}/progress`)).finished, { what: `task ${id} finished`, output });
      for (const x of [okTask, failTask]) await finished(x.id);
      // Assigned last, the failing product is tried once per device (at the check-in the
      // assignment asks for) and then stays failed: the inventory it would change never changes.
      await api('PUT', `/api/v1/groups/${groupId}/deployments/brokenapp`, {});
      await waitFor(async () => (await states()).filter((x) => x.product === 'brokenapp' && x.state === 'failed').length === 2, { what: 'brokenapp failed on both agents', timeoutMs: 20_000, output });
      await finished(t.server.services.catalog.tasks.find((x) => x.type === DEPLOYMENT_TASK_TYPE)!.id);

      smtp = new SMTPServer({
        key: t.server.tls!.key,
        cert: t.server.tls!.cert,
        authMethods: ['PLAIN', 'LOGIN'],
        logger: false,
        onAuth(auth, _session, cb) {
          if (auth.username === USER && auth.password === PASSWORD) cb(null, { user: USER });
          else cb(new Error('Invalid username or password'));
        },
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            received.push({ rcpt: session.envelope.rcptTo.map((r) => r.address), from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', raw: Buffer.concat(chunks).toString('latin1') });
            cb(null);
          });
        },
      });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
      smtpPort = (smtp.server.address() as AddressInfo).port;
    });

    it('mails the three reports over STARTTLS: HTML body with chart tables and figures, a text alternative, CSV attachments', async () => {
      const ctx = context();
      const result = await run({ reports: ['task-results', 'deployment-compliance', 'device-inventory'], groupId, delivery: { email: mail() } }, ctx);
      assert.equal(result.warnings, undefined, JSON.stringify(result.warnings));
      assert.equal(result.data?.recipients, 3);
      assert.match(result.summary, /3 reports .*sent to 3 recipients/);
      assert.equal(received.length, 1);
      const msg = received[0]!;
      assert.deepEqual(msg.rcpt.sort(), ['audit@example.com', 'boss@example.com', 'ops@example.com']);
      assert.equal(msg.from, 'garrison@example.com');
      const top = parseMime(msg.raw);
      assert.equal(top.headers.subject, `Garrison report: weekly report, ${new Date().toISOString().slice(0, 10)}`);
      const parts = leaves(top);
      const html = parts.find((p) => p.headers['content-type']?.startsWith('text/html') && !p.headers['content-disposition'])!.body;
      const text = parts.find((p) => p.headers['content-type']?.startsWith('text/plain'))!.body;
      const attachment = (prefix: string) => {
        const p = parts.find((x) => new RegExp(`filename="?${prefix}-\\d{8}-\\d{6}\\.`).test(x.headers['content-disposition'] ?? ''));
        assert.ok(p, `attachment ${prefix}`);
        return p.body;
      };

      // The HTML: a whole document, inline styles only, nothing a mail client strips or fetches.
      assert.match(html, /^<!DOCTYPE html>/);
      assert.doesNotMatch(html, /<style|<script|<svg|<img|<link/i);
      for (const chart of ['task-outcomes', 'group-outcomes', 'compliance', 'os', 'agent-versions']) assert.match(html, new RegExp(`data-chart="${chart}"`), chart);
      // The failing task's bar is all red (2 of 2 failed), the other all green, with the figures in words.
      assert.match(html, /nightly &lt;cleanup&gt;<\/td><td[^>]*><table[^>]*><tr><td width="100%" bgcolor="#c62828"/);
      assert.match(html, /nightly check<\/td><td[^>]*><table[^>]*><tr><td width="100%" bgcolor="#2e7d32"/);
      assert.match(html, /2 runs: 2 failed/);
      // Compliance: secapp up to date on both, brokenapp failed on both with exit code 7 (half/half on a 50% bar would be wrong).
      assert.match(html, /secapp<\/td><td[^>]*><table[^>]*><tr><td width="100%" bgcolor="#2e7d32"/);
      assert.match(html, /2 devices: 2 failed/);
      assert.match(html, /<td[^>]*>brokenapp<\/td><td[^>]*>exit code 7<\/td><td[^>]*>2<\/td>/);
      // Inventory, with the odd device name escaped, never as markup.
      assert.match(html, /2 devices in My Organization\/Reports: 2 online/);
      assert.ok(html.includes(escapeHtml(oddName)));
      assert.ok(!html.includes('<b>x</b>'));
      assert.match(text, /TASK RESULTS/);
      assert.match(text, /nightly <cleanup>: 2 runs, 2 failed/);
      assert.match(text, /brokenapp: 2 devices, 2 failed/);

      const runs = records(attachment('task-results'));
      const mine = runs.filter((r) => r.task_id === failTask.id || r.task_id === okTask.id);
      assert.equal(mine.length, 4);
      for (const r of mine.filter((x) => x.task_id === failTask.id)) assert.deepEqual([r.task, r.state, r.exit_code], ['nightly <cleanup>', 'failed', '5']);
      assert.deepEqual(mine.filter((x) => x.task_id === okTask.id).map((r) => r.state), ['succeeded', 'succeeded']);
      assert.deepEqual(new Set(mine.map((r) => r.group)), new Set(['My Organization/Reports', 'My Organization/Reports/Branch']));
      // The formula guard: the device name that would be a formula in a spreadsheet starts with an apostrophe.
      assert.ok(mine.some((r) => r.device === `'${oddName}`));
      const compliance = records(attachment('deployment-compliance'));
      assert.equal(compliance.length, 4);
      assert.deepEqual(compliance.filter((r) => r.product === 'brokenapp').map((r) => [r.compliance, r.exit_code, r.target_version]), [['failed', '7', '2.0'], ['failed', '7', '2.0']]);
      const inventory = records(attachment('device-inventory'));
      assert.deepEqual(inventory.map((r) => r.device).sort(), [`'${oddName}`, 'report-a'].sort());
      assert.ok(inventory.every((r) => r.online === 'true' && /secapp 1\.0/.test(r.products)));
      assert.match(attachment('report'), /data-chart="task-outcomes"/);
      assert.equal(result.data?.rows && (result.data.rows as Record<string, number>)['device-inventory'], 2);

      // The password is nowhere a person or a program reads.
      for (const where of [JSON.stringify(result), ...ctx.lines]) assert.ok(!where.includes(PASSWORD) && !where.includes(Buffer.from(PASSWORD).toString('base64')));
      assert.ok(ctx.lines.some((l) => /^task-results: .*task-results-\d{8}-\d{6}\.csv \d+ rows/.test(l)), ctx.lines.join('\n'));
      assert.ok(ctx.lines.some((l) => /^sent .* to 3 recipients$/.test(l)), ctx.lines.join('\n'));
    });

    it('fails with a clear error on a wrong password or an untrusted certificate, and never shows the password', async () => {
      const wrong = 'not-the-password-42';
      const ctx = context();
      await assert.rejects(run({ reports: ['device-inventory'], groupId, delivery: { email: mail({ password: wrong }) } }, ctx), (err: Error) => {
        assert.match(err.message, /the SMTP server 127\.0\.0\.1:\d+ refused the login of user "reporter" .*535.*check smtp\.user and the secret/);
        assert.ok(!err.message.includes(wrong));
        return true;
      });
      assert.ok(ctx.lines.every((l) => !l.includes(wrong)));
      // Verification is on unless switched off: the test server's certificate is from its own CA.
      await assert.rejects(run({ reports: ['device-inventory'], groupId, delivery: { email: mail({ rejectUnauthorized: undefined }) } }), /TLS certificate of the SMTP server .* is not trusted.*rejectUnauthorized/);
      // A port with nothing listening.
      await assert.rejects(run({ reports: ['device-inventory'], groupId, delivery: { email: mail({ port: 1 }) } }), /could not connect to the SMTP server 127\.0\.0\.1:1 .*ECONNREFUSED/);
    });

    it('writes to a folder atomically with mode 0640 and keeps the files of the newest runs only', async () => {
      const dir = path.join(await tempDir(), 'reports');
      const base = Date.now();
      const results: ServerTaskResult[] = [];
      for (let i = 0; i < 3; i++) {
        const clock = { now: () => new Date(base + i * 60_000) };
        results.push(await run({ reports: ['task-results', 'device-inventory'], groupId, delivery: { folder: { path: dir, keep: 2 } } }, context(clock)));
        if (i === 0) await writeFile(path.join(dir, 'notes.txt'), 'mine');
      }
      const stampOf = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
      const files = (await readdir(dir)).sort();
      const expected = [1, 2].flatMap((i) => ['device-inventory', 'report', 'task-results'].map((k) => `${k}-${stampOf(base + i * 60_000)}.${k === 'report' ? 'html' : 'csv'}`));
      assert.deepEqual(files, [...expected, 'notes.txt'].sort());
      for (const f of expected) assert.equal((await stat(path.join(dir, f))).mode & 0o777, 0o640, f);
      assert.equal(results[2]!.data?.pruned, 3);
      assert.match(results[2]!.summary, /wrote 3 files to /);
      const html = await readFile(path.join(dir, `report-${stampOf(base + 2 * 60_000)}.html`), 'utf8');
      assert.match(html, /Task results/);
    });

    it('restricts task results to the chosen tasks and the period', async () => {
      const dir = await tempDir();
      const read = async () => {
        const f = (await readdir(dir)).find((x) => x.startsWith('task-results-'))!;
        return records(await readFile(path.join(dir, f), 'utf8'));
      };
      await run({ reports: ['task-results'], groupId, taskIds: [failTask.id], formats: ['csv'], delivery: { folder: { path: dir, keep: 1 } } });
      assert.deepEqual((await read()).map((r) => [r.task_id, r.state]), [[failTask.id, 'failed'], [failTask.id, 'failed']]);
      assert.deepEqual(await readdir(dir).then((l) => l.filter((f) => f.endsWith('.html'))), []);
      // An hour-long period seen from two hours later holds none of these runs.
      const later = { now: () => new Date(Date.now() + 2 * 3600_000) };
      const r = await run({ reports: ['task-results'], groupId, taskIds: [failTask.id], periodHours: 1, formats: ['csv'], delivery: { folder: { path: dir, keep: 1 } } }, context(later));
      assert.deepEqual(await read(), []);
      assert.deepEqual((r.data?.rows as Record<string, number>)['task-results'], 0);
    });

    it('stops between steps when the run is stopped', async () => {
      const ac = new AbortController();
      ac.abort(new Error('stopped by an administrator'));
      await assert.rejects(run({ reports: ['device-inventory'], groupId, delivery: { folder: { path: await tempDir() } } }, context(systemClock, ac.signal)), /stopped by an administrator/);
    });

    it('runs through the server-task API with the SMTP password as a secret; a wrong one fails the run (or warns when a folder got the files)', async () => {
      const types = await t.api<{ type: string }[]>('GET', '/api/v1/server-task-types');
      assert.ok(types.body.some((x) => x.type === 'report'));
      await t.server.services.secrets.put(systemActor, 'smtp-pass', PASSWORD);
      await t.server.services.secrets.put(systemActor, 'smtp-wrong', 'wrong-password-0');
      const folder = path.join(await tempDir(), 'out');
      const settings = (secret: string) => ({ reports: ['deployment-compliance', 'device-inventory'], groupId, delivery: { email: { ...mail(), smtp: { ...mail().smtp, password: { $secret: secret } } }, folder: { path: folder, keep: 2 } } });
      const create = (name: string, s: unknown) => t.api<ServerTask & { error?: { code: string; message: string } }>('POST', '/api/v1/server-tasks', { name, type: 'report', settings: s, schedule: { triggers: [{ type: 'on-demand' }] } });
      const literal = await create('literal', { ...settings('x'), delivery: { email: { ...mail() } } });
      assert.equal(literal.body.error?.code, 'SECRET_LITERAL_REFUSED');
      const invalid = await create('invalid', { ...settings('smtp-pass'), groupId: 'nope' });
      assert.equal(invalid.body.error?.code, 'SETTINGS_INVALID');
      assert.match(invalid.body.error!.message, /there is no group "nope"/);
      const runTask = async (id: string) => {
        const started = await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${id}/run`, {});
        assert.equal(started.status, 202, JSON.stringify(started.body));
        return waitFor(async () => {
          const r = (await t.api<Page<ServerTaskRun>>('GET', `/api/v1/server-tasks/${id}/runs`)).body.items[0];
          return r && finalServerTaskRunStates.includes(r.state) ? r : null;
        }, { what: 'the report run to end' });
      };
      const good = await create('weekly report', settings('smtp-pass'));
      assert.equal(good.status, 201, JSON.stringify(good.body));
      const before = received.length;
      const run = await runTask(good.body.id);
      assert.equal(run.state, 'succeeded', `${run.summary}\n${run.outputTail}`);
      assert.match(run.summary ?? '', /2 reports .*wrote 3 files to .*sent to 3 recipients/);
      assert.equal(run.result?.recipients, 3);
      assert.equal((await readdir(folder)).length, 3);
      assert.equal(received.length, before + 1);
      assert.match(parseMime(received.at(-1)!.raw).headers.subject ?? '', /^Garrison report: weekly report, /);
      assert.ok(!JSON.stringify(run).includes(PASSWORD));

      const mailOnly = (secret: string) => ({ ...settings(secret), delivery: { email: settings(secret).delivery.email } });
      const bad = await create('report with a wrong password', mailOnly('smtp-wrong'));
      const failed = await runTask(bad.body.id);
      assert.equal(failed.state, 'failed', `${failed.summary}\n${failed.outputTail}`);
      assert.match(failed.summary ?? '', /refused the login of user "reporter"/);
      assert.ok(!JSON.stringify(failed).includes('wrong-password-0'));
      // With a folder besides, the files are written and the mail's failure is a warning.
      const half = await create('report to a folder and a wrong password', { ...settings('smtp-wrong'), delivery: { ...settings('smtp-wrong').delivery, folder: { path: path.join(await tempDir(), 'half') } } });
      const warned = await runTask(half.body.id);
      assert.equal(warned.state, 'succeeded_with_warnings', `${warned.summary}\n${warned.outputTail}`);
      assert.match(warned.summary ?? '', /wrote 3 files/);
    });

    it('validates what the schema cannot: addresses, delivery, group, tasks, paths, a password without TLS', async () => {
      const env = context();
      const schema = checker(reportTaskType.settingsSchema);
      const valid = { reports: ['task-results'], delivery: { email: { ...mail(), smtp: { ...mail().smtp, password: { $secret: 'smtp-pass' } } } } };
      assert.ok(schema.check(valid), JSON.stringify(schema.issues(valid)));
      assert.deepEqual(await reportTaskType.validate!(valid, env), []);
      assert.ok(!schema.check({ ...valid, delivery: { email: { ...valid.delivery.email, smtp: { ...valid.delivery.email.smtp, password: 'literal' } } } }), 'a literal password is refused by the schema');
      assert.ok(!schema.check({ ...valid, reports: ['sales'] }));
      assert.ok(!schema.check({ ...valid, extra: 1 }));
      const problems = await reportTaskType.validate!(
        {
          reports: ['device-inventory', 'device-inventory'],
          groupId: 'no-such-group',
          taskIds: ['no-such-task'],
          delivery: { email: { to: ['ops@example.com', 'not an address'], cc: ['x@y'], subject: 'a\r\nBcc: victim@example.com', smtp: { host: 'bad host', port: 25, security: 'none', password: { $secret: 's' }, from: 'me' } }, folder: { path: 'relative/dir' } },
        },
        env,
      );
      const all = problems.join('\n');
      for (const expect of [/device-inventory more than once/, /no group "no-such-group"/, /no task "no-such-task"/, /taskIds only applies to the task-results report/, /not e-mail addresses: "not an address"/, /smtp\.from "me"/, /subject must be one line/, /smtp\.host "bad host"/, /password is given without smtp\.user/, /"none" would send the password unencrypted/, /absolute path/]) {
        assert.match(all, expect);
      }
      assert.ok(!all.includes('x@y'), 'a host without a dot (x@y) is a valid address');
      assert.deepEqual(await reportTaskType.validate!({ reports: ['device-inventory'], delivery: {} }, env), ['delivery needs email, folder or both']);
    });
  });
}

describe('report CSV and HTML escaping', () => {
  it('quotes by RFC 4180 and defuses formulas in text cells, not in numbers', () => {
    assert.deepEqual(
      ['plain', 'a,b', 'say "hi"', 'two\r\nlines', '=1+1', '+1', '-x', '@SUM(A1)', '\tx', -1, 0, true, null, undefined].map(csvCell),
      ['plain', '"a,b"', '"say ""hi"""', '"two\r\nlines"', "'=1+1", "'+1", "'-x", "'@SUM(A1)", "'\tx", '-1', '0', 'true', '', ''],
    );
    assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});
