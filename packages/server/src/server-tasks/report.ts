/**
 * Report distribution (issue 6): task results over a period, deployment compliance and the
 * device inventory of a group (with its subgroups), as HTML and CSV, mailed over SMTP and/or
 * written to a folder.
 *
 * A run gathers each report once (report-data.ts), streaming its rows into a CSV file in a
 * private temporary folder while keeping counts and the first rows for the HTML, renders one
 * HTML document with every report (report-render.ts), then delivers: the folder first (local,
 * quick), then the mail. One failed delivery out of two is a warning; all failed fails the
 * run. The temporary folder is removed whatever happens.
 */
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Type } from 'typebox';
import { SecretRefSchema, isSecretRef } from '@garrison/protocol';
import { defineServerTaskType, throwIfStopped, type ServerTaskContext, type ServerTaskEnvironment, type ServerTaskResult } from './server-task.ts';
import {
  COMPLIANCE_COLUMNS,
  INVENTORY_COLUMNS,
  REPORT_KINDS,
  TASK_RESULTS_COLUMNS,
  gatherCompliance,
  gatherInventory,
  gatherTaskResults,
  type ReportData,
  type ReportKind,
  type ReportScope,
} from './report-data.ts';
import { CsvFile, renderHtml, renderText, type ReportDocument } from './report-render.ts';
import { DEFAULT_SMTP_TIMEOUT_SECONDS, SMTP_SECURITY, scrub, sendMail, type SmtpSecurity } from './mail.ts';

export const REPORT_TASK_TYPE = 'report';
export const DEFAULT_PERIOD_HOURS = 168;
export const DEFAULT_MAX_ATTACHMENT_MEGABYTES = 20;
const FORMATS = ['html', 'csv'] as const;
type Format = (typeof FORMATS)[number];

const Address = Type.String({ minLength: 3, maxLength: 254, description: 'An e-mail address: name@example.com' });
const literals = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));

export const ReportSettingsSchema = Type.Object(
  {
    reports: Type.Array(literals(REPORT_KINDS), { minItems: 1, maxItems: 10, description: 'Which reports: task-results, deployment-compliance, device-inventory' }),
    groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The group reported on, with its subgroups (default: the root group)' })),
    taskIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 1000, description: 'Task results of these tasks only (default: every task with runs in the period)' })),
    periodHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 8760, description: `Task results of the last N hours (default ${DEFAULT_PERIOD_HOURS})` })),
    formats: Type.Optional(Type.Array(literals(FORMATS), { minItems: 1, maxItems: 2, description: 'Files to attach or write (default both); the mail body is always the HTML' })),
    delivery: Type.Object(
      {
        email: Type.Optional(
          Type.Object(
            {
              to: Type.Array(Address, { minItems: 1, maxItems: 50 }),
              cc: Type.Optional(Type.Array(Address, { maxItems: 50 })),
              subject: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Default: "Garrison report: <task name>, <date>"' })),
              maxAttachmentMegabytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: `Attachments beyond this total are left out with a warning (default ${DEFAULT_MAX_ATTACHMENT_MEGABYTES})` })),
              smtp: Type.Object(
                {
                  host: Type.String({ minLength: 1, maxLength: 255 }),
                  port: Type.Integer({ minimum: 1, maximum: 65535 }),
                  security: literals(SMTP_SECURITY),
                  user: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
                  password: Type.Optional(SecretRefSchema),
                  from: Type.String({ minLength: 3, maxLength: 300, description: 'name@example.com or "Display Name <name@example.com>"' }),
                  rejectUnauthorized: Type.Optional(Type.Boolean({ description: "Verify the mail server's TLS certificate (default true)" })),
                  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: `Connection, greeting and socket timeout (default ${DEFAULT_SMTP_TIMEOUT_SECONDS})` })),
                },
                { additionalProperties: false },
              ),
            },
            { additionalProperties: false },
          ),
        ),
        folder: Type.Optional(
          Type.Object(
            {
              path: Type.String({ minLength: 1, maxLength: 4096, description: 'An absolute folder on the server; created when missing' }),
              keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'Keep the files of the newest N runs and delete older report files in the folder (default: keep all); give each report task its own folder' })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** The settings as stored (password a secret reference) and as run (password resolved). */
export interface ReportSettings {
  reports: ReportKind[];
  groupId?: string;
  taskIds?: string[];
  periodHours?: number;
  formats?: Format[];
  delivery: {
    email?: {
      to: string[];
      cc?: string[];
      subject?: string;
      maxAttachmentMegabytes?: number;
      smtp: { host: string; port: number; security: SmtpSecurity; user?: string; password?: string | { $secret: string }; from: string; rejectUnauthorized?: boolean; timeoutSeconds?: number };
    };
    folder?: { path: string; keep?: number };
  };
}

/** Strict enough to catch typos and header tricks; the mail server has the last word. */
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const FROM_WITH_NAME = /^([^<>"\r\n]{1,100}) <([^<>\s]+)>$/;
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/;

function validateSettings(s: ReportSettings, env: ServerTaskEnvironment): string[] {
  const problems: string[] = [];
  const dup = s.reports.filter((r, i) => s.reports.indexOf(r) !== i);
  if (dup.length) problems.push(`reports lists ${[...new Set(dup)].join(', ')} more than once`);
  if (s.formats && new Set(s.formats).size !== s.formats.length) problems.push('formats lists a format more than once');
  if (s.groupId !== undefined && !env.catalog.group(s.groupId)) problems.push(`groupId: there is no group "${s.groupId}"`);
  const unknown = (s.taskIds ?? []).filter((id) => !env.catalog.task(id));
  if (unknown.length) problems.push(`taskIds: there is no task ${unknown.map((id) => `"${id}"`).join(', ')}`);
  if (s.taskIds && !s.reports.includes('task-results')) problems.push('taskIds only applies to the task-results report, which reports does not include');
  const { email, folder } = s.delivery;
  if (!email && !folder) problems.push('delivery needs email, folder or both');
  if (email) {
    const bad = [...email.to, ...(email.cc ?? [])].filter((a) => !EMAIL.test(a));
    if (bad.length) problems.push(`not e-mail addresses: ${bad.map((a) => JSON.stringify(a)).join(', ')}`);
    const from = FROM_WITH_NAME.exec(email.smtp.from);
    if (!EMAIL.test(email.smtp.from) && !(from && EMAIL.test(from[2]!))) problems.push(`smtp.from ${JSON.stringify(email.smtp.from)} is not "name@example.com" or "Display Name <name@example.com>"`);
    if (email.subject !== undefined && /[\r\n]/.test(email.subject)) problems.push('subject must be one line');
    if (!HOST.test(email.smtp.host)) problems.push(`smtp.host ${JSON.stringify(email.smtp.host)} is not a host name or IP address`);
    if (email.smtp.password !== undefined && !email.smtp.user) problems.push('smtp.password is given without smtp.user');
    if (email.smtp.user && email.smtp.password === undefined) problems.push('smtp.user is given without smtp.password (a secret reference)');
    // A password sent in the clear is readable by anyone on the path.
    if (email.smtp.password !== undefined && email.smtp.security === 'none') problems.push('smtp.security "none" would send the password unencrypted: use "starttls" or "tls"');
  }
  if (folder && !path.isAbsolute(folder.path)) problems.push(`folder.path must be an absolute path, not ${JSON.stringify(folder.path)}`);
  return problems;
}

/** "20250131-140502" (UTC): the part of a file name that says which run wrote it. */
function stamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
}
const REPORT_FILE = new RegExp(`^(report|${REPORT_KINDS.join('|')})-(\\d{8}-\\d{6})\\.(html|csv)$`);
const kb = (bytes: number) => (bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);

interface ReportFile {
  name: string;
  path: string;
  bytes: number;
  contentType: string;
}

/**
 * Copies the files into the folder atomically (a hidden temporary name, then a rename, so
 * that a reader or a sync tool never sees half a file), mode 0640, and deletes the files of
 * runs older than the newest `keep` (a run's files share its time stamp). Only names this
 * task type writes are ever deleted.
 */
async function writeToFolder(dir: string, files: readonly ReportFile[], keep: number | undefined): Promise<{ written: string[]; pruned: string[] }> {
  await mkdir(dir, { recursive: true, mode: 0o750 });
  const written: string[] = [];
  for (const f of files) {
    const tmp = path.join(dir, `.${f.name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await copyFile(f.path, tmp);
      await chmod(tmp, 0o640);
      await rename(tmp, path.join(dir, f.name));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    written.push(f.name);
  }
  const pruned: string[] = [];
  if (keep !== undefined) {
    const byStamp = new Map<string, string[]>();
    for (const name of await readdir(dir)) {
      const m = REPORT_FILE.exec(name);
      if (m) byStamp.set(m[2]!, [...(byStamp.get(m[2]!) ?? []), name]);
    }
    const old = [...byStamp.keys()].sort().reverse().slice(keep);
    for (const s of old) {
      for (const name of byStamp.get(s)!) {
        await unlink(path.join(dir, name)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        pruned.push(name);
      }
    }
  }
  return { written, pruned };
}

async function runReport(s: ReportSettings, ctx: ServerTaskContext): Promise<ServerTaskResult> {
  const catalog = ctx.catalog;
  const groupId = s.groupId ?? ctx.groups.rootId;
  if (!catalog.group(groupId)) throw new Error(`the group "${groupId}" of this report no longer exists: choose another groupId`);
  const formats = new Set<Format>(s.formats ?? FORMATS);
  const kinds = [...new Set(s.reports)];
  const until = ctx.clock.now();
  const since = new Date(until.getTime() - (s.periodHours ?? DEFAULT_PERIOD_HOURS) * 3600_000);
  const scope: ReportScope = { groupId, groupPath: catalog.tree.path(groupId), groupIds: new Set(catalog.tree.descendants(groupId)), since, until, ...(s.taskIds ? { taskIds: s.taskIds } : {}) };
  const email = s.delivery.email;
  const password = email?.smtp.password;
  if (password !== undefined && typeof password !== 'string') throw new Error(isSecretRef(password) ? `the secret "${password.$secret}" for smtp.password was not resolved` : 'smtp.password is not a secret reference');
  const hide = (text: string) => scrub(text, password);
  const when = stamp(until);

  const work = await mkdtemp(path.join(os.tmpdir(), 'garrison-report-'));
  const open: CsvFile[] = [];
  try {
    const reports: ReportData[] = [];
    const files: ReportFile[] = [];
    const csvNames: ReportDocument['csvNames'] = {};
    const rows: Record<string, number> = {};
    for (const [i, kind] of kinds.entries()) {
      throwIfStopped(ctx.signal);
      ctx.progress(Math.round((i / kinds.length) * 80), `gathering ${kind}`);
      const csvName = `${kind}-${when}.csv`;
      const csv = formats.has('csv')
        ? new CsvFile(path.join(work, csvName), kind === 'task-results' ? TASK_RESULTS_COLUMNS : kind === 'deployment-compliance' ? COMPLIANCE_COLUMNS : INVENTORY_COLUMNS)
        : null;
      if (csv) open.push(csv);
      const gather = kind === 'task-results' ? gatherTaskResults : kind === 'deployment-compliance' ? gatherCompliance : gatherInventory;
      const data: ReportData = await gather(ctx, scope, csv ?? undefined, ctx.signal);
      reports.push(data);
      rows[kind] = data.rows;
      let line =
        data.kind === 'task-results'
          ? `${kind}: ${data.tasks.length} tasks, ${data.runs} runs since ${since.toISOString()}, ${data.failures.total} failed or timed out`
          : data.kind === 'deployment-compliance'
            ? `${kind}: ${data.products.length} products on ${data.devices} devices, ${data.failures.total} failed installations`
            : `${kind}: ${data.devices} devices, ${data.online} online`;
      if (csv) {
        await csv.close();
        csvNames[kind] = csvName;
        files.push({ name: csvName, path: csv.path, bytes: csv.bytes, contentType: 'text/csv; charset=utf-8' });
        line += `; ${csvName} ${data.rows} rows, ${kb(csv.bytes)}`;
      }
      ctx.output(line);
    }
    throwIfStopped(ctx.signal);
    ctx.progress(85, 'rendering');
    const title = email?.subject ?? `Garrison report: ${ctx.taskName}, ${until.toISOString().slice(0, 10)}`;
    const doc: ReportDocument = { title, groupPath: scope.groupPath, since, until, generatedAt: until, reports, csvNames };
    const html = renderHtml(doc);
    if (formats.has('html')) {
      const name = `report-${when}.html`;
      await writeFile(path.join(work, name), html, { mode: 0o640 });
      files.unshift({ name, path: path.join(work, name), bytes: Buffer.byteLength(html), contentType: 'text/html; charset=utf-8' });
    }

    const warnings: string[] = [];
    const failures: string[] = [];
    const data: Record<string, unknown> = { group: scope.groupPath, since: since.toISOString(), until: until.toISOString(), reports: kinds, rows, htmlBytes: Buffer.byteLength(html) };
    const done: string[] = [];
    if (s.delivery.folder) {
      throwIfStopped(ctx.signal);
      ctx.progress(88, 'writing to the folder');
      const dir = s.delivery.folder.path;
      try {
        const { written, pruned } = await writeToFolder(dir, files, s.delivery.folder.keep);
        for (const f of written) ctx.output(`wrote ${path.join(dir, f)}`);
        if (pruned.length) ctx.output(`deleted ${pruned.length} older report files: ${pruned.join(', ')}`);
        Object.assign(data, { folder: dir, files: written, pruned: pruned.length });
        done.push(`wrote ${written.length} files to ${dir}`);
      } catch (err) {
        const msg = `writing the reports to ${dir} failed: ${(err as Error).message}`;
        ctx.output(msg);
        failures.push(msg);
      }
    }
    if (email) {
      throwIfStopped(ctx.signal);
      ctx.progress(92, 'sending the mail');
      const limit = (email.maxAttachmentMegabytes ?? DEFAULT_MAX_ATTACHMENT_MEGABYTES) * 1024 * 1024;
      // The smallest files first, so that a limit leaves out the few large CSVs, not the HTML.
      const attachments: ReportFile[] = [];
      let total = 0;
      for (const f of [...files].sort((a, b) => a.bytes - b.bytes)) {
        if (total + f.bytes <= limit) {
          attachments.push(f);
          total += f.bytes;
        } else warnings.push(`${f.name} (${kb(f.bytes)}) was not attached: the attachments would pass ${email.maxAttachmentMegabytes ?? DEFAULT_MAX_ATTACHMENT_MEGABYTES} MB; deliver to a folder for reports this large`);
      }
      const recipients = [...new Set([...email.to, ...(email.cc ?? [])].map((a) => a.toLowerCase()))];
      const smtp = email.smtp;
      ctx.output(`sending to ${recipients.length} recipients through ${smtp.host}:${smtp.port} (${smtp.security}${smtp.user ? `, as ${smtp.user}` : ''}) with ${attachments.length} attachments, ${kb(total)}`);
      try {
        const sent = await sendMail(
          { host: smtp.host, port: smtp.port, security: smtp.security, from: smtp.from, ...(smtp.user ? { user: smtp.user } : {}), ...(password ? { password } : {}), ...(smtp.rejectUnauthorized !== undefined ? { rejectUnauthorized: smtp.rejectUnauthorized } : {}), ...(smtp.timeoutSeconds ? { timeoutSeconds: smtp.timeoutSeconds } : {}) },
          { to: email.to, ...(email.cc ? { cc: email.cc } : {}), subject: title, html, text: renderText(doc), attachments: attachments.map((a) => ({ filename: a.name, path: a.path, contentType: a.contentType })) },
          ctx.signal,
        );
        if (sent.rejected.length) warnings.push(`the mail server refused ${sent.rejected.length} recipients: ${sent.rejected.join(', ')}`);
        ctx.output(`sent ${sent.messageId} to ${sent.accepted.length} recipients`);
        Object.assign(data, { recipients: sent.accepted.length, messageId: sent.messageId, attachments: attachments.map((a) => a.name) });
        done.push(`sent to ${sent.accepted.length} recipients`);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        const msg = hide((err as Error).message);
        ctx.output(msg);
        failures.push(msg);
      }
    }
    if (done.length === 0) throw new Error(failures.join('; '));
    warnings.push(...failures);
    ctx.progress(100);
    return { summary: hide(`${kinds.length} report${kinds.length === 1 ? '' : 's'} (${kinds.join(', ')}): ${done.join(', ')}`), ...(warnings.length ? { warnings: warnings.map(hide) } : {}), data };
  } finally {
    for (const c of open) c.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

export const reportTaskType = defineServerTaskType<ReportSettings>({
  type: REPORT_TASK_TYPE,
  name: 'Report distribution',
  description: 'Task results over a period, deployment compliance and the device inventory of a group, as HTML (with charts) and CSV, sent by e-mail over SMTP or written to a folder.',
  settingsSchema: ReportSettingsSchema,
  validate: validateSettings,
  run: runReport,
});

