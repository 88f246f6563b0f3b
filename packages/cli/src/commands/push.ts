/**
 * `garrison push`: push installation over SSH (the "Protect computers" wizard), then follow
 * it with one progress line per host; `garrison push list|show|cancel` for the jobs.
 *
 * Credentials come from standard input or a key file, never from the command line, where
 * other users could read them in the process list and the shell would keep them in history.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  cancelPushInstall,
  expandHostList,
  getPushInstall,
  listPushInstalls,
  PAGE_LIMIT_MAX,
  PUSH_MAX_PARALLEL,
  splitHostList,
  startPushInstall,
  type PushHostView,
  type PushInstallCreate,
  type PushInstallListQuery,
  type PushJobView,
} from '@garrison/protocol';
import { ApiError, UsageError, type Client } from '../client.ts';
import { act, type Io, type Opts, type RunState } from '../context.ts';
import { formatTime, keyValues, parseIntOption, table } from '../format.ts';
import { promptHidden, readStdin } from '../files.ts';
import { Groups } from '../resolve.ts';
import { progressBar } from '../watch.ts';

/** A line from a terminal without echo; else all of standard input less one trailing newline. */
async function readSecret(what: string, io: Io): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const v = (await readStdin()).replace(/\r?\n$/, '');
    if (!v) throw new UsageError(`the ${what} read from standard input is empty`);
    return v;
  }
  const value = await promptHidden(`${what}: `, io.err);
  if (!value) throw new UsageError(`the ${what} is empty`);
  return value;
}

function target(h: Pick<PushHostView, 'address' | 'port'>): string {
  return `${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}`;
}

/** "12 hosts: 8 succeeded, 1 failed, 2 running, 1 pending". */
export function summaryLine(job: PushJobView): string {
  const s = job.summary;
  const parts = (['succeeded', 'failed', 'running', 'pending'] as const).filter((k) => s[k] > 0).map((k) => `${s[k]} ${k}`);
  return `${s.total} host${s.total === 1 ? '' : 's'}: ${parts.join(', ') || 'none'}`;
}

/** One host's progress line: "10.0.0.5:22  [######----]   60%  running    install  running the installer". */
export function hostLine(h: PushHostView, width: number, bar: boolean): string {
  const step = h.state === 'pending' ? '' : (h.step ?? '');
  const exit = h.exitCode !== null && h.state === 'failed' ? ` (exit ${h.exitCode})` : '';
  const detail =
    h.state === 'failed' ? `${h.outcome}: ${h.message ?? ''}${exit}` : h.state === 'succeeded' ? (h.deviceId ? `device ${h.deviceId}` : '') : (h.steps.find((s) => s.name === h.step)?.message ?? '');
  return [target(h).padEnd(width), bar ? progressBar(h.percent, 100, 20) : null, `${String(Math.round(h.percent)).padStart(3)}%`, h.state.padEnd(9), step.padEnd(16), detail]
    .filter((x) => x !== null)
    .join('  ')
    .trimEnd();
}

const FINISHED = new Set(['succeeded', 'failed']);

/**
 * Follows a job until it ends. On a terminal: a line per finished host printed once, and
 * below it a block redrawn in place with the running hosts and a summary. Otherwise: a plain
 * line whenever a host changes state or step, which reads well in CI logs.
 */
async function watchJob(io: Io, client: Client, first: PushJobView, opts: { tty: boolean; quiet: boolean; intervalMs?: number }): Promise<PushJobView> {
  let job = first;
  const width = Math.max(...(job.hosts ?? []).map((h) => target(h).length), 8);
  const printed = new Set<number>();
  const lastKey = new Map<number, string>();
  let blockLines = 0;
  const rows = Math.max(10, (process.stdout.rows || 40) - 2);
  for (;;) {
    const hosts = job.hosts ?? [];
    if (!opts.quiet) {
      if (opts.tty) {
        let text = blockLines > 0 ? `\x1b[${blockLines}A\r` : '';
        const summary = `${progressBar(job.summary.succeeded + job.summary.failed, job.summary.total)} ${summaryLine(job)}`;
        let block: string[];
        if (hosts.length < rows) {
          // Every host fits on the screen: all of them, redrawn in place.
          block = [...hosts.map((h) => hostLine(h, width, true)), summary];
        } else {
          // Too many to redraw: finished hosts scroll up once, the running ones stay below.
          hosts.forEach((h, i) => {
            if (FINISHED.has(h.state) && !printed.has(i)) {
              printed.add(i);
              text += `\x1b[K${hostLine(h, width, true)}\n`;
            }
          });
          block = [...hosts.filter((h) => h.state === 'running').slice(0, rows - 1).map((h) => hostLine(h, width, true)), summary];
        }
        for (const l of block) text += `\x1b[K${l}\n`;
        // Clears what is left of a taller block drawn before.
        if (block.length < blockLines) text += '\x1b[J';
        blockLines = block.length;
        io.out(text);
      } else {
        hosts.forEach((h, i) => {
          const key = `${h.state}|${h.step}|${h.outcome}`;
          if (lastKey.get(i) === key) return;
          lastKey.set(i, key);
          if (h.state === 'pending') return;
          io.out(`${hostLine(h, width, false)}\n`);
        });
      }
    }
    if (job.state !== 'running') return job;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
    try {
      job = await client.api.call(getPushInstall, { params: { id: job.id } });
    } catch (err) {
      // A server restarting is waited out; anything else ends the watch.
      if (!(err instanceof ApiError) || !['UNAVAILABLE', 'INTERNAL', 'RATE_LIMITED'].includes(err.code)) throw err;
    }
  }
}

function failedTable(job: PushJobView): string {
  const failed = (job.hosts ?? []).filter((h) => h.state === 'failed');
  if (!failed.length) return '';
  return table(
    ['HOST', 'OUTCOME', 'STEP', 'EXIT', 'MESSAGE'],
    failed.map((h) => [target(h), h.outcome, h.step, h.exitCode, h.message]),
  );
}

function showJob(job: PushJobView, withOutput: boolean): string {
  const head = keyValues([
    ['id', job.id],
    ['state', job.state],
    ['group', job.groupPath],
    ['requested by', job.requestedBy],
    ['created', formatTime(job.createdAt)],
    ['finished', formatTime(job.finishedAt)],
    ['hosts', summaryLine(job)],
    ['options', `port ${job.options.port}, ${job.options.auth} login, ${job.options.parallel} at once, install dir ${job.options.installDir}${job.options.removeConflicting ? ', remove conflicting' : ''}`],
  ]);
  const hosts = job.hosts ?? [];
  const t = table(
    ['HOST', 'STATE', 'OUTCOME', 'STEP', '%', 'EXIT', 'DEVICE', 'HOST KEY', 'MESSAGE'],
    hosts.map((h) => [target(h), h.state, h.outcome, h.step, Math.round(h.percent), h.exitCode, h.deviceId, h.hostKeySha256, h.message]),
  );
  let out = `${head}\n${t}`;
  if (withOutput) {
    for (const h of hosts) {
      if (!h.outputTail) continue;
      out += `\n--- ${target(h)} output (tail) ---\n${h.outputTail}${h.outputTail.endsWith('\n') ? '' : '\n'}`;
    }
  }
  return out;
}

/** The request body from the options (reading the key file and standard input). */
export async function buildPushBody(io: Io, client: Client, opts: Opts): Promise<Record<string, unknown>> {
  if (!opts.group) throw new UsageError('--group is required: the group the hosts enrol into');
  if (!opts.hosts) throw new UsageError('--hosts is required: host names, addresses, ranges (10.0.0.5-20) or CIDR blocks, separated by commas');
  if (!opts.user) throw new UsageError('--user is required: the SSH login');
  if (!!opts.passwordStdin === !!opts.key) throw new UsageError('give --password-stdin or --key FILE (one of them)');
  if (opts.passphraseStdin && !opts.key) throw new UsageError('--passphrase-stdin goes with --key');
  const port = parseIntOption(opts.port, '--port', 1, 65535);
  const parallel = parseIntOption(opts.parallel, '--parallel', 1, PUSH_MAX_PARALLEL);
  const entries = splitHostList(String(opts.hosts));
  // Checked here too so that a typo is reported before any credential is read.
  const hosts = expandHostList(entries, port ? { defaultPort: port } : {});
  if (!hosts.ok) throw new UsageError(`--hosts: ${hosts.entry ? `"${hosts.entry}": ` : ''}${hosts.reason}`);
  const body: Record<string, unknown> = {
    groupId: await new Groups(client).id(opts.group),
    hosts: entries,
    username: opts.user,
    ...(port ? { port } : {}),
    ...(parallel ? { parallel } : {}),
    ...(opts.removeConflicting ? { removeConflicting: true } : {}),
    ...(opts.installDir ? { installDir: opts.installDir } : {}),
  };
  if (opts.key) {
    try {
      body.privateKey = await readFile(opts.key, 'utf8');
    } catch (err) {
      throw new UsageError(`--key: cannot read ${opts.key} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (opts.passphraseStdin) body.passphrase = await readSecret('passphrase', io);
  } else {
    body.password = await readSecret('password', io);
  }
  return body;
}

export function registerPushCommands(program: Command, state: RunState): void {
  const push = program
    .command('push')
    .description('Push installation over SSH: install the agent on hosts and enrol them into a group (credentials are used for this job only)')
    .option('--group <group>', 'the group the hosts enrol into (id or path)')
    .option('--hosts <list>', 'hosts, comma-separated: names, addresses, 10.0.0.5-20, 10.0.0.5-10.0.1.9, 10.0.0.0/24 (at most /22), each with an optional :port ([v6]:port)')
    .option('--port <n>', 'SSH port of hosts given without one (default 22)')
    .option('--user <name>', 'SSH login (root, or a user with sudo)')
    .option('--password-stdin', 'read the SSH password (also used for sudo) from standard input, or a hidden prompt on a terminal')
    .option('--key <file>', 'SSH private key file')
    .option('--passphrase-stdin', "read the private key's passphrase from standard input")
    .option('--parallel <n>', `hosts installed at once (default 10, at most ${PUSH_MAX_PARALLEL})`)
    .option('--remove-conflicting', "run a previous agent's uninstall.sh first")
    .option('--install-dir <dir>', 'install folder on the hosts (default /opt/garrison)')
    .option('--no-watch', 'start the job and print it, without following it')
    .addHelpText(
      'after',
      `
Examples:
  garrison push --group Servers --hosts 10.0.0.5-20,web1:2222 --user root --key ~/.ssh/id_ed25519
  echo "$PASSWORD" | garrison push --group Servers --hosts 10.0.1.0/24 --user admin --password-stdin --parallel 20

Exit code 1 when any host failed (or the job was cancelled or interrupted).`,
    );

  act(push, state, async (io, opts) => {
    const client = await io.client();
    const body = await buildPushBody(io, client, opts);
    // The body's shape is checked by the server; the options above only assemble it.
    let job = await client.api.call(startPushInstall, { body: body as PushInstallCreate });
    if (!opts.watch) {
      io.print(job, () => `push installation ${job.id} started: ${summaryLine(job)}\nfollow it with: garrison push show ${job.id}\n`);
      return 0;
    }
    if (!io.json) io.out(`push installation ${job.id} into "${job.groupPath}": ${job.summary.total} host${job.summary.total === 1 ? '' : 's'}, ${job.options.parallel} at once\n`);
    job = await watchJob(io, client, job, { tty: io.stdoutIsTTY && !io.json, quiet: io.json });
    if (io.json) {
      io.out(`${JSON.stringify(job, null, 2)}\n`);
    } else {
      io.out(`${job.state}: ${summaryLine(job)}\n`);
      const failed = failedTable(job);
      if (failed) io.out(`\n${failed}`);
    }
    return job.state === 'completed' && job.summary.failed === 0 ? 0 : 1;
  });

  act(
    push
      .command('list')
      .description('Push installations, newest first')
      .option('--state <state>', 'running, completed, cancelled or interrupted')
      .option('--group <group>', 'jobs into this group (and its subgroups)')
      .option('--limit <n>', 'at most this many (default 100; more are fetched page by page)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const groupId = opts.group ? await new Groups(client).id(opts.group) : undefined;
      const limit = parseIntOption(opts.limit, '--limit', 1, 100_000) ?? 100;
      const query: PushInstallListQuery = { ...(opts.state ? { state: opts.state as PushInstallListQuery['state'] } : {}), ...(groupId ? { groupId } : {}), limit: Math.min(limit, PAGE_LIMIT_MAX) };
      const jobs: PushJobView[] = [];
      for await (const j of client.api.each(listPushInstalls, { query })) {
        jobs.push(j);
        if (jobs.length >= limit) break;
      }
      io.print(jobs, () =>
        jobs.length
          ? table(
              ['ID', 'STATE', 'GROUP', 'HOSTS', 'SUCCEEDED', 'FAILED', 'BY', 'CREATED'],
              jobs.map((j) => [j.id, j.state, j.groupPath, j.summary.total, j.summary.succeeded, j.summary.failed, j.requestedBy, formatTime(j.createdAt)]),
            )
          : 'no push installations\n',
      );
    },
  );

  act(
    push.command('show').description("A push installation: each host's state, outcome, exit code and host key").argument('<id>', 'job id').option('--output', "also print each host's output tail"),
    state,
    async (io, opts, [id]) => {
      const job = await (await io.client()).api.call(getPushInstall, { params: { id: id! } });
      io.print(job, () => showJob(job, !!opts.output));
    },
  );

  act(push.command('cancel').description('Cancel a running push installation').argument('<id>', 'job id'), state, async (io, _opts, [id]) => {
    const job = await (await io.client()).api.call(cancelPushInstall, { params: { id: id! } });
    io.print(job, () => `push installation ${job.id} ${job.state}: ${summaryLine(job)}\n`);
  });
}
