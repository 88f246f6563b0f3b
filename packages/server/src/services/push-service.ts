/**
 * Push installation (the Sophos "Protect computers" wizard): the administrator gives hosts, a
 * target group and SSH credentials once; this service connects to each host over SSH, a
 * bounded number at a time, and per host runs the steps
 *
 *   connect → requirements → remove-conflicts (optional) → install → report
 *
 * recording each step, the installer's exit code and output tail, and one outcome code per
 * host (see PushOutcome). A failure on one host never touches the others: every host runs in
 * its own try/catch, and anything unexpected becomes INTERNAL_ERROR on that host alone.
 *
 * Credentials: they live in this process's memory while their job runs, in one object that
 * is dropped (and whose key buffer is zeroed) when the job ends. They are never written to
 * the database, events, logs or API answers; output and messages from hosts are scrubbed of
 * the password and passphrase (and of enrolment tokens) before they are stored, in case a
 * host echoes them. The username is treated as part of the credentials and not stored either.
 *
 * Jobs and host states are persisted so that any server instance can show them. The server
 * running a job holds a lease on it (storage/leases.ts), renewed by a LeaseKeeper while it
 * runs; a job whose lease ran out (its server crashed) is marked interrupted by the next server
 * to look, at start and then every half lease. A server that stops cleanly interrupts its own
 * jobs at once. A server that finds it lost a lease (it was cut off from the database for
 * longer than a lease, and another server marked the job interrupted) stops that job: the
 * other server has revoked its enrolment token and recorded its end.
 */
import type { Logger } from 'pino';
import {
  expandHostList,
  PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS,
  PUSH_DEFAULT_INSTALL_DIR,
  PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES,
  PUSH_DEFAULT_PARALLEL,
  PUSH_DEFAULT_PORT,
  PUSH_ENROLLED_MARKER,
  PUSH_MAX_HOSTS,
  PUSH_MAX_PARALLEL,
  PUSH_MIN_FREE_BYTES,
  PUSH_PROGRESS_MARKER,
  PUSH_STEPS,
  type Page,
  type PushHostView,
  type PushInstallCreate,
  type PushInstallListQuery,
  type PushJobOptions,
  type PushJobState,
  type PushJobSummary,
  type PushJobView,
  type PushOutcome,
  type PushStepName,
} from '@garrison/protocol';
import { AppError, notFound } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { Db } from '../storage/database.ts';
import { LeaseKeeper } from '../storage/leases.ts';
import { emptySummary, PushStore, type PushJobRecord } from '../storage/push-store.ts';
import { startLoop, type Loop } from '../scheduler/loop.ts';
import { allowed, authorize, inReach, Permission, reachList, reachOf, systemActor, actorName, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import { privateKeyProblem, SshFailure, SshSession, type SshLogin } from './ssh-session.ts';

/** Where the install command comes from (the installer URL feature implements it). */
export interface InstallCommandSource {
  /**
   * A one-line POSIX shell command that downloads the installer from this server (pinned
   * TLS), installs the agent as a service in installDir and enrols it into the group; prints
   * a line `garrison-install: enrolled device <deviceId>` on success. Creates one enrolment
   * token for the whole job. It may also print `garrison-install: progress <0-100>` lines,
   * which move the host's progress bar during the install step.
   */
  unixInstallCommand(actor: Actor, groupId: string, opts: { uses: number; expiresInMinutes: number; installDir: string }): Promise<{ command: string; tokenId: string }>;
}

/** What the service needs to revoke the job's enrolment token when the job ends. */
export interface TokenRevoker {
  revokeToken(actor: Actor, id: string): Promise<unknown>;
}

export interface PushServiceDeps {
  store: PushStore;
  catalog: Catalog;
  clock: Clock;
  events: EventService;
  log: Logger;
  installCommands?: InstallCommandSource | null;
  tokens?: TokenRevoker | null;
  /** How long a job's lease lasts (default 60 s); renewed every third of it. */
  leaseMs?: number;
}

/** Output kept per host: the end of it. */
const OUTPUT_TAIL_CHARS = 8000;
/** Host state changes other than step changes (output, progress) are written at most this often. */
const WRITE_INTERVAL_MS = 1000;
const PROBE_TIMEOUT_MS = 60_000;
const INTERRUPTED_MESSAGE = 'the server stopped while this host was pending or being installed';

interface Credentials {
  username: string;
  password: string | null;
  privateKey: Buffer | null;
  passphrase: string | null;
}

/** How commands get root: already root, sudo without a password, or sudo with the password on stdin. */
type Privilege = 'root' | 'sudo' | 'sudo-password';

interface LiveHost {
  idx: number;
  view: PushHostView;
  dirty: boolean;
  writing: Promise<void>;
}

interface LiveJob {
  record: PushJobRecord;
  hosts: LiveHost[];
  abort: AbortController;
  cancelRequested: boolean;
  /** The server is stopping: what is unfinished becomes INTERRUPTED, not CANCELLED. */
  stopping: boolean;
  done: Promise<void>;
  timer: NodeJS.Timeout | null;
}

/** A host's step failed: ends the host with this outcome. */
class HostFailure extends Error {
  readonly outcome: PushOutcome;
  readonly exitCode: number | null;
  constructor(outcome: PushOutcome, message: string, exitCode: number | null = null) {
    super(message);
    this.outcome = outcome;
    this.exitCode = exitCode;
  }
}

/** Single-quotes a string for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Prints key=value lines about the host; run through `sh -c` so the login shell does not matter. */
function probeScript(installDir: string): string {
  const dir = shellQuote(installDir);
  return [
    'LC_ALL=C; export LC_ALL',
    'echo "os=$(uname -s 2>/dev/null)"',
    'echo "arch=$(uname -m 2>/dev/null)"',
    'echo "uid=$(id -u 2>/dev/null)"',
    'if command -v curl >/dev/null 2>&1; then echo curl=yes; else echo curl=no; fi',
    'if command -v sudo >/dev/null 2>&1; then echo sudo=yes; else echo sudo=no; fi',
    `d=${dir}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done`,
    'echo "fsdir=$d"',
    `echo "freekb=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}')"`,
    `if [ -e ${dir}/uninstall.sh ]; then echo previous=yes; else echo previous=no; fi`,
  ].join('\n');
}

/**
 * Runs a command so that it dies with the SSH channel. Without a terminal, closing the channel
 * (cancel, timeout) or losing the connection does not stop a command, and OpenSSH refuses
 * signal requests for root logins. So the command runs in its own session (setsid, when the
 * host has it) with stdin from /dev/null, while a watchdog waits on the channel's stdin,
 * which we keep open: EOF there means the channel is gone, and it kills the command's process
 * group. (An asynchronous list's stdin is /dev/null unless redirected, hence fd 3.)
 *
 * The command itself is not in this text: it comes first on the channel's stdin, framed by
 * commandInput() (the install command holds an enrolment token, and a command line, the SSH
 * exec request's included, is visible to every user of the host in `ps`). The shell's `read`
 * takes it line by line without reading ahead, printf (a builtin) hands it to the command's
 * shell through a pipe, and `eval` runs it there: it is never an argument of any process.
 */
export function supervisedCommand(): string {
  const run = shellQuote('c=$(cat); exec </dev/null; eval "$c"');
  return [
    'IFS= read -r n || exit 97',
    "case $n in ''|*[!0-9]*) exit 97 ;; esac",
    "c=''",
    'while [ "$n" -gt 0 ]; do IFS= read -r l || exit 97; c="$c$l',
    '"; n=$((n - 1)); done',
    'exec 3<&0',
    `if command -v setsid >/dev/null 2>&1; then printf '%s' "$c" | setsid sh -c ${run} 3<&- & else printf '%s' "$c" | sh -c ${run} 3<&- & fi`,
    'pid=$!',
    '( read -r _ <&3; kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" ) >/dev/null 2>&1 &',
    'wd=$!',
    'exec 3<&-',
    'wait "$pid"',
    'status=$?',
    'kill "$wd" 2>/dev/null',
    'exit $status',
  ].join('\n');
}

/** What supervisedCommand() reads from stdin: the number of lines of the command, then its lines. */
export function commandInput(command: string): string {
  const lines = command.split('\n');
  return `${lines.length}\n${lines.join('\n')}\n`;
}

function parseProbe(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function formatBytes(kb: number): string {
  return kb >= 1024 * 1024 ? `${(kb / 1024 / 1024).toFixed(1)} GB` : `${Math.floor(kb / 1024)} MB`;
}

const SUPPORTED_ARCH = new Set(['x86_64', 'amd64']);

export class PushService {
  /** Set by the composition root (or a test); without it, starting a job answers UNAVAILABLE. */
  installCommands: InstallCommandSource | null;
  tokens: TokenRevoker | null;
  readonly #store: PushStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #log: Logger;
  readonly #leaseMs: number;
  readonly #owner = newId();
  readonly #live = new Map<string, LiveJob>();
  #leases: LeaseKeeper | null = null;
  #loops: Loop[] = [];
  #closing = false;

  constructor(deps: PushServiceDeps) {
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#log = deps.log;
    this.installCommands = deps.installCommands ?? null;
    this.tokens = deps.tokens ?? null;
    this.#leaseMs = deps.leaseMs ?? 60_000;
  }

  /** Builds the service on a database, interrupts jobs left running by a dead server, and starts its lease loops. */
  static async start(deps: Omit<PushServiceDeps, 'store'> & { db: Db }): Promise<PushService> {
    const service = new PushService({ ...deps, store: new PushStore(deps.db) });
    await service.interruptAbandoned();
    service.#leases = service.#leaseKeeper();
    service.#loops = [startLoop('push-interrupted-jobs', Math.max(1000, Math.floor(service.#leaseMs / 2)), () => service.interruptAbandoned(), deps.log)];
    return service;
  }

  // ------------------------------------------------------------------------------------------
  // Use cases
  // ------------------------------------------------------------------------------------------

  async create(actor: Actor, input: PushInstallCreate): Promise<PushJobView> {
    if (!this.#catalog.group(input.groupId)) throw notFound('group', input.groupId);
    authorize(actor, Permission.pushInstall, this.#catalog.tree, [input.groupId]);
    if (this.#closing) throw new AppError('UNAVAILABLE', 'the server is stopping');

    const credentials = this.#credentials(input);
    const port = input.port ?? PUSH_DEFAULT_PORT;
    const hosts = expandHostList(input.hosts, { defaultPort: port, max: PUSH_MAX_HOSTS });
    if (!hosts.ok) {
      throw new AppError('HOSTS_INVALID', hosts.entry ? `host list entry "${hosts.entry}": ${hosts.reason}` : hosts.reason, { entry: hosts.entry, reason: hosts.reason });
    }
    const source = this.installCommands;
    if (!source) throw new AppError('UNAVAILABLE', 'push installation is not available on this server: no installer command source is configured');

    const options: PushJobOptions = {
      port,
      parallel: Math.min(input.parallel ?? PUSH_DEFAULT_PARALLEL, PUSH_MAX_PARALLEL),
      removeConflicting: input.removeConflicting ?? false,
      installDir: input.installDir ?? PUSH_DEFAULT_INSTALL_DIR,
      auth: credentials.privateKey ? 'key' : 'password',
      connectTimeoutSeconds: input.connectTimeoutSeconds ?? PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS,
      installTimeoutMinutes: input.installTimeoutMinutes ?? PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES,
    };
    // The token must outlive the slowest plausible job: every batch running to its timeout.
    const batches = Math.ceil(hosts.hosts.length / options.parallel);
    const expiresInMinutes = Math.min(7 * 24 * 60, batches * (options.installTimeoutMinutes + Math.ceil(options.connectTimeoutSeconds / 60) + 2) + 10);
    const { command, tokenId } = await source.unixInstallCommand(actor, input.groupId, { uses: hosts.hosts.length, expiresInMinutes, installDir: options.installDir });

    const now = this.#clock.now().toISOString();
    const record: PushJobRecord = {
      id: newId(),
      groupId: input.groupId,
      requestedBy: actorName(actor),
      state: 'running',
      options,
      tokenId,
      hostCount: hosts.hosts.length,
      createdAt: now,
      finishedAt: null,
    };
    const live: LiveJob = {
      record,
      hosts: hosts.hosts.map((h, idx) => ({
        idx,
        dirty: false,
        writing: Promise.resolve(),
        view: {
          address: h.address,
          port: h.port,
          state: 'pending',
          outcome: null,
          message: null,
          step: null,
          percent: 0,
          steps: PUSH_STEPS.map((name) => ({ name, state: 'pending', startedAt: null, finishedAt: null, message: null })),
          exitCode: null,
          outputTail: null,
          deviceId: null,
          hostKeySha256: null,
          platform: null,
          startedAt: null,
          finishedAt: null,
        },
      })),
      abort: new AbortController(),
      cancelRequested: false,
      stopping: false,
      done: Promise.resolve(),
      timer: null,
    };
    try {
      await this.#store.insertJob(
        record,
        live.hosts.map((h) => h.view),
        { owner: this.#owner, expiresAt: new Date(Date.parse(now) + this.#leaseMs).toISOString() },
      );
    } catch (err) {
      await this.#revokeToken(record);
      throw err;
    }
    this.#live.set(record.id, live);
    this.#leases?.hold(record.id);
    this.#events.record({
      severity: 'info',
      kind: 'push.started',
      message: `push installation of ${record.hostCount} host${record.hostCount === 1 ? '' : 's'} into "${this.#catalog.tree.path(record.groupId)}" started`,
      actor: actorName(actor),
      groupId: record.groupId,
      data: { jobId: record.id, hosts: record.hostCount, parallel: options.parallel, auth: options.auth, removeConflicting: options.removeConflicting, installDir: options.installDir },
    });
    live.done = this.#run(live, credentials, command).catch((err: unknown) => this.#log.error({ err, jobId: record.id }, 'push installation job failed'));
    return this.#liveView(live, true);
  }

  async list(actor: Actor, query: PushInstallListQuery = {}): Promise<Page<PushJobView>> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    let groupIds = reachList(reach);
    if (query.groupId) {
      if (!this.#catalog.group(query.groupId) || !inReach(reach, query.groupId)) throw notFound('group', query.groupId);
      groupIds = this.#catalog.tree.descendants(query.groupId);
    }
    const page = await this.#store.pageJobs({ ...(query.state ? { state: query.state } : {}), ...(groupIds ? { groupIds } : {}) }, query);
    const jobs = page.items;
    const summaries = await this.#store.summaries(jobs.filter((j) => !this.#live.has(j.id)));
    return {
      ...page,
      items: jobs.map((j) => {
        const live = this.#live.get(j.id);
        return live ? this.#liveView(live, false) : this.#view(j, summaries.get(j.id) ?? emptySummary(j.hostCount));
      }),
    };
  }

  async get(actor: Actor, id: string): Promise<PushJobView> {
    const live = this.#live.get(id);
    const record = live?.record ?? (await this.#store.getJob(id));
    if (!record || !allowed(actor, Permission.read, this.#catalog.tree, [record.groupId])) throw notFound('push installation', id);
    if (live) return this.#liveView(live, true);
    const hosts = await this.#store.getHosts(id);
    return { ...this.#view(record, summarize(record.hostCount, hosts)), hosts };
  }

  /**
   * Cancels a running job: pending hosts are not started, running ones are disconnected (the
   * command on the host is sent SIGKILL where its SSH server honours signals).
   */
  async cancel(actor: Actor, id: string): Promise<PushJobView> {
    const live = this.#live.get(id);
    const record = live?.record ?? (await this.#store.getJob(id));
    if (!record || !allowed(actor, Permission.read, this.#catalog.tree, [record.groupId])) throw notFound('push installation', id);
    authorize(actor, Permission.pushInstall, this.#catalog.tree, [record.groupId]);
    if (!live) {
      if (record.state !== 'running') throw new AppError('CONFLICT', `push installation ${id} has already ended (${record.state})`);
      // Running on another server instance: that server sees its own jobs only.
      throw new AppError('CONFLICT', `push installation ${id} is running on another server instance; cancel it there`);
    }
    if (!live.cancelRequested) {
      live.cancelRequested = true;
      live.abort.abort();
      await this.#events.audit(actor, 'push.cancelled', `push installation ${id} cancelled`, { groupId: record.groupId, data: { jobId: id } });
    }
    await live.done;
    return this.get(actor, id);
  }

  /** Marks jobs whose server stopped vouching for them as interrupted. */
  async interruptAbandoned(): Promise<number> {
    const marked = await this.#store.interruptExpired(this.#clock.now().toISOString(), INTERRUPTED_MESSAGE);
    for (const job of marked) {
      this.#events.record({
        severity: 'warning',
        kind: 'push.finished',
        message: `push installation ${job.id} was interrupted: its server stopped while it ran`,
        groupId: job.groupId,
        data: { jobId: job.id, state: 'interrupted' },
      });
      await this.#revokeToken(job);
    }
    return marked.length;
  }

  /** Resolves when a job running on this server has ended (at once for any other). */
  async settled(id: string): Promise<void> {
    await this.#live.get(id)?.done;
  }

  /** Stops: running jobs are interrupted (their hosts disconnected), and this waits for them to be recorded. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#loops.map((l) => l.stop()));
    const jobs = [...this.#live.values()];
    for (const j of jobs) {
      j.stopping = true;
      j.abort.abort();
    }
    // Renewed until the last job is recorded: its hosts' writes may take a while.
    await Promise.all(jobs.map((j) => j.done));
    await this.#leases?.stop();
  }

  // ------------------------------------------------------------------------------------------
  // Running a job
  // ------------------------------------------------------------------------------------------

  #credentials(input: PushInstallCreate): Credentials {
    const hasPassword = input.password !== undefined;
    const hasKey = input.privateKey !== undefined;
    if (hasPassword === hasKey) throw new AppError('CREDENTIALS_INVALID', 'give exactly one of password or privateKey');
    if (input.passphrase !== undefined && !hasKey) throw new AppError('CREDENTIALS_INVALID', 'a passphrase goes with a private key');
    let privateKey: Buffer | null = null;
    if (hasKey) {
      privateKey = Buffer.from(input.privateKey!, 'utf8');
      const problem = privateKeyProblem(privateKey, input.passphrase);
      if (problem) {
        privateKey.fill(0);
        throw new AppError('CREDENTIALS_INVALID', problem);
      }
    }
    return { username: input.username, password: input.password ?? null, privateKey, passphrase: input.passphrase ?? null };
  }

  async #run(job: LiveJob, credentials: Credentials, command: string): Promise<void> {
    let creds: Credentials | null = credentials;
    try {
      let next = 0;
      const worker = async () => {
        for (;;) {
          if (job.abort.signal.aborted) return;
          const host = job.hosts[next++];
          if (!host) return;
          await this.#runHost(job, host, creds!, command);
        }
      };
      await Promise.all(Array.from({ length: Math.min(job.record.options.parallel, job.hosts.length) }, worker));
      // Hosts never started because the job was cancelled or the server is stopping.
      for (const host of job.hosts) {
        if (host.view.state !== 'pending') continue;
        const [outcome, message] = job.stopping ? (['INTERRUPTED', INTERRUPTED_MESSAGE] as const) : (['CANCELLED', 'the job was cancelled before this host started'] as const);
        this.#finishHost(job, host, outcome, message);
      }
    } finally {
      // The credentials are not needed any more: drop them, and zero what can be zeroed.
      creds?.privateKey?.fill(0);
      creds = null;
      credentials.password = null;
      credentials.passphrase = null;
      credentials.privateKey = null;
    }
    await this.#finishJob(job);
  }

  async #finishJob(job: LiveJob): Promise<void> {
    if (job.timer) clearTimeout(job.timer);
    job.timer = null;
    for (const h of job.hosts) this.#write(job, h);
    await Promise.all(job.hosts.map((h) => h.writing));
    const state: PushJobState = job.stopping ? 'interrupted' : job.cancelRequested ? 'cancelled' : 'completed';
    // Revoked before the job reads as finished, so that "finished" implies "its token no longer works".
    await this.#revokeToken(job.record);
    const now = this.#clock.now().toISOString();
    job.record.state = state;
    job.record.finishedAt = now;
    this.#leases?.forget(job.record.id);
    let held = true;
    try {
      held = await this.#store.finishJob(job.record.id, this.#owner, state, now);
    } catch (err) {
      this.#log.error({ err, jobId: job.record.id }, 'recording the end of a push installation failed');
    }
    this.#live.delete(job.record.id);
    // Another server took the job over (marked it interrupted, with its event): it is not ours to report.
    if (!held) {
      this.#log.warn({ jobId: job.record.id, state }, 'a push installation ended after another server marked it interrupted');
      return;
    }
    const s = summarize(job.record.hostCount, job.hosts.map((h) => h.view));
    this.#events.record({
      severity: s.failed > 0 || state !== 'completed' ? 'warning' : 'info',
      kind: 'push.finished',
      message: `push installation into "${this.#catalog.tree.path(job.record.groupId)}" ${state}: ${s.succeeded} of ${s.total} host${s.total === 1 ? '' : 's'} succeeded, ${s.failed} failed`,
      groupId: job.record.groupId,
      data: { jobId: job.record.id, state, total: s.total, succeeded: s.succeeded, failed: s.failed, outcomes: s.outcomes },
    });
  }

  /** The job's enrolment token is of no use once the job has ended; a leaked command stops working. */
  async #revokeToken(job: PushJobRecord): Promise<void> {
    if (!job.tokenId || !this.tokens) return;
    try {
      await this.tokens.revokeToken(systemActor, job.tokenId);
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'NOT_FOUND')) this.#log.warn({ err, jobId: job.id }, "revoking a push installation's enrolment token failed");
    }
  }

  async #runHost(job: LiveJob, host: LiveHost, creds: Credentials, command: string): Promise<void> {
    const h = host.view;
    const o = job.record.options;
    const signal = job.abort.signal;
    const scrub = scrubber(creds);
    let session: SshSession | null = null;
    h.state = 'running';
    h.startedAt = this.#clock.now().toISOString();
    try {
      // connect
      this.#stepStart(job, host, 'connect', `connecting to ${formatTarget(h.address, h.port)}`, 2);
      session = await SshSession.connect({ host: h.address, port: h.port }, creds satisfies SshLogin, { timeoutMs: o.connectTimeoutSeconds * 1000, signal });
      h.hostKeySha256 = session.hostKeySha256;
      this.#stepEnd(job, host, 'succeeded', `connected; host key ${session.hostKeySha256}`, 10);

      // requirements
      this.#stepStart(job, host, 'requirements', 'checking the platform, privileges, curl and free space', 12);
      const probe = await session.exec(`sh -c ${shellQuote(probeScript(o.installDir))}`, { timeoutMs: PROBE_TIMEOUT_MS, signal });
      const facts = parseProbe(probe.stdout);
      if (probe.exitCode !== 0 || !facts.os) throw new HostFailure('REQUIREMENTS_NOT_MET', `the host's shell could not run the checks (exit ${probe.exitCode ?? 'none'}): ${scrub(probe.stderr.trim()).slice(0, 300)}`);
      h.platform = `${facts.os} ${facts.arch ?? ''}`.trim();
      if (facts.os !== 'Linux' || !SUPPORTED_ARCH.has(facts.arch ?? '')) {
        throw new HostFailure('UNSUPPORTED_PLATFORM', `unsupported platform: ${h.platform} (push installation supports Linux x86_64)`);
      }
      const privilege = await this.#privilege(session, facts, creds, signal);
      if (facts.curl !== 'yes') throw new HostFailure('REQUIREMENTS_NOT_MET', 'curl is not installed (the installer downloads with it)');
      const freeKb = Number(facts.freekb);
      if (!Number.isFinite(freeKb) || facts.freekb === '') throw new HostFailure('REQUIREMENTS_NOT_MET', `cannot tell the free space under ${facts.fsdir ?? o.installDir}`);
      if (freeKb * 1024 < PUSH_MIN_FREE_BYTES) {
        throw new HostFailure('REQUIREMENTS_NOT_MET', `only ${formatBytes(freeKb)} free under ${facts.fsdir} (the agent needs ${PUSH_MIN_FREE_BYTES / 1024 / 1024} MB)`);
      }
      this.#stepEnd(job, host, 'succeeded', `${h.platform}, ${privilege === 'root' ? 'root' : privilege === 'sudo' ? 'sudo' : 'sudo with password'}, curl, ${formatBytes(freeKb)} free`, 20);

      // remove-conflicts
      if (!o.removeConflicting) this.#stepSkip(job, host, 'remove-conflicts', 'not requested');
      else if (facts.previous !== 'yes') this.#stepSkip(job, host, 'remove-conflicts', `no previous agent in ${o.installDir}`, 'succeeded');
      else {
        this.#stepStart(job, host, 'remove-conflicts', `running ${o.installDir}/uninstall.sh`, 22);
        const r = await this.#privileged(session, privilege, `sh ${shellQuote(`${o.installDir}/uninstall.sh`)}`, creds, {
          timeoutMs: o.installTimeoutMinutes * 60_000,
          signal,
          onOutput: (text) => this.#output(job, host, text, scrub),
        });
        if (r.exitCode !== 0) throw new HostFailure('CONFLICT_REMOVAL_FAILED', `the previous agent's uninstall.sh ${exitText(r)}`, r.exitCode);
        this.#stepEnd(job, host, 'succeeded', 'previous agent removed', 30);
      }

      // install
      this.#stepStart(job, host, 'install', 'running the installer', 30);
      let deviceId: string | null = null;
      let line = '';
      const onLine = (l: string) => {
        if (l.startsWith(PUSH_ENROLLED_MARKER)) deviceId = l.slice(PUSH_ENROLLED_MARKER.length).trim().split(/\s+/)[0] || null;
        else if (l.startsWith(PUSH_PROGRESS_MARKER)) {
          const p = Number(l.slice(PUSH_PROGRESS_MARKER.length).trim());
          if (Number.isFinite(p)) this.#progress(job, host, 30 + (Math.max(0, Math.min(100, p)) * 65) / 100);
        }
      };
      const r = await this.#privileged(session, privilege, command, creds, {
        timeoutMs: o.installTimeoutMinutes * 60_000,
        signal,
        onOutput: (text, stream) => {
          this.#output(job, host, text, scrub);
          if (stream !== 'stdout') return;
          line += text;
          let nl: number;
          while ((nl = line.indexOf('\n')) >= 0) {
            onLine(line.slice(0, nl).replace(/\r$/, ''));
            line = line.slice(nl + 1);
          }
          if (line.length > 4096) line = line.slice(-4096);
        },
      });
      if (line) onLine(line);
      h.exitCode = r.exitCode;
      if (r.exitCode !== 0) throw new HostFailure('INSTALL_FAILED', `the installer ${exitText(r)}`, r.exitCode);
      if (!deviceId) throw new HostFailure('INSTALL_FAILED', `the installer exited 0 but did not print "${PUSH_ENROLLED_MARKER.trim()} <id>"`, 0);
      this.#stepEnd(job, host, 'succeeded', 'installer exited 0', 95);

      // report
      this.#stepStart(job, host, 'report', 'recording the enrolled device', 96);
      h.deviceId = deviceId;
      const device = this.#catalog.device(deviceId);
      const where = device ? `"${this.#catalog.tree.path(device.groupId)}"` : 'this server (not yet seen by this instance)';
      this.#stepEnd(job, host, 'succeeded', `enrolled as device ${deviceId} in ${where}`, 100);
      this.#finishHost(job, host, 'SUCCEEDED', `installed and enrolled as device ${deviceId}`);
    } catch (err) {
      const [outcome, message, exitCode] = this.#failureOf(job, h.step, err);
      if (outcome === 'INTERNAL_ERROR') this.#log.error({ err, jobId: job.record.id, host: formatTarget(h.address, h.port) }, 'push installation on a host failed unexpectedly');
      if (exitCode !== null) h.exitCode = exitCode;
      this.#finishHost(job, host, outcome, scrub(message));
    } finally {
      session?.close();
    }
  }

  #failureOf(job: LiveJob, step: PushStepName | null, err: unknown): [PushOutcome, string, number | null] {
    if (err instanceof HostFailure) return [err.outcome, err.message, err.exitCode];
    if (err instanceof SshFailure) {
      switch (err.kind) {
        case 'auth':
          return ['AUTH_FAILED', err.message, null];
        case 'unreachable':
          return ['UNREACHABLE', err.message, null];
        case 'timeout':
          return ['TIMEOUT', step === 'connect' ? err.message : `${step}: ${err.message}`, null];
        case 'connection-lost':
          return ['CONNECTION_LOST', `${err.message} during ${step ?? 'the job'}`, null];
        case 'cancelled':
          return job.stopping ? ['INTERRUPTED', INTERRUPTED_MESSAGE, null] : ['CANCELLED', `cancelled during ${step ?? 'the job'}`, null];
        case 'failed':
          return [step === 'install' ? 'INSTALL_FAILED' : step === 'remove-conflicts' ? 'CONFLICT_REMOVAL_FAILED' : 'REQUIREMENTS_NOT_MET', err.message, null];
      }
    }
    return ['INTERNAL_ERROR', 'an unexpected error on the server; see its log', null];
  }

  /** Root, sudo without a password, or sudo with the login password; else REQUIREMENTS_NOT_MET. */
  async #privilege(session: SshSession, facts: Record<string, string>, creds: Credentials, signal: AbortSignal): Promise<Privilege> {
    if (facts.uid === '0') return 'root';
    if (facts.sudo !== 'yes') throw new HostFailure('REQUIREMENTS_NOT_MET', 'the user is not root and sudo is not installed');
    const nopasswd = await session.exec('sudo -n true', { timeoutMs: PROBE_TIMEOUT_MS, signal });
    if (nopasswd.exitCode === 0) return 'sudo';
    if (!creds.password) throw new HostFailure('REQUIREMENTS_NOT_MET', 'the user is not root and sudo asks for a password (log in with a password, or allow passwordless sudo)');
    const withPassword = await session.exec("sudo -k -S -p '' true", { timeoutMs: PROBE_TIMEOUT_MS, signal, stdin: `${creds.password}\n` });
    if (withPassword.exitCode === 0) return 'sudo-password';
    throw new HostFailure('REQUIREMENTS_NOT_MET', 'the user is not root and sudo refused it (wrong password or not in sudoers)');
  }

  /** Runs a long command (uninstall, install) as root, supervised so that it dies with the channel. */
  #privileged(session: SshSession, privilege: Privilege, command: string, creds: Credentials, options: Parameters<SshSession['exec']>[1]) {
    // The command goes on stdin (see supervisedCommand): the install command holds the job's
    // enrolment token, which must not show in the host's process list.
    const sh = `sh -c ${shellQuote(supervisedCommand())}`;
    const o = { ...options, keepStdinOpen: true, stdin: commandInput(command) };
    if (privilege === 'root') return session.exec(sh, o);
    if (privilege === 'sudo') return session.exec(`sudo -n ${sh}`, o);
    // -k: always read the password, so that it never reaches the command's stdin instead.
    // sudo reads the password line byte by byte: the command's lines after it stay for sh.
    return session.exec(`sudo -k -S -p '' ${sh}`, { ...o, stdin: `${creds.password ?? ''}\n${o.stdin}` });
  }

  // ------------------------------------------------------------------------------------------
  // Host state
  // ------------------------------------------------------------------------------------------

  #step(host: LiveHost, name: PushStepName) {
    return host.view.steps.find((s) => s.name === name)!;
  }
  #stepStart(job: LiveJob, host: LiveHost, name: PushStepName, message: string, percent: number): void {
    const s = this.#step(host, name);
    s.state = 'running';
    s.startedAt = this.#clock.now().toISOString();
    s.message = message;
    host.view.step = name;
    host.view.percent = Math.max(host.view.percent, percent);
    this.#write(job, host);
  }
  #stepEnd(job: LiveJob, host: LiveHost, state: 'succeeded' | 'failed', message: string, percent?: number): void {
    const s = this.#step(host, host.view.step!);
    s.state = state;
    s.finishedAt = this.#clock.now().toISOString();
    s.message = message;
    if (percent !== undefined) host.view.percent = Math.max(host.view.percent, percent);
    this.#write(job, host);
  }
  #stepSkip(job: LiveJob, host: LiveHost, name: PushStepName, message: string, state: 'skipped' | 'succeeded' = 'skipped'): void {
    const s = this.#step(host, name);
    const now = this.#clock.now().toISOString();
    Object.assign(s, { state, startedAt: now, finishedAt: now, message });
    host.view.step = name;
    this.#write(job, host);
  }
  #progress(job: LiveJob, host: LiveHost, percent: number): void {
    const p = Math.round(percent);
    if (p <= host.view.percent) return;
    host.view.percent = p;
    this.#writeSoon(job, host);
  }
  /** Scrubs the whole tail rather than the chunk: a secret may arrive split over two chunks. */
  #output(job: LiveJob, host: LiveHost, text: string, scrub: (t: string) => string): void {
    const tail = (host.view.outputTail ?? '') + text;
    host.view.outputTail = scrub(tail.length > OUTPUT_TAIL_CHARS ? tail.slice(-OUTPUT_TAIL_CHARS) : tail);
    this.#writeSoon(job, host);
  }

  #finishHost(job: LiveJob, host: LiveHost, outcome: PushOutcome, message: string): void {
    const h = host.view;
    const now = this.#clock.now().toISOString();
    if (h.step) {
      const s = this.#step(host, h.step);
      if (s.state === 'running') Object.assign(s, { state: outcome === 'SUCCEEDED' ? 'succeeded' : 'failed', finishedAt: now, message });
    }
    h.state = outcome === 'SUCCEEDED' ? 'succeeded' : 'failed';
    h.outcome = outcome;
    h.message = message;
    h.finishedAt = now;
    this.#write(job, host);
    const target = formatTarget(h.address, h.port);
    const data = { jobId: job.record.id, address: h.address, port: h.port, outcome, step: h.step, exitCode: h.exitCode, hostKeySha256: h.hostKeySha256 };
    if (outcome === 'SUCCEEDED') {
      this.#events.record({ severity: 'info', kind: 'push.host.succeeded', message: `push installation on ${target} succeeded: device ${h.deviceId}`, groupId: job.record.groupId, deviceId: h.deviceId, data });
    } else {
      this.#events.record({
        severity: outcome === 'CANCELLED' || outcome === 'INTERRUPTED' ? 'warning' : 'error',
        kind: 'push.host.failed',
        message: `push installation on ${target} failed: ${outcome}: ${message}`,
        groupId: job.record.groupId,
        data,
      });
    }
  }

  /** Writes the host's state now (after the writes before it, so that they land in order). */
  #write(job: LiveJob, host: LiveHost): void {
    host.dirty = true;
    host.writing = host.writing.then(async () => {
      if (!host.dirty) return;
      host.dirty = false;
      try {
        await this.#store.updateHost(job.record.id, host.idx, structuredClone(host.view));
      } catch (err) {
        this.#log.error({ err, jobId: job.record.id }, 'recording a push installation host state failed');
      }
    });
  }
  /** Output and progress: written with the next step change, or within WRITE_INTERVAL_MS. */
  #writeSoon(job: LiveJob, host: LiveHost): void {
    host.dirty = true;
    job.timer ??= setTimeout(() => {
      job.timer = null;
      for (const h of job.hosts) if (h.dirty) this.#write(job, h);
    }, WRITE_INTERVAL_MS);
  }

  #leaseKeeper(): LeaseKeeper {
    return new LeaseKeeper({
      name: 'push-lease-renewal',
      owner: this.#owner,
      leaseMs: this.#leaseMs,
      renew: (ids, owner, until) => this.#store.renewLeases(ids, owner, until),
      clock: this.#clock,
      log: this.#log,
      onLost: (ids) => {
        for (const id of ids) {
          const job = this.#live.get(id);
          if (!job) continue;
          job.stopping = true;
          job.abort.abort();
        }
      },
    });
  }

  // ------------------------------------------------------------------------------------------
  // Views
  // ------------------------------------------------------------------------------------------

  #view(record: PushJobRecord, summary: PushJobSummary): PushJobView {
    return {
      id: record.id,
      groupId: record.groupId,
      groupPath: this.#catalog.tree.path(record.groupId),
      requestedBy: record.requestedBy,
      state: record.state,
      options: { ...record.options },
      enrolmentTokenId: record.tokenId,
      summary,
      createdAt: record.createdAt,
      finishedAt: record.finishedAt,
    };
  }
  #liveView(job: LiveJob, withHosts: boolean): PushJobView {
    const hosts = job.hosts.map((h) => h.view);
    const v = this.#view(job.record, summarize(job.record.hostCount, hosts));
    return withHosts ? { ...v, hosts: structuredClone(hosts) } : v;
  }
}

function summarize(total: number, hosts: readonly PushHostView[]): PushJobSummary {
  const s = emptySummary(total);
  for (const h of hosts) {
    s[h.state]++;
    if (h.outcome) s.outcomes[h.outcome] = (s.outcomes[h.outcome] ?? 0) + 1;
  }
  return s;
}

function formatTarget(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

function exitText(r: { exitCode: number | null; signal: string | null }): string {
  if (r.exitCode !== null) return `exited with code ${r.exitCode}`;
  return r.signal ? `was killed by signal ${r.signal}` : 'ended without an exit status';
}

/**
 * Removes the job's secrets from text that came from a host, in case it echoed them; and
 * enrolment tokens (`get.` + 43 base64url characters), which an installer run with `set -x`
 * would print. Secrets shorter than 4 characters are left alone: masking every "ab" would
 * garble the output more than it protects.
 */
function scrubber(creds: Credentials): (text: string) => string {
  const secrets = [creds.password, creds.passphrase].filter((s): s is string => !!s && s.length >= 4);
  return (text) => {
    let t = text.replace(/\bget\.[A-Za-z0-9_-]{20,}/g, 'get.***');
    for (const s of secrets) t = t.replaceAll(s, '***');
    return t;
  };
}
