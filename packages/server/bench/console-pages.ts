/**
 * The console at fleet scale (`npm run bench -- --console [--agents 10000] [--pg URL]`, issue 16):
 * a real server process with N simulated agents (the fleet benchmark's server-process.ts and
 * agent-worker.ts), and the built console in Debian's Chromium (playwright-core). Before a
 * run-now, each main page is opened from scratch and measured until it is ready (no loading
 * indicator left and no request for 500 ms): the time, the bytes received (every response body
 * and stream chunk, as the network carries them), the requests, and the most rows one answer
 * carried (`items` of a page, or a top-level array). Then each page again, opened as a run-now to
 * every agent starts: its time to ready (and as a ratio to its time before) and bytes while the
 * results land, then the bytes per second the open page receives until every result is stored
 * and 5 s after (the live stream and what the page fetches because of it).
 *
 * Goals (issue 16): no answer carries more than a page of rows (1,000), and the open task page
 * costs under 100 KB/s of live updates during a run-now on 10,000 devices. Figures go to
 * `.bench/console-last.json`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium, type CDPSession, type Page } from 'playwright-core';
import type { RunNowProgress } from '@garrison/protocol';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import type { DatabaseConfig } from '../src/storage/database.ts';
import { IpcChild, now, sleep, slices, sourceAddresses, type FromServer, type FromWorker, type ToServer, type ToWorker, type WorkerStatus } from './shared.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');
const PAGE_ROWS = 1000;
const TARGET_LIVE_BYTES_PER_S = 100 * 1024;

const usage = `usage: npm run bench -- --console [options]
  --agents N     simulated agents (default 10000)
  --pg URL       the server on PostgreSQL (default: SQLite in a temporary folder)
  --keep         keep the temporary folder`;

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(n));
const kb = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;
const T0 = now();
const log = (msg: string) => process.stderr.write(`[console bench +${((now() - T0) / 1000).toFixed(1)}s] ${msg}\n`);

interface PageFigures {
  name: string;
  path: string;
  readyMs: number;
  bytes: number;
  requests: number;
  maxRows: number;
  maxRowsFrom: string;
}

interface DuringFigures extends PageFigures {
  /** From the run-now to every result stored. */
  storedMs: number;
  /** From ready to stored + 5 s: what the open page received. */
  seconds: number;
  liveBytes: number;
  bytesPerSecond: number;
  peakBytesPerSecond: number;
}

/** The built console's code and styles: as built, and as sent to a browser that takes brotli (once: the files are cached as immutable). */
function consoleCode(): string {
  const dir = path.join(ROOT, 'packages/console/dist/assets');
  if (!existsSync(dir)) return 'not built';
  const files = readdirSync(dir).filter((f) => /\.(js|css)$/.test(f));
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  const raw = files.reduce((n, f) => n + size(path.join(dir, f)), 0);
  const br = files.reduce((n, f) => n + size(path.join(dir, `${f}.br`)), 0);
  return `${kb(raw)} built, ${kb(br)} sent (brotli), fetched once and then cached (not in the figures below)`;
}

/** Counts what the page receives over the network (CDP: every chunk, streams included). */
async function meter(page: Page): Promise<{ reset(): void; bytes(): number; requests(): number; pending(): number; lastActivity(): number; cdp: CDPSession }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  let requests = 0;
  let last = now();
  const open = new Set<string>();
  cdp.on('Network.requestWillBeSent', (e) => {
    requests++;
    last = now();
    // The live stream stays open; it does not count as a request in flight.
    if (e.type !== 'EventSource') open.add(e.requestId);
  });
  // Bytes as the network carried them: a finished response counts its encoded length (compressed,
  // with headers); one still open (the live stream) counts its chunks as they come.
  const streaming = new Map<string, number>();
  cdp.on('Network.dataReceived', (e) => {
    const n = e.encodedDataLength || e.dataLength;
    bytes += n;
    streaming.set(e.requestId, (streaming.get(e.requestId) ?? 0) + n);
  });
  cdp.on('Network.responseReceived', (e) => {
    if (/event-stream/.test(String(e.response.headers['content-type'] ?? e.response.headers['Content-Type'] ?? ''))) open.delete(e.requestId);
  });
  cdp.on('Network.loadingFinished', (e) => {
    open.delete(e.requestId);
    bytes += e.encodedDataLength - (streaming.get(e.requestId) ?? 0);
    streaming.delete(e.requestId);
    last = now();
  });
  cdp.on('Network.loadingFailed', (e) => {
    open.delete(e.requestId);
    last = now();
  });
  return {
    cdp,
    reset() {
      bytes = 0;
      streaming.clear();
      requests = 0;
      last = now();
    },
    bytes: () => bytes,
    requests: () => requests,
    pending: () => open.size,
    lastActivity: () => last,
  };
}

export async function main(): Promise<number> {
  const { values: opts } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--console'),
    options: { agents: { type: 'string' }, pg: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (opts.help) {
    console.log(usage);
    return 0;
  }
  const N = Number(opts.agents ?? 10_000);
  if (!Number.isInteger(N) || N < 1) {
    console.error(`--agents must be a positive integer\n\n${usage}`);
    return 1;
  }
  const chromiumPath = process.env.GARRISON_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromiumPath) {
    console.error('Chromium not found (apt-get install chromium, or set GARRISON_CHROMIUM)');
    return 1;
  }
  if (!existsSync(path.join(ROOT, 'packages/console/dist/index.html'))) {
    console.error('the console is not built: run "npm run build:console" first');
    return 1;
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'garrison-console-bench-'));
  const live = new Set<ChildProcess>();
  let failure: string | null = null;
  const onFailure = (m: string) => {
    failure ??= m;
  };
  const schema = `bench_console_${randomBytes(4).toString('hex')}`;
  const database: DatabaseConfig = opts.pg ? { kind: 'postgres', url: opts.pg, schema } : { kind: 'sqlite', file: path.join(tmp, 'server', 'garrison.db') };
  const W = Math.max(2, Math.ceil(N / 15_000));
  const figures: { pages: PageFigures[]; during: DuringFigures[]; runNow: Record<string, number> | null; conditions: Record<string, string> } = { pages: [], during: [], runNow: null, conditions: {} };
  try {
    mkdirSync(path.join(tmp, 'server'), { recursive: true });
    const proc = spawn(process.execPath, ['--expose-gc', path.join(HERE, 'server-process.ts'), path.join(tmp, 'server'), JSON.stringify(database), 'tls'], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, GARRISON_SECRET_KEY: randomBytes(32).toString('base64') },
    });
    const server = new IpcChild<ToServer, FromServer>('server', proc, onFailure, live);
    const ready = await server.next('ready', 90_000, 'start');
    const fetchCa: FetchLike = pinnedFetch(ready.caPem);
    const api = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
      const res = await fetchCa(ready.url + p, {
        method,
        headers: { authorization: `Bearer ${ready.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return (text ? JSON.parse(text) : null) as T;
    };
    const workers: IpcChild<ToWorker, FromWorker>[] = [];
    for (let i = 0; i < W; i++) {
      const p = spawn(process.execPath, [path.join(HERE, 'agent-worker.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      workers.push(new IpcChild(`agent worker ${i + 1}`, p, onFailure, live));
    }
    await Promise.all(workers.map((w) => w.next('hello', 30_000, 'start')));
    const parts = slices(N, W);
    const group = await api<{ id: string }>('POST', '/api/v1/groups', { name: 'Console bench' });
    const tok = await api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: group.id, maxUses: N, expiresInMinutes: 240, name: 'console bench' });
    log(`enrolling ${fmt(N)} devices…`);
    await Promise.all(parts.map((s, i) => workers[i]!.ask<'enrolled'>({ cmd: 'enrol', url: ready.url, caPem: ready.caPem, token: tok.token, first: s.first, count: s.count, concurrency: 16 }, 120_000 + N * 30, 'enrolment')));
    log(`connecting ${fmt(N)} agents…`);
    const wsUrl = ready.url.replace(/^http/, 'ws') + '/agent/v1/ws';
    await Promise.all(workers.map((w) => w.ask<'connected'>({ cmd: 'connect', wsUrl, caPem: ready.caPem, addresses: sourceAddresses(Math.max(4, Math.ceil(N / 1000))), concurrency: 128 }, 60_000 + N * 30, 'connecting')));
    const status = async (): Promise<WorkerStatus> => {
      const all = await Promise.all(workers.map((w) => w.ask<'status'>({ cmd: 'status' }, 30_000, 'status')));
      const sum = { ...all[0]!.status };
      for (const { status: st } of all.slice(1)) for (const k of Object.keys(sum) as (keyof WorkerStatus)[]) if (k !== 'lastError') (sum[k] as number) += st[k] as number;
      return sum;
    };
    const before = (await status()).syncCheckInsDone;
    const task = await api<{ id: string }>('POST', '/api/v1/tasks', { name: 'bench: true', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group.id } });
    for (const t = now(); (await status()).syncCheckInsDone - before < N; ) {
      if (now() - t > 120_000) throw new Error('the agents did not sync the task');
      await sleep(100);
    }
    const startRun = async () => (await api<{ requestId: string }>('POST', `/api/v1/tasks/${task.id}/run`, {})).requestId;
    const stored = async (requestId: string, t: number): Promise<number> => {
      for (;;) {
        const p = await api<RunNowProgress>('GET', `/api/v1/tasks/${task.id}/run-requests/${requestId}/progress`);
        if ((p.states.succeeded ?? 0) >= N) return now() - t;
        if (now() - t > 120_000 + N * 5) throw new Error(`run-now not stored: ${JSON.stringify(p.states)}`);
        await sleep(100);
      }
    };
    const runAndStore = async (): Promise<number> => {
      const t = now();
      return stored(await startRun(), t);
    };
    // One run-now first, so that the task page and the dashboard have results to show.
    log('a first run-now, so that the pages have results…');
    await runAndStore();

    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    // The bench trusts the server's own CA by ignoring certificate errors (the console's tests pin its key).
    const context = await browser.newContext({ baseURL: ready.url, ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    await page.goto('/');
    // The console keeps its session token in localStorage; an API token is accepted the same way.
    await page.evaluate(`localStorage.setItem('garrison.session', ${JSON.stringify(ready.adminToken)})`);
    let maxRows = 0;
    let maxRowsFrom = '';
    page.on('response', (res) => {
      if (!/json/.test(res.headers()['content-type'] ?? '') || !res.url().includes('/api/')) return;
      void res.json().then(
        (body: unknown) => {
          const rows = Array.isArray(body) ? body.length : Array.isArray((body as { items?: unknown[] })?.items) ? (body as { items: unknown[] }).items.length : 0;
          if (rows > maxRows) [maxRows, maxRowsFrom] = [rows, new URL(res.url()).pathname + new URL(res.url()).search];
        },
        () => {},
      );
    });
    const m = await meter(page);
    const waitReady = async (): Promise<void> => {
      await page.waitForLoadState('load');
      for (;;) {
        const loading = await page.locator('.loading').count();
        if (!loading && m.pending() === 0 && now() - m.lastActivity() > 500) return;
        await sleep(50);
      }
    };
    const pages: [string, string][] = [
      ['Dashboard', '/'],
      ['Devices', '/devices'],
      ['Device', ''],
      ['Tasks', '/tasks'],
      ['Task (results)', `/tasks/${task.id}`],
      ['Events', '/events'],
      ['Deployments', '/deployments'],
      ['Policies', '/policies'],
    ];
    const someDevice = await api<{ items?: { id: string }[] } | { id: string }[]>('GET', `/api/v1/devices?limit=1`);
    const deviceId = Array.isArray(someDevice) ? someDevice[0]?.id : someDevice.items?.[0]?.id;
    for (const [name, p0] of pages) {
      const p = name === 'Device' ? `/devices/${deviceId}` : p0;
      await page.goto('about:blank');
      maxRows = 0;
      maxRowsFrom = '';
      m.reset();
      const t = now();
      await page.goto(p);
      await waitReady();
      const f: PageFigures = { name, path: p, readyMs: m.lastActivity() - t, bytes: m.bytes(), requests: m.requests(), maxRows, maxRowsFrom };
      figures.pages.push(f);
      log(`${name}: ready in ${fmt(f.readyMs)} ms, ${kb(f.bytes)} in ${f.requests} requests, at most ${fmt(maxRows)} rows in one answer`);
    }

    // Each page again during a run-now to every agent: opened as the run-now starts (its time to
    // ready and bytes while results land), then left open until every result is stored and 5 s
    // after (what the live stream and the re-reads it causes cost the open page per second).
    for (const [name, p0] of pages) {
      const p = name === 'Device' ? `/devices/${deviceId}` : p0;
      await page.goto('about:blank');
      maxRows = 0;
      maxRowsFrom = '';
      m.reset();
      const t = now();
      const requestId = await startRun();
      await page.goto(p);
      await waitReady();
      const readyMs = m.lastActivity() - t;
      const readyBytes = m.bytes();
      const perSecond: number[] = [];
      let lastBytes = m.bytes();
      const sampler = setInterval(() => {
        const b = m.bytes();
        perSecond.push(b - lastBytes);
        lastBytes = b;
      }, 1000);
      const liveFrom = now();
      const liveBytesFrom = m.bytes();
      const storedMs = await stored(requestId, t);
      await sleep(5000);
      clearInterval(sampler);
      const seconds = (now() - liveFrom) / 1000;
      const liveBytes = m.bytes() - liveBytesFrom;
      const d: DuringFigures = { name, path: p, readyMs, bytes: readyBytes, storedMs, seconds, liveBytes, bytesPerSecond: liveBytes / seconds, peakBytesPerSecond: Math.max(0, ...perSecond), requests: m.requests(), maxRows, maxRowsFrom };
      figures.during.push(d);
      log(`${name} during a run-now: ready in ${fmt(readyMs)} ms (${kb(readyBytes)}), then ${kb(d.bytesPerSecond)}/s (peak ${kb(d.peakBytesPerSecond)}/s) until stored + 5 s, at most ${fmt(maxRows)} rows in one answer`);
      if (name === 'Task (results)') figures.runNow = { storedMs, seconds, bytes: liveBytes, bytesPerSecond: d.bytesPerSecond, peakBytesPerSecond: d.peakBytesPerSecond, requests: m.requests(), maxRows };
    }
    await browser.close();

    const out: string[] = [];
    out.push(`Garrison console benchmark — ${new Date().toISOString()}`, '');
    out.push('Conditions');
    const cond: [string, string][] = [
      ['Node', process.version],
      ['CPUs', `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? '?'}`],
      ['database', opts.pg ? 'PostgreSQL' : 'SQLite'],
      ['fleet', `${fmt(N)} simulated agents connected over TLS (${W} worker processes), one group, one task with a result on every device`],
      ['browser', `Chromium (${chromiumPath}), 1366 × 900, a fresh navigation per page; bytes are what the network carried (CDP)`],
      ['the console\'s code', consoleCode()],
      ['load average at end (1, 5, 15 min)', os.loadavg().map((x) => x.toFixed(2)).join(', ')],
    ];
    for (const [k, v] of cond) out.push(`  ${k.padEnd(40)} ${v}`);
    figures.conditions = Object.fromEntries(cond);
    out.push('', `Pages, before the run-now (goal: at most ${fmt(PAGE_ROWS)} rows in any answer)`);
    out.push(`  ${'page'.padEnd(18)} ${'ready'.padStart(9)} ${'fetched'.padStart(11)} ${'requests'.padStart(9)} ${'max rows'.padStart(9)}  biggest list`);
    for (const f of figures.pages) out.push(`  ${f.name.padEnd(18)} ${`${fmt(f.readyMs)} ms`.padStart(9)} ${kb(f.bytes).padStart(11)} ${String(f.requests).padStart(9)} ${fmt(f.maxRows).padStart(9)}${f.maxRows > PAGE_ROWS ? ' (over)' : ''}  ${f.maxRowsFrom}`);
    out.push('', `Pages during a run-now to all ${fmt(N)} devices, opened as it starts, then open until every result is stored + 5 s (goal: under ${kb(TARGET_LIVE_BYTES_PER_S)}/s)`);
    out.push(`  ${'page'.padEnd(18)} ${'ready'.padStart(9)} ${'× before'.padStart(9)} ${'fetched'.padStart(11)} ${'stored'.padStart(9)} ${'live mean'.padStart(11)} ${'live peak'.padStart(11)} ${'max rows'.padStart(9)}`);
    for (const d of figures.during) {
      const b = figures.pages.find((x) => x.name === d.name)!;
      out.push(
        `  ${d.name.padEnd(18)} ${`${fmt(d.readyMs)} ms`.padStart(9)} ${`${fmt(d.readyMs / Math.max(1, b.readyMs), 2)}`.padStart(9)} ${kb(d.bytes).padStart(11)} ${`${fmt(d.storedMs / 1000, 1)} s`.padStart(9)} ${`${kb(d.bytesPerSecond)}/s`.padStart(11)} ${`${kb(d.peakBytesPerSecond)}/s`.padStart(11)} ${fmt(d.maxRows).padStart(9)}${d.bytesPerSecond > TARGET_LIVE_BYTES_PER_S || d.maxRows > PAGE_ROWS ? '  (over the goal)' : ''}`,
      );
    }
    console.log(out.join('\n'));
    mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
    writeFileSync(path.join(ROOT, '.bench', 'console-last.json'), JSON.stringify(figures, null, 2));
    server.exiting = true;
    for (const w of workers) w.exiting = true;
    return failure ? 1 : 0;
  } catch (err) {
    console.error(`console bench failed: ${(err as Error).message}${failure ? ` (${failure})` : ''}`);
    return 1;
  } finally {
    for (const c of live) c.kill('SIGKILL');
    if (!opts.keep) rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(await main());
