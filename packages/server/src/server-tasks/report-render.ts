/**
 * Reports as a person reads them (HTML, readable in a mail client) and as a program reads
 * them (CSV).
 *
 * The HTML is for mail clients, which strip <style> blocks, scripts and often images: every
 * style is inline, there is no SVG, script or external image, and charts are tables of
 * coloured cells whose widths are percentages (with the old `width`/`bgcolor` attributes
 * beside the styles, which Outlook's Word engine honours). Every figure a chart shows is also
 * written in words next to it, so the report reads the same with colours or images off.
 * Everything that comes from data is escaped.
 *
 * The CSV is RFC 4180 (CRLF, fields quoted when they hold a comma, quote or line break),
 * UTF-8 without a byte-order mark (the RFC's form; spreadsheet users import it as UTF-8), with
 * a header row. Text cells that a spreadsheet would run as a formula (starting with = + - @,
 * tab or carriage return) are prefixed with an apostrophe: device and task names come from
 * agents and administrators, and a report must not become a way to run one in a reader's
 * spreadsheet. Numbers are written as numbers, so a negative exit code stays a number.
 */
import { csvCell } from '../csv.ts';
import { createWriteStream, type WriteStream } from 'node:fs';
import {
  COMPLIANCE_CATEGORIES,
  COMPLIANCE_LABELS,
  REPORT_TITLES,
  STALE_DAYS,
  type Capped,
  type Cell,
  type ComplianceReport,
  type InventoryReport,
  type ReportData,
  type ReportKind,
  type RowSink,
  type StateCounts,
  type TaskResultsReport,
} from './report-data.ts';

// ---------------------------------------------------------------- CSV

export { csvCell };

export function csvLine(cells: readonly Cell[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/**
 * A CSV file written as rows come: rows are gathered into chunks of about 64 KiB and written
 * with the stream's back-pressure honoured, so that a report of any size holds one chunk.
 */
export class CsvFile implements RowSink {
  readonly path: string;
  readonly #out: WriteStream;
  #buffer = '';
  #failed: Error | null = null;
  rows = 0;
  bytes = 0;
  constructor(file: string, header: readonly string[]) {
    this.path = file;
    this.#out = createWriteStream(file, { mode: 0o640 });
    this.#out.on('error', (err) => (this.#failed ??= err));
    this.#buffer = csvLine(header);
  }
  async row(cells: readonly Cell[]): Promise<void> {
    this.#buffer += csvLine(cells);
    this.rows++;
    if (this.#buffer.length >= 65536) await this.#flush();
  }
  async #flush(): Promise<void> {
    if (this.#failed) throw this.#failed;
    const chunk = this.#buffer;
    this.#buffer = '';
    this.bytes += Buffer.byteLength(chunk);
    if (!this.#out.write(chunk)) await this.#either('drain');
    if (this.#failed) throw this.#failed;
  }
  async close(): Promise<void> {
    if (this.#buffer) await this.#flush();
    this.#out.end();
    await this.#either('finish');
    if (this.#failed) throw this.#failed;
  }
  /** Resolves at `event` or at an error, whichever comes first, leaving no listener behind. */
  #either(event: 'drain' | 'finish'): Promise<void> {
    if (this.#failed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#out.off(event, done).off('error', done);
        resolve();
      };
      this.#out.once(event, done).once('error', done);
    });
  }
  /** Closes without caring for the outcome (the run failed or was stopped). */
  destroy(): void {
    this.#out.destroy();
  }
}

// ---------------------------------------------------------------- HTML

const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]!);
}
const e = escapeHtml;
const num = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, one: string, many = `${one}s`) => `${num(n)} ${n === 1 ? one : many}`;
export function formatTime(iso: string | Date | null): string {
  if (!iso) return '';
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Colours with enough contrast on white; every one also named in the legend and the figures. */
const RUN_STATE_STYLE: Record<string, { label: string; color: string }> = {
  succeeded: { label: 'succeeded', color: '#2e7d32' },
  succeeded_with_warnings: { label: 'with warnings', color: '#f9a825' },
  failed: { label: 'failed', color: '#c62828' },
  timed_out: { label: 'timed out', color: '#ef6c00' },
  cancelled: { label: 'cancelled', color: '#757575' },
  skipped: { label: 'skipped', color: '#bdbdbd' },
};
const RUN_STATE_ORDER = Object.keys(RUN_STATE_STYLE);
const COMPLIANCE_COLORS: Record<string, string> = { upToDate: '#2e7d32', outOfDate: '#f9a825', notInstalled: '#1565c0', failed: '#c62828', unavailable: '#9e9e9e' };
const BAR_COLOR = '#1565c0';

const FONT = 'font-family:Arial,Helvetica,sans-serif;';
const S = {
  h1: `${FONT}font-size:22px;margin:0 0 4px 0;color:#1a1a1a;`,
  h2: `${FONT}font-size:18px;margin:28px 0 8px 0;padding-bottom:4px;border-bottom:2px solid #1565c0;color:#1a1a1a;`,
  h3: `${FONT}font-size:15px;margin:18px 0 6px 0;color:#1a1a1a;`,
  p: `${FONT}font-size:14px;line-height:1.4;margin:4px 0 8px 0;color:#1a1a1a;`,
  muted: `${FONT}font-size:13px;color:#555555;margin:4px 0 8px 0;`,
  // Cells inherit the table's font (which keeps 200-row tables small): only spacing and lines here.
  table: `border-collapse:collapse;margin:4px 0 12px 0;${FONT}font-size:13px;color:#1a1a1a;`,
  th: 'text-align:left;padding:4px 8px;border-bottom:1px solid #999999;background-color:#f0f0f0;',
  td: 'padding:3px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top;',
  tdNum: 'padding:3px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top;text-align:right;',
};

/** Integer widths for the non-zero parts that add up to exactly 100 (each at least 1). */
function percentages(values: readonly number[]): number[] {
  const total = values.reduce((a, b) => a + b, 0);
  if (total === 0) return values.map(() => 0);
  const out = values.map((v) => (v > 0 ? Math.max(1, Math.round((v / total) * 100)) : 0));
  const diff = 100 - out.reduce((a, b) => a + b, 0);
  const largest = out.indexOf(Math.max(...out));
  out[largest]! += diff;
  return out;
}
/** One stacked horizontal bar: a table row of coloured cells (the chart), titled with its figures. */
function stackedBar(parts: readonly { label: string; color: string; n: number }[]): string {
  const widths = percentages(parts.map((p) => p.n));
  const cells = parts
    .map((p, i) => (widths[i]! > 0 ? `<td width="${widths[i]}%" bgcolor="${p.color}" title="${e(`${p.label}: ${num(p.n)}`)}" style="width:${widths[i]}%;background-color:${p.color};height:14px;font-size:1px;line-height:1px;">&nbsp;</td>` : ''))
    .join('');
  return `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;width:100%;"><tr>${cells || '<td style="height:14px;font-size:1px;line-height:1px;background-color:#eeeeee;" bgcolor="#eeeeee">&nbsp;</td>'}</tr></table>`;
}
/** A bar as long as `n` is to `max`. */
function valueBar(n: number, max: number): string {
  const w = max > 0 ? Math.max(n > 0 ? 1 : 0, Math.round((n / max) * 100)) : 0;
  const rest = 100 - w;
  return `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;width:100%;"><tr>${w ? `<td width="${w}%" bgcolor="${BAR_COLOR}" style="width:${w}%;background-color:${BAR_COLOR};height:14px;font-size:1px;line-height:1px;">&nbsp;</td>` : ''}${rest ? `<td width="${rest}%" style="width:${rest}%;height:14px;font-size:1px;line-height:1px;">&nbsp;</td>` : ''}</tr></table>`;
}
/** A chart: one row per item with its label, its bar and its figures in words. */
function chart(name: string, rows: readonly { label: string; bar: string; figures: string }[]): string {
  if (rows.length === 0) return '';
  return `<table role="presentation" data-chart="${e(name)}" width="100%" cellpadding="0" cellspacing="0" border="0" style="${S.table}width:100%;max-width:900px;">${rows
    .map((r) => `<tr><td width="28%" style="${S.td}width:28%;">${e(r.label)}</td><td width="42%" style="${S.td}width:42%;vertical-align:middle;">${r.bar}</td><td style="${S.td}color:#444444;">${e(r.figures)}</td></tr>`)
    .join('')}</table>`;
}
function legend(items: readonly { label: string; color: string }[]): string {
  return `<p style="${S.muted}">${items.map((i) => `<span style="display:inline-block;width:10px;height:10px;background-color:${i.color};border:1px solid #666666;">&nbsp;</span>&nbsp;${e(i.label)}`).join(' &nbsp; ')}</p>`;
}
function table(headers: readonly string[], rows: readonly (readonly (string | number | null)[])[], numeric: readonly number[] = []): string {
  const head = headers.map((h) => `<th style="${S.th}">${e(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td style="${numeric.includes(i) ? S.tdNum : S.td}">${c === null ? '' : e(typeof c === 'number' ? num(c) : c)}</td>`).join('')}</tr>`).join('');
  return `<table cellpadding="0" cellspacing="0" border="0" style="${S.table}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
/** "…and N more" under a capped table, pointing at the CSV that holds them all. */
function more(c: Capped<unknown>, csvName: string | undefined): string {
  const rest = c.total - c.items.length;
  if (rest <= 0) return '';
  return `<p style="${S.muted}">…and ${num(rest)} more, ${csvName ? `every row is in ${e(csvName)}` : 'not shown here (ask for the CSV format to get them all)'}.</p>`;
}
function stateFigures(states: StateCounts): string {
  return RUN_STATE_ORDER.filter((s) => states[s as keyof StateCounts])
    .map((s) => `${num(states[s as keyof StateCounts]!)} ${RUN_STATE_STYLE[s]!.label}`)
    .join(', ');
}
const stateParts = (states: StateCounts) => RUN_STATE_ORDER.map((s) => ({ label: RUN_STATE_STYLE[s]!.label, color: RUN_STATE_STYLE[s]!.color, n: states[s as keyof StateCounts] ?? 0 }));

export interface ReportDocument {
  title: string;
  groupPath: string;
  since: Date;
  until: Date;
  generatedAt: Date;
  reports: ReportData[];
  /** The CSV file of each report, when CSV is among the formats. */
  csvNames: Partial<Record<ReportKind, string>>;
}

function taskResultsHtml(r: TaskResultsReport, doc: ReportDocument): string {
  const out = [`<h2 style="${S.h2}">Task results</h2>`];
  out.push(`<p style="${S.p}">${e(`${plural(r.runs, 'run')} ended between ${formatTime(doc.since)} and ${formatTime(doc.until)} on devices of ${doc.groupPath}${r.runs ? `: ${stateFigures(r.states)}` : ''}.`)}</p>`);
  if (r.tasks.length === 0) return out.join('') + `<p style="${S.p}">No task ran in this period.</p>`;
  out.push(`<h3 style="${S.h3}">Runs by outcome, per task</h3>`, legend(RUN_STATE_ORDER.map((s) => RUN_STATE_STYLE[s]!)));
  out.push(chart('task-outcomes', r.tasks.map((t) => ({ label: t.name, bar: stackedBar(stateParts(t.states)), figures: t.runs ? `${plural(t.runs, 'run')}: ${stateFigures(t.states)}` : 'no runs' }))));
  out.push(
    table(
      ['Task', 'Runs', 'Succeeded', 'With warnings', 'Failed', 'Timed out', 'Cancelled', 'Skipped', 'Targets now', 'With a result', 'Running or pending', 'Not run yet'],
      r.tasks.map((t) => [t.name, t.runs, t.states.succeeded ?? 0, t.states.succeeded_with_warnings ?? 0, t.states.failed ?? 0, t.states.timed_out ?? 0, t.states.cancelled ?? 0, t.states.skipped ?? 0, t.targets, t.withResult, t.inProgress, t.notRun]),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    ),
  );
  const withReasons = r.tasks.filter((t) => t.reasons.length);
  if (withReasons.length) {
    out.push(`<h3 style="${S.h3}">Why runs failed</h3>`);
    out.push(table(['Task', 'Reason', 'Runs'], withReasons.flatMap((t) => t.reasons.map((x) => [t.name, x.label, x.n])), [2]));
  }
  if (r.groups.length) {
    out.push(`<h3 style="${S.h3}">Runs by outcome, per group</h3>`);
    out.push(chart('group-outcomes', r.groups.map((g) => ({ label: g.path, bar: stackedBar(stateParts(g.states)), figures: `${plural(g.runs, 'run')}: ${stateFigures(g.states)}` }))));
  }
  if (r.failures.total) {
    out.push(`<h3 style="${S.h3}">Failed and timed-out runs (${num(r.failures.total)})</h3>`);
    out.push(table(['Task', 'Device', 'Group', 'Outcome', 'Exit code', 'Reason', 'Ended'], r.failures.items.map((f) => [f.task, f.device, f.group, RUN_STATE_STYLE[f.state]?.label ?? f.state, f.exitCode, f.reason, formatTime(f.endedAt)]), [4]));
    out.push(more(r.failures, doc.csvNames['task-results']));
  }
  return out.join('');
}

function complianceHtml(r: ComplianceReport, doc: ReportDocument): string {
  const out = [`<h2 style="${S.h2}">Deployment compliance</h2>`];
  if (r.products.length === 0) return out.join('') + `<p style="${S.p}">${e(`No product is deployed to the devices of ${doc.groupPath}.`)}</p>`;
  const parts = (p: ComplianceReport['products'][number]) => COMPLIANCE_CATEGORIES.map((c) => ({ label: COMPLIANCE_LABELS[c], color: COMPLIANCE_COLORS[c]!, n: p.counts[c] }));
  const figures = (p: ComplianceReport['products'][number]) =>
    COMPLIANCE_CATEGORIES.filter((c) => p.counts[c])
      .map((c) => `${num(p.counts[c])} ${COMPLIANCE_LABELS[c]}`)
      .join(', ');
  out.push(`<p style="${S.p}">${e(`${plural(r.devices, 'device')} of ${doc.groupPath} ${r.devices === 1 ? 'has' : 'have'} products assigned.`)}</p>`);
  out.push(`<h3 style="${S.h3}">Devices per product</h3>`, legend(COMPLIANCE_CATEGORIES.map((c) => ({ label: COMPLIANCE_LABELS[c], color: COMPLIANCE_COLORS[c]! }))));
  out.push(chart('compliance', r.products.map((p) => ({ label: p.product, bar: stackedBar(parts(p)), figures: `${plural(p.devices, 'device')}: ${figures(p)}` }))));
  out.push(
    table(
      ['Product', 'Devices', 'Up to date', 'Out of date', 'Not installed yet', 'Failed', 'Unavailable', 'Compliant'],
      r.products.map((p) => [p.product, p.devices, p.counts.upToDate, p.counts.outOfDate, p.counts.notInstalled, p.counts.failed, p.counts.unavailable, `${p.devices ? Math.floor((p.counts.upToDate / p.devices) * 100) : 0}%`]),
      [1, 2, 3, 4, 5, 6, 7],
    ),
  );
  out.push(`<h3 style="${S.h3}">Installed versions</h3>`);
  out.push(table(['Product', 'Version', 'Devices'], r.products.flatMap((p) => p.versions.map((v) => [p.product, v.label, v.n])), [2]));
  if (r.failures.total) {
    out.push(`<h3 style="${S.h3}">Failed installations by exit code</h3>`);
    out.push(table(['Product', 'Exit code', 'Devices'], r.products.flatMap((p) => p.exitCodes.map((x) => [p.product, x.label, x.n])), [2]));
    out.push(`<h3 style="${S.h3}">Failed installations (${num(r.failures.total)})</h3>`);
    out.push(table(['Device', 'Group', 'Product', 'Installed', 'Target', 'Exit code', 'Detail', 'Since'], r.failures.items.map((f) => [f.device, f.group, f.product, f.installedVersion, f.targetVersion, f.exitCode, f.detail, formatTime(f.updatedAt)]), [5]));
    out.push(more(r.failures, doc.csvNames['deployment-compliance']));
  }
  return out.join('');
}

function inventoryHtml(r: InventoryReport, doc: ReportDocument): string {
  const out = [`<h2 style="${S.h2}">Device inventory</h2>`];
  out.push(`<p style="${S.p}">${e(`${plural(r.devices, 'device')} in ${doc.groupPath}: ${num(r.online)} online, ${num(r.devices - r.online)} offline; ${num(r.stale)} not seen for ${STALE_DAYS} days or more.`)}</p>`);
  if (r.devices === 0) return out.join('');
  const top = (list: { label: string; n: number }[]) => list.slice(0, 25);
  const maxOs = Math.max(...r.byOs.map((x) => x.n));
  out.push(`<h3 style="${S.h3}">Devices per operating system</h3>`);
  out.push(chart('os', top(r.byOs).map((x) => ({ label: x.label, bar: valueBar(x.n, maxOs), figures: plural(x.n, 'device') }))));
  const maxAgent = Math.max(...r.byAgentVersion.map((x) => x.n));
  out.push(`<h3 style="${S.h3}">Devices per agent version</h3>`);
  out.push(chart('agent-versions', top(r.byAgentVersion).map((x) => ({ label: x.label, bar: valueBar(x.n, maxAgent), figures: plural(x.n, 'device') }))));
  if (r.products.length) {
    out.push(`<h3 style="${S.h3}">Installed products</h3>`);
    out.push(table(['Product', 'Devices', 'Versions'], r.products.map((p) => [p.product, p.devices, p.versions.map((v) => `${v.label} (${num(v.n)})`).join(', ')]), [1]));
  }
  out.push(`<h3 style="${S.h3}">Devices</h3>`);
  out.push(table(['Device', 'Group', 'Operating system', 'Agent', 'Last contact', 'Online', 'Products', 'Tags'], r.list.items.map((d) => [d.name, d.group, d.os, d.agentVersion, formatTime(d.lastContactAt), d.online ? 'yes' : 'no', d.products, d.tags])));
  out.push(more(r.list, doc.csvNames['device-inventory']));
  return out.join('');
}

export function renderHtml(doc: ReportDocument): string {
  const sections = doc.reports.map((r) => (r.kind === 'task-results' ? taskResultsHtml(r, doc) : r.kind === 'deployment-compliance' ? complianceHtml(r, doc) : inventoryHtml(r, doc)));
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${e(doc.title)}</title></head>
<body style="margin:0;padding:16px;background-color:#ffffff;color:#1a1a1a;${FONT}">
<h1 style="${S.h1}">${e(doc.title)}</h1>
<p style="${S.muted}">${e(`${doc.reports.map((r) => REPORT_TITLES[r.kind]).join(', ')} for ${doc.groupPath} and its subgroups, made ${formatTime(doc.generatedAt)}.`)}</p>
${sections.join('\n')}
<p style="${S.muted}margin-top:24px;">Sent by Garrison. Figures are as of the time the report was made.</p>
</body></html>
`;
}

// ---------------------------------------------------------------- plain text

/** The mail's plain-text alternative: the same figures without the detail tables. */
export function renderText(doc: ReportDocument): string {
  const out = [doc.title, `${doc.groupPath} and its subgroups, made ${formatTime(doc.generatedAt)}`, ''];
  for (const r of doc.reports) {
    out.push(REPORT_TITLES[r.kind].toUpperCase());
    if (r.kind === 'task-results') {
      out.push(`${plural(r.runs, 'run')} ended between ${formatTime(doc.since)} and ${formatTime(doc.until)}${r.runs ? `: ${stateFigures(r.states)}` : ''}`);
      for (const t of r.tasks) out.push(`- ${t.name}: ${t.runs ? `${plural(t.runs, 'run')}, ${stateFigures(t.states)}` : 'no runs'}; ${num(t.withResult)} of ${plural(t.targets, 'target')} with a result`);
      if (r.failures.total) out.push(`${plural(r.failures.total, 'failed or timed-out run')}; see the HTML or CSV for the list`);
    } else if (r.kind === 'deployment-compliance') {
      if (!r.products.length) out.push('No product is deployed to these devices.');
      for (const p of r.products) out.push(`- ${p.product}: ${plural(p.devices, 'device')}, ${COMPLIANCE_CATEGORIES.filter((c) => p.counts[c]).map((c) => `${num(p.counts[c])} ${COMPLIANCE_LABELS[c]}`).join(', ')}`);
    } else {
      out.push(`${plural(r.devices, 'device')}: ${num(r.online)} online, ${num(r.devices - r.online)} offline, ${num(r.stale)} not seen for ${STALE_DAYS} days or more`);
      for (const x of r.byOs.slice(0, 10)) out.push(`- ${x.label}: ${num(x.n)}`);
    }
    out.push('');
  }
  return out.join('\n');
}
