/**
 * The sample scanner service: a long-running process that scans files for byte signatures.
 *
 *   node service.ts --home DIR
 *
 * DIR is the product's folder on the device (see paths.ts). The service writes
 * DIR/run/scanner.pid, listens on DIR/run/scanner.sock (0600; a named pipe on Windows),
 * loads its signatures from DIR/definitions/definitions.json (see definitions.ts) and its
 * configuration from DIR/config.json (config.ts: real-time protection, exclusions, the
 * action on a detection, the quarantine). It exits cleanly on SIGTERM, SIGINT or a
 * `shutdown` request, removing its pid file and socket; SIGHUP reloads the definitions and
 * the configuration.
 *
 * Protocol: newline-delimited JSON, one object per line, both ways. Every request carries
 * an `id` (a string or a number) chosen by the client; every answer repeats it.
 *
 *   { id, op: "ping" }     → { id, ok: true, version, definitionsVersion, signatures, pid, scans, definitionsError?,
 *                               config, configSource: "file"|"none", configError?, realTime: { enabled, watching, waiting, … } }
 *   { id, op: "scan", paths: [absolute paths], maxFileBytes?: N }
 *                          → { id, progress: P }                       0-100, files done / files found
 *                            { id, detection: { path, signature, action, quarantineId? } }
 *                                                                      one per file and signature; action is
 *                                                                      reported, quarantined or quarantine-failed
 *                            { id, problem: { path, message } }        a file or folder that could not be read
 *                            { id, done: true, scanned, detections, errors, skipped, cancelled, definitionsVersion }
 *   { id, op: "cancel", target: scanId }   → { id, ok: true, cancelled: boolean }
 *   { id, op: "reload" }   → { id, ok: true, definitionsVersion, signatures, changed }
 *   { id, op: "reconfigure" } → { id, ok: true, config, configSource, notes: [sentences] }   reads DIR/config.json now
 *   { id, op: "shutdown" } → { id, ok: true }, then the service exits
 *   anything refused       → { id, error: { code, message } }   (id null when the request had none)
 *
 * Why it is built this way:
 * - This file and what it imports (definitions.ts, paths.ts) are copied as they are into the
 *   application package, so they use node:* only and run on the agent's own Node.
 * - Definitions are checked at the start of every scan (inode, size and mtime of the file)
 *   and reloaded when they changed, so a definitions package takes effect without a
 *   request; `reload` (and SIGHUP) forces it. A file that does not validate is refused as
 *   a whole and the last good set stays in use; ping reports the set in use and, when the
 *   file was refused, why (`definitionsError`). A scan with no signatures at all is
 *   refused (`no_definitions`): it would report "clean" without looking.
 * - Up to MAX_CONCURRENT_SCANS scans run at once (`busy` beyond); a file larger than
 *   `maxFileBytes` is skipped (counted in `skipped`), not truncated.
 * - Files are read in CHUNK_BYTES chunks into one buffer whose front holds the last
 *   (longest pattern - 1) bytes of the previous chunk, so memory does not grow with file
 *   size and a pattern spanning a chunk boundary is still found, without re-reporting one
 *   found earlier (a signature is reported at most once per file).
 * - Progress is files done / files found, so the tree is listed before it is scanned. The
 *   first progress (0) is sent at once, later ones at most every PROGRESS_INTERVAL_MS, and a
 *   final 100 just before `done`.
 * - A scan belongs to its connection: `cancel` finds it there, and a closed connection
 *   cancels its scans (no one would hear the result). Cancellation is checked between
 *   chunks and files, so it takes effect within one chunk read.
 * - The top-level paths of a scan are followed if they are symbolic links (the
 *   administrator named them; /tmp is one on macOS); links met inside folders are not.
 *   Only regular files are read: a FIFO or a device could block forever or never end.
 *   /proc, /sys and /dev are not entered when reached by walking from "/".
 * - Configuration: DIR/config.json is read at start, when it changes (a watch on DIR, so a
 *   local user's hand edit takes effect too) and on `reconfigure` (what the agent sends
 *   after applying a policy). A file that does not validate is refused as a whole and the
 *   configuration in use stays (`configError` in ping; `config_invalid` to reconfigure).
 *   Without a file the service runs UNMANAGED_CONFIG: it reports and moves nothing.
 * - Exclusions, maxFileBytes (the smaller of the task's and the policy's) and the action
 *   on a detection apply to on-demand scans as to real-time protection (real-time.ts); the
 *   quarantine folder is never scanned. Real-time detections are appended to the journal
 *   (journal.ts), from which the agent half delivers them to the central event log.
 * - Writes respect back-pressure: a client that stops reading stalls its scan instead of
 *   filling the service's memory.
 * - A malformed request gets an error answer and never ends the process; a line longer
 *   than MAX_LINE_BYTES ends that connection, since no framing can be trusted after it.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, mkdir, open, readdir, readFile, realpath, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { constants, realpathSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalConfig, compileExclusions, ConfigError, isWithin, parseConfig, UNMANAGED_CONFIG, type ScannerConfig } from './config.ts';
import { DefinitionsError, parseDefinitions, type CompiledDefinitions } from './definitions.ts';
import { JournalWriter, type DetectionActionTaken } from './journal.ts';
import { matchFile } from './matcher.ts';
import { scannerPaths, type ScannerPaths } from './paths.ts';
import { purgeQuarantine, quarantineFile, type QuarantineRecord } from './quarantine.ts';
import { RealTimeProtection } from './real-time.ts';

export { CHUNK_BYTES } from './matcher.ts';
export const PROGRESS_INTERVAL_MS = 250;
export const MAX_LINE_BYTES = 1024 * 1024;
export const MAX_SCAN_PATHS = 1000;
export const MAX_CONCURRENT_SCANS = 4;
/** Problems reported per scan; more are counted in `errors` only. */
export const MAX_PROBLEMS_PER_SCAN = 100;

export const ErrorCode = {
  badJson: 'bad_json',
  badRequest: 'bad_request',
  unknownOp: 'unknown_op',
  duplicateId: 'duplicate_id',
  busy: 'busy',
  tooLarge: 'too_large',
  noDefinitions: 'no_definitions',
  definitionsInvalid: 'definitions_invalid',
  configInvalid: 'config_invalid',
  shuttingDown: 'shutting_down',
  internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

type RequestId = string | number;

class RequestError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const PSEUDO_FILESYSTEMS = process.platform === 'linux' ? new Set(['/proc', '/sys', '/dev']) : new Set<string>();
/** When descendants are opened: do not follow a link that replaced a file since it was listed. */
const OPEN_NOFOLLOW = process.platform === 'win32' ? constants.O_RDONLY : constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** How often quarantined files past their retention are purged. */
const PURGE_INTERVAL_MS = 60 * 60 * 1000;
/** A burst of events on config.json is read once, this long after the last. */
const CONFIG_DEBOUNCE_MS = 50;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} sample-scanner[${process.pid}] ${message}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The service's own version: the `version` of the package.json beside this file (written by the package build). */
async function ownVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string' && pkg.version) return pkg.version;
  } catch {
    // running from the repository: no package.json beside us
  }
  return '0.0.0-dev';
}

/** The loaded signature set, reloaded when the file changes (size, mtime or inode). */
class DefinitionsStore {
  readonly #file: string;
  #current: CompiledDefinitions | null = null;
  #identity = '';
  #lastError: string | null = null;

  constructor(file: string) {
    this.#file = file;
  }

  get current(): CompiledDefinitions | null {
    return this.#current;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Reloads when the file changed since the last load (or `force`). Returns whether a new set was loaded; throws DefinitionsError on a bad file. */
  async refresh(force = false): Promise<boolean> {
    let identity: string;
    try {
      const st = await stat(this.#file);
      identity = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#lastError = `no definitions file at ${this.#file}`;
        if (force) throw new DefinitionsError(this.#lastError);
        return false;
      }
      throw err;
    }
    if (!force && identity === this.#identity) return false;
    this.#identity = identity;
    try {
      const next = parseDefinitions(await readFile(this.#file, 'utf8'));
      const changed = next.version !== this.#current?.version || next.signatures.length !== this.#current?.signatures.length;
      this.#current = next;
      this.#lastError = null;
      log(`definitions ${next.version} loaded (${next.signatures.length} signatures)`);
      return changed;
    } catch (err) {
      this.#lastError = `definitions file refused, keeping ${this.#current ? this.#current.version : 'none'}: ${(err as Error).message}`;
      log(this.#lastError);
      throw err instanceof DefinitionsError ? err : new DefinitionsError((err as Error).message);
    }
  }

  /** refresh() for a scan or a ping: a bad file is logged and the previous set kept. */
  async refreshQuietly(): Promise<void> {
    try {
      await this.refresh();
    } catch {
      // logged by refresh(); the last good set stays in use
    }
  }
}

/** The configuration in use, reloaded when DIR/config.json changes. */
class ConfigStore {
  readonly #file: string;
  #current: ScannerConfig = structuredClone(UNMANAGED_CONFIG) as ScannerConfig;
  #source: 'file' | 'none' = 'none';
  #identity = '';
  #lastError: string | null = null;

  constructor(file: string) {
    this.#file = file;
  }

  get current(): ScannerConfig {
    return this.#current;
  }

  get source(): 'file' | 'none' {
    return this.#source;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Reloads when the file changed (or `force`); resolves with whether the configuration in use changed. Throws ConfigError on a bad file. */
  async refresh(force = false): Promise<boolean> {
    let text: string | null;
    let identity: string;
    try {
      const st = await stat(this.#file);
      identity = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (!force && identity === this.#identity) return false;
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      identity = 'none';
      text = null;
    }
    this.#identity = identity;
    const before = canonicalConfig(this.#current);
    if (text === null) {
      this.#current = structuredClone(UNMANAGED_CONFIG) as ScannerConfig;
      this.#source = 'none';
      this.#lastError = null;
    } else {
      try {
        this.#current = parseConfig(text);
        this.#source = 'file';
        this.#lastError = null;
      } catch (err) {
        this.#lastError = `configuration file refused, keeping the configuration in use: ${(err as Error).message}`;
        log(this.#lastError);
        throw err instanceof ConfigError ? err : new ConfigError((err as Error).message);
      }
    }
    const changed = canonicalConfig(this.#current) !== before;
    if (changed) log(`configuration ${this.#source === 'file' ? 'loaded' : 'absent: unmanaged defaults'}: ${canonicalConfig(this.#current)}`);
    return changed;
  }
}

/** What a scan needs of the service beyond its definitions: the configuration when it began, and the quarantine. */
interface ScanPolicy {
  config: ScannerConfig;
  excluded: (path: string) => boolean;
  quarantineFolder: string;
  quarantine(fh: FileHandle, st: Stats, path: string, signatures: string[], source: 'on-demand' | 'real-time'): Promise<QuarantineRecord>;
}

interface ScanRequest {
  id: RequestId;
  paths: string[];
  maxFileBytes?: number;
}

interface ScanCounters {
  scanned: number;
  detections: number;
  errors: number;
  skipped: number;
}

/** One scan on one connection. */
class ScanJob {
  readonly request: ScanRequest;
  readonly #conn: Connection;
  #cancelled = false;
  #problems = 0;
  #lastProgress = -1;
  #lastProgressAt = 0;
  readonly counters: ScanCounters = { scanned: 0, detections: 0, errors: 0, skipped: 0 };

  constructor(request: ScanRequest, conn: Connection) {
    this.request = request;
    this.#conn = conn;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  cancel(): void {
    this.#cancelled = true;
  }

  /** Scans with `defs` (the set loaded when the scan began) and ends with a `done` message. */
  async run(defs: CompiledDefinitions, policy: ScanPolicy): Promise<void> {
    const { id } = this.request;
    await this.#progress(0, true);
    const files = await this.#list(policy);
    for (let i = 0; i < files.length && !this.#cancelled; i++) {
      await this.#scanFile(files[i][0], files[i][1], defs, policy);
      await this.#progress(Math.floor(((i + 1) * 100) / files.length), false);
    }
    if (!this.#cancelled) await this.#progress(100, true);
    await this.#conn.send({ id, done: true, ...this.counters, cancelled: this.#cancelled, definitionsVersion: defs.version });
  }

  async #progress(percent: number, force: boolean): Promise<void> {
    const now = Date.now();
    if (percent <= this.#lastProgress) return;
    if (!force && now - this.#lastProgressAt < PROGRESS_INTERVAL_MS) return;
    this.#lastProgress = percent;
    this.#lastProgressAt = now;
    await this.#conn.send({ id: this.request.id, progress: percent });
  }

  async #problem(path: string, err: unknown): Promise<void> {
    this.counters.errors++;
    if (this.#problems >= MAX_PROBLEMS_PER_SCAN) return;
    this.#problems++;
    await this.#conn.send({ id: this.request.id, problem: { path, message: errorText(err) } });
  }

  /** Every regular file under the scan's paths, each once, with whether to follow it if it is a link. */
  async #list(policy: ScanPolicy): Promise<[string, boolean][]> {
    const files = new Map<string, boolean>();
    // Excluded paths and the quarantine are not scanned; each excluded entry counts as skipped.
    const passed = (path: string): boolean => {
      if (isWithin(path, policy.quarantineFolder)) return false;
      if (!policy.excluded(path)) return true;
      this.counters.skipped++;
      return false;
    };
    const walk = async (dir: string): Promise<void> => {
      if (this.#cancelled) return;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        await this.#problem(dir, err);
        return;
      }
      // In name order, so that a scan's order (and its progress) is the same every time.
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        const full = join(dir, e.name);
        if ((e.isDirectory() || e.isFile()) && !passed(full)) continue;
        if (e.isDirectory()) {
          if (!PSEUDO_FILESYSTEMS.has(full)) await walk(full);
        } else if (e.isFile()) {
          if (!files.has(full)) files.set(full, false);
        }
        // symbolic links, sockets, FIFOs and devices are not scanned
      }
    };
    for (const p of this.request.paths) {
      if (this.#cancelled) break;
      try {
        if (!passed(resolve(p))) continue;
        const st = await stat(p); // follows a link: the administrator named this path
        if (st.isDirectory()) await walk(resolve(p));
        else if (st.isFile()) files.set(resolve(p), true);
        else this.counters.skipped++;
      } catch (err) {
        await this.#problem(p, err);
      }
    }
    return [...files];
  }

  async #scanFile(path: string, follow: boolean, defs: CompiledDefinitions, policy: ScanPolicy): Promise<void> {
    let fh;
    try {
      fh = await open(path, follow ? constants.O_RDONLY | (process.platform === 'win32' ? 0 : constants.O_NONBLOCK) : OPEN_NOFOLLOW);
    } catch (err) {
      await this.#problem(path, err);
      return;
    }
    let found: string[] = [];
    let action: DetectionActionTaken = 'reported';
    let quarantineId: string | undefined;
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        this.counters.skipped++;
        return;
      }
      const limits = [this.request.maxFileBytes, policy.config.maxFileBytes ?? undefined].filter((n): n is number => n !== undefined);
      if (limits.length > 0 && st.size > Math.min(...limits)) {
        this.counters.skipped++;
        return;
      }
      found = (await matchFile(fh, defs, { stop: () => this.#cancelled })).found;
      if (found.length > 0 && policy.config.detectionAction === 'quarantine') {
        try {
          // A top-level link the administrator named is followed: the file it points to goes.
          const real = follow ? await realpath(path) : path;
          quarantineId = (await policy.quarantine(fh, st, real, found, 'on-demand')).id;
          action = 'quarantined';
        } catch (err) {
          action = 'quarantine-failed';
          log(`cannot quarantine ${path}: ${errorText(err)}`);
        }
      }
    } catch (err) {
      await this.#problem(path, err);
      return;
    } finally {
      await fh.close().catch(() => {});
    }
    // A file cut short by a cancel is not counted as scanned, but what it showed is reported.
    if (!this.#cancelled) this.counters.scanned++;
    for (const signature of found) {
      this.counters.detections++;
      await this.#conn.send({ id: this.request.id, detection: { path, signature, action, ...(quarantineId ? { quarantineId } : {}) } });
    }
  }
}

/** One client connection: splits lines, answers requests, owns its scans. */
class Connection {
  readonly #socket: Socket;
  readonly #service: ScannerService;
  readonly #scans = new Map<string, ScanJob>();
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(socket: Socket, service: ScannerService) {
    this.#socket = socket;
    this.#service = service;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {}); // a client going away is not our error; 'close' follows
    socket.on('close', () => {
      for (const scan of this.#scans.values()) scan.cancel();
      service.connections.delete(this);
    });
  }

  get scans(): Iterable<ScanJob> {
    return this.#scans.values();
  }

  /** Writes one message; resolves when the socket can take more (or is gone). */
  send(message: Record<string, unknown>): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return Promise.resolve();
    if (socket.write(`${JSON.stringify(message)}\n`)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.once('close', () => resolve());
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), 1000).unref();
    });
  }

  #onData(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      const line = Buffer.concat([...this.#pending, chunk.subarray(start, nl)]).toString('utf8');
      this.#pending = [];
      this.#pendingBytes = 0;
      start = nl + 1;
      this.#onLine(line.replace(/\r$/, ''));
      if (this.#socket.destroyed) return;
    }
    const rest = chunk.subarray(start);
    if (rest.length === 0) return;
    this.#pendingBytes += rest.length;
    if (this.#pendingBytes > MAX_LINE_BYTES) {
      // No framing can be trusted any more: answer once and hang up.
      this.#pending = [];
      this.#pendingBytes = 0;
      void this.send({ id: null, error: { code: ErrorCode.tooLarge, message: `request line longer than ${MAX_LINE_BYTES} bytes` } }).then(() => this.#socket.end());
      this.#socket.pause();
      return;
    }
    this.#pending.push(Buffer.from(rest));
  }

  #onLine(line: string): void {
    if (line.trim() === '') return;
    let id: RequestId | null = null;
    try {
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        throw new RequestError(ErrorCode.badJson, 'a request is one JSON object per line');
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new RequestError(ErrorCode.badRequest, 'a request is a JSON object');
      const req = msg as Record<string, unknown>;
      if (!isRequestId(req.id)) throw new RequestError(ErrorCode.badRequest, '"id" must be a non-empty string (at most 200 characters) or a finite number');
      id = req.id;
      this.#dispatch(id, req);
    } catch (err) {
      const e = err instanceof RequestError ? err : new RequestError(ErrorCode.internal, errorText(err));
      if (e.code === ErrorCode.internal) log(`internal error on a request: ${e.message}`);
      void this.send({ id, error: { code: e.code, message: e.message } });
    }
  }

  #dispatch(id: RequestId, req: Record<string, unknown>): void {
    const service = this.#service;
    const fields = (allowed: string[]): void => {
      const extra = Object.keys(req).filter((k) => k !== 'id' && k !== 'op' && !allowed.includes(k));
      if (extra.length > 0) throw new RequestError(ErrorCode.badRequest, `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${k}"`).join(', ')}`);
    };
    if (service.stopping && req.op !== 'ping') throw new RequestError(ErrorCode.shuttingDown, 'the service is shutting down');
    switch (req.op) {
      case 'ping':
        fields([]);
        void this.#answer(id, async () => service.status());
        return;
      case 'reload':
        fields([]);
        void this.#answer(id, async () => service.reload());
        return;
      case 'reconfigure':
        fields([]);
        void this.#answer(id, async () => service.reconfigure());
        return;
      case 'shutdown':
        fields([]);
        void this.send({ id, ok: true }).then(() => service.stop('shutdown request'));
        return;
      case 'cancel': {
        fields(['target']);
        if (!isRequestId(req.target)) throw new RequestError(ErrorCode.badRequest, '"target" must be the id of a scan on this connection');
        const scan = this.#scans.get(scanKey(req.target));
        scan?.cancel();
        void this.send({ id, ok: true, cancelled: scan !== undefined });
        return;
      }
      case 'scan': {
        fields(['paths', 'maxFileBytes']);
        const request = parseScanRequest(id, req);
        const key = scanKey(id);
        if (this.#scans.has(key)) throw new RequestError(ErrorCode.duplicateId, `a scan with id ${JSON.stringify(id)} is already running on this connection`);
        if (service.activeScans() >= MAX_CONCURRENT_SCANS) throw new RequestError(ErrorCode.busy, `${MAX_CONCURRENT_SCANS} scans are already running`);
        // Registered before the first await, so a second scan with the same id is refused
        // and a cancel that arrives while the definitions load is not lost.
        const job = new ScanJob(request, this);
        this.#scans.set(key, job);
        void (async () => {
          try {
            await job.run(await service.definitionsForScan(), service.scanPolicy());
          } catch (err) {
            const e = err instanceof RequestError ? err : new RequestError(ErrorCode.internal, errorText(err));
            if (e.code === ErrorCode.internal) log(`scan ${JSON.stringify(id)} failed: ${e.message}`);
            await this.send({ id, error: { code: e.code, message: e.message } });
          } finally {
            this.#scans.delete(key);
          }
        })();
        return;
      }
      default:
        throw new RequestError(ErrorCode.unknownOp, typeof req.op === 'string' ? `unknown op "${req.op.slice(0, 40)}"` : '"op" must be one of ping, scan, cancel, reload, reconfigure, shutdown');
    }
  }

  async #answer(id: RequestId, fn: () => Promise<Record<string, unknown>>): Promise<void> {
    try {
      await this.send({ id, ok: true, ...(await fn()) });
    } catch (err) {
      const e = err instanceof RequestError ? err : new RequestError(ErrorCode.internal, errorText(err));
      if (e.code === ErrorCode.internal) log(`internal error: ${e.message}`);
      await this.send({ id, error: { code: e.code, message: e.message } });
    }
  }
}

function isRequestId(v: unknown): v is RequestId {
  return (typeof v === 'string' && v.length > 0 && v.length <= 200) || (typeof v === 'number' && Number.isFinite(v));
}

/** Scans are keyed by type and value: 1 and "1" are different ids. */
function scanKey(id: RequestId): string {
  return JSON.stringify(id);
}

function parseScanRequest(id: RequestId, req: Record<string, unknown>): ScanRequest {
  const { paths, maxFileBytes } = req;
  if (!Array.isArray(paths) || paths.length === 0 || paths.length > MAX_SCAN_PATHS) {
    throw new RequestError(ErrorCode.badRequest, `"paths" must be an array of 1 to ${MAX_SCAN_PATHS} absolute paths`);
  }
  for (const p of paths) {
    if (typeof p !== 'string' || p.length === 0 || p.length > 4096 || p.includes('\0') || !isAbsolute(p)) {
      throw new RequestError(ErrorCode.badRequest, `"paths" must hold absolute paths; got ${JSON.stringify(p)?.slice(0, 200)}`);
    }
  }
  if (maxFileBytes !== undefined && (typeof maxFileBytes !== 'number' || !Number.isSafeInteger(maxFileBytes) || maxFileBytes < 1)) {
    throw new RequestError(ErrorCode.badRequest, '"maxFileBytes" must be a positive integer');
  }
  return { id, paths: paths as string[], maxFileBytes: maxFileBytes as number | undefined };
}

export class ScannerService {
  readonly paths: ScannerPaths;
  readonly connections = new Set<Connection>();
  readonly #definitions: DefinitionsStore;
  readonly #config: ConfigStore;
  readonly #realTime: RealTimeProtection;
  #journal: JournalWriter | null = null;
  #homeWatcher: FSWatcher | null = null;
  #configTimer: NodeJS.Timeout | null = null;
  #purgeTimer: NodeJS.Timeout | null = null;
  #server: Server | null = null;
  #version = '0.0.0-dev';
  #stopping: Promise<void> | null = null;
  #resolveStopped!: () => void;
  readonly #stopped = new Promise<void>((r) => {
    this.#resolveStopped = r;
  });

  constructor(home: string) {
    this.paths = scannerPaths(home);
    this.#definitions = new DefinitionsStore(this.paths.definitions);
    this.#config = new ConfigStore(this.paths.config);
    this.#realTime = new RealTimeProtection(
      {
        definitions: async () => {
          await this.#definitions.refreshQuietly();
          return this.#definitions.current;
        },
        onDetection: (d, fh, st, config) => this.#onRealTimeDetection(d, fh, st, config),
        log,
      },
      this.paths.quarantine,
    );
  }

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** Scans running and not cancelled. */
  activeScans(): number {
    return this.#scanCount(false);
  }

  /** What runs now: the loaded definitions, not what the file holds (a scan or reload picks that up). */
  async status(): Promise<Record<string, unknown>> {
    const defs = this.#definitions.current;
    return {
      version: this.#version,
      definitionsVersion: defs?.version ?? null,
      signatures: defs?.signatures.length ?? 0,
      pid: process.pid,
      scans: this.activeScans(),
      ...(this.#definitions.lastError ? { definitionsError: this.#definitions.lastError } : {}),
      config: this.#config.current,
      configSource: this.#config.source,
      ...(this.#config.lastError ? { configError: this.#config.lastError } : {}),
      realTime: this.#realTime.status(),
    };
  }

  /** Reads the configuration file now and puts it in force; what the agent sends after applying a policy. */
  async reconfigure(): Promise<Record<string, unknown>> {
    try {
      await this.#config.refresh(true);
    } catch (err) {
      throw new RequestError(ErrorCode.configInvalid, (err as Error).message);
    }
    const notes = await this.#applyConfig();
    return { config: this.#config.current, configSource: this.#config.source, notes };
  }

  /** What an on-demand scan starting now runs with. */
  scanPolicy(): ScanPolicy {
    const config = this.#config.current;
    return {
      config,
      excluded: compileExclusions(config.exclusions),
      quarantineFolder: this.#quarantineFolder(config),
      quarantine: (fh, st, path, signatures, source) => quarantineFile({ fh, st, path, folder: this.#quarantineFolder(config), signatures, source }),
    };
  }

  #quarantineFolder(config: ScannerConfig): string {
    return resolve(config.quarantineFolder ?? this.paths.quarantine);
  }

  async #applyConfig(): Promise<string[]> {
    const config = this.#config.current;
    const notes = await this.#realTime.configure(config);
    for (const n of notes) log(`real-time protection: ${n}`);
    void this.#purge();
    return notes;
  }

  async #purge(): Promise<void> {
    const config = this.#config.current;
    try {
      const n = await purgeQuarantine(this.#quarantineFolder(config), config.quarantineRetentionDays);
      if (n > 0) log(`purged ${n} quarantined file${n === 1 ? '' : 's'} older than ${config.quarantineRetentionDays} days`);
    } catch (err) {
      log(`quarantine purge failed: ${errorText(err)}`);
    }
  }

  /** A config.json change seen by the watch on DIR (a policy applied, or a hand edit). */
  #configChanged(): void {
    if (this.#configTimer) clearTimeout(this.#configTimer);
    this.#configTimer = setTimeout(() => {
      this.#configTimer = null;
      if (this.stopping) return;
      this.#config
        .refresh()
        .then((changed) => (changed ? this.#applyConfig() : undefined))
        .catch(() => {}); // a refused file is logged by the store
    }, CONFIG_DEBOUNCE_MS);
  }

  async #onRealTimeDetection(d: { path: string; signatures: string[]; sha256: string | null }, fh: FileHandle, st: Stats, config: ScannerConfig): Promise<void> {
    let action: DetectionActionTaken = 'reported';
    let quarantine: { quarantineId: string; quarantineFolder: string } | null = null;
    let error: string | undefined;
    if (config.detectionAction === 'quarantine') {
      const folder = this.#quarantineFolder(config);
      try {
        const record = await quarantineFile({ fh, st, path: d.path, folder, signatures: d.signatures, source: 'real-time' });
        quarantine = { quarantineId: record.id, quarantineFolder: folder };
        action = 'quarantined';
      } catch (err) {
        action = 'quarantine-failed';
        error = errorText(err);
      }
    }
    log(`real-time: ${d.signatures.join(', ')} in ${d.path}: ${action}${quarantine ? ` (${quarantine.quarantineId})` : ''}${error ? `: ${error}` : ''}`);
    const time = new Date().toISOString();
    await this.#journal?.append(
      d.signatures.map((signature) => ({ time, source: 'real-time' as const, path: d.path, signature, action, sha256: d.sha256, ...(quarantine ?? {}), ...(error ? { error } : {}) })),
    );
  }

  async reload(): Promise<Record<string, unknown>> {
    let changed: boolean;
    // SIGHUP and `reload` also re-read the configuration (a refused file is logged and kept out).
    void this.#config
      .refresh(true)
      .then(() => this.#applyConfig())
      .catch(() => {});
    try {
      changed = await this.#definitions.refresh(true);
    } catch (err) {
      throw new RequestError(ErrorCode.definitionsInvalid, (err as Error).message);
    }
    const defs = this.#definitions.current!;
    return { definitionsVersion: defs.version, signatures: defs.signatures.length, changed };
  }

  async definitionsForScan(): Promise<CompiledDefinitions> {
    await this.#definitions.refreshQuietly();
    const defs = this.#definitions.current;
    if (!defs || defs.signatures.length === 0) {
      throw new RequestError(ErrorCode.noDefinitions, `no signature definitions are loaded${this.#definitions.lastError ? ` (${this.#definitions.lastError})` : ''}`);
    }
    return defs;
  }

  async start(): Promise<void> {
    const { runDir, socket, pid } = this.paths;
    this.#version = await ownVersion();
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    await this.#definitions.refreshQuietly();
    await this.#config.refresh(true).catch(() => {}); // refused: logged, and the unmanaged defaults run
    if (process.platform !== 'win32') await removeStaleSocket(socket);
    // Before listening: a service that answers ping is protecting already (a second service
    // for the same folder has given up at removeStaleSocket, before touching the journal).
    this.#journal = await JournalWriter.open(this.paths);
    try {
      this.#homeWatcher = watch(this.paths.home, { persistent: false }, (_type, name) => {
        if (name === 'config.json') this.#configChanged();
      });
      this.#homeWatcher.on('error', (err) => log(`cannot watch ${this.paths.home}: ${errorText(err)}`));
    } catch (err) {
      log(`cannot watch ${this.paths.home} (the configuration is read on reconfigure and SIGHUP only): ${errorText(err)}`);
    }
    await this.#applyConfig();
    // The socket is created 0600 from the start (umask), then chmod'ed in case the umask is ignored.
    const previousUmask = process.platform === 'win32' ? null : process.umask(0o077);
    const server = createServer((s) => {
      const conn = new Connection(s, this);
      this.connections.add(conn);
      if (this.stopping) s.destroy();
    });
    try {
      await new Promise<void>((resolveListen, rejectListen) => {
        server.once('error', rejectListen);
        server.listen(socket, () => {
          server.off('error', rejectListen);
          resolveListen();
        });
      });
    } finally {
      if (previousUmask !== null) process.umask(previousUmask);
    }
    server.on('error', (err) => log(`server error: ${errorText(err)}`));
    this.#server = server;
    if (process.platform !== 'win32') await chmod(socket, 0o600);
    const tmp = `${pid}.${process.pid}.tmp`;
    await writeFile(tmp, `${process.pid}\n`, { mode: 0o644 });
    await rename(tmp, pid);
    this.#purgeTimer = setInterval(() => void this.#purge(), PURGE_INTERVAL_MS);
    this.#purgeTimer.unref();
    const defs = this.#definitions.current;
    log(`version ${this.#version} listening on ${socket}; definitions ${defs ? `${defs.version} (${defs.signatures.length} signatures)` : 'none'}; configuration ${this.#config.source === 'file' ? 'from config.json' : 'unmanaged'}`);
  }

  /** Resolves when stop() has finished. */
  whenStopped(): Promise<void> {
    return this.#stopped;
  }

  /** Cancels scans, lets them say so, closes connections, removes the socket and pid file. */
  stop(reason: string): Promise<void> {
    if (this.#stopping) return this.#stopping;
    this.#stopping = (async () => {
      log(`stopping (${reason})`);
      this.#server?.close();
      this.#homeWatcher?.close();
      if (this.#configTimer) clearTimeout(this.#configTimer);
      if (this.#purgeTimer) clearInterval(this.#purgeTimer);
      await this.#realTime.stop().catch((err) => log(`stopping real-time protection: ${errorText(err)}`));
      for (const c of this.connections) for (const s of c.scans) s.cancel();
      // Cancelled scans end within one chunk read and send their `done`; wait briefly for that.
      const deadline = Date.now() + 2000;
      while (this.#scanCount(true) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await Promise.all([...this.connections].map((c) => c.end()));
      await this.#journal?.close().catch(() => {});
      if (process.platform !== 'win32') await unlink(this.paths.socket).catch(() => {});
      try {
        if ((await readFile(this.paths.pid, 'utf8')).trim() === String(process.pid)) await unlink(this.paths.pid);
      } catch {
        // already gone
      }
      log('stopped');
    })();
    this.#stopping.then(this.#resolveStopped, this.#resolveStopped);
    return this.#stopping;
  }

  #scanCount(includeCancelled: boolean): number {
    let n = 0;
    for (const c of this.connections) for (const s of c.scans) if (includeCancelled || !s.cancelled) n++;
    return n;
  }
}

/**
 * A socket file left by a service that died without cleaning up refuses connections: remove
 * it. One that answers belongs to a running service: refuse to start a second one.
 */
async function removeStaleSocket(socket: string): Promise<void> {
  const alive = await new Promise<boolean>((resolveAlive) => {
    const s = createConnection(socket);
    const timer = setTimeout(() => {
      s.destroy();
      resolveAlive(true); // something holds it and does not answer: do not steal it
    }, 1000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolveAlive(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolveAlive(false);
    });
  });
  if (alive) throw new AlreadyRunningError(`another scanner service is listening on ${socket}`);
  await unlink(socket).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

class AlreadyRunningError extends Error {}

/** Exit code when another service already runs for the same folder. */
export const EXIT_ALREADY_RUNNING = 3;

function parseArgs(argv: string[]): { home: string } {
  let home: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--home' && i + 1 < argv.length) home = argv[++i];
    else if (a.startsWith('--home=')) home = a.slice('--home='.length);
    else throw new Error(`unknown argument "${a}"`);
  }
  if (!home) throw new Error('missing --home DIR');
  return { home };
}

async function main(): Promise<void> {
  let args: { home: string };
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: node service.ts --home DIR\n`);
    process.exit(2);
  }
  const service = new ScannerService(args.home);
  const stop = (reason: string): void => {
    service.stop(reason).catch((err) => {
      log(`stop failed: ${errorText(err)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (process.platform !== 'win32') {
    process.on('SIGHUP', () => {
      service.reload().catch(() => {}); // logged by the store
    });
  }
  try {
    await service.start();
  } catch (err) {
    if (err instanceof AlreadyRunningError) {
      log(err.message);
      process.exit(EXIT_ALREADY_RUNNING);
    }
    log(`cannot start: ${errorText(err)}`);
    process.exit(1);
  }
  // Stopped by a signal or a `shutdown` request: exit even if a stuck client keeps a handle open.
  await service.whenStopped();
  process.exit(0);
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) void main();
