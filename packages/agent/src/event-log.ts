/**
 * The agent's local event log.
 *
 * The device keeps its own record of what the agent did (runs, enrolment, connections,
 * errors) so that a local user or a support engineer can see it without the server. It is
 * a plain JSON-lines file, readable with any tool, rotated by size like syslog:
 * events.log → events.log.1 → … → events.log.<keep>, the oldest dropped. Disk use is
 * bounded by roughly (keep + 1) × maxBytes.
 *
 * All writes of one LocalEventLog go through one promise chain: an append and a rotation
 * never overlap, so lines never interleave or land in a file being renamed, and read()
 * waits for the writes queued before it. The current file's size is tracked in memory
 * (stat once), so a write costs one append. One process owns a log folder.
 *
 * Files are created 0600 (events can name paths, users and hosts). Secret values must
 * never reach the log, so write() passes `data` through redact(), which masks any value
 * whose key looks like a password, token, secret, credential or key.
 */
import { appendFile, chmod, mkdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export type LocalEventSeverity = 'info' | 'warning' | 'error';

export interface LocalEvent {
  time: string;
  severity: LocalEventSeverity;
  kind: string;
  message: string;
  taskId?: string;
  runId?: string;
  data?: Record<string, unknown>;
}

export interface LocalEventLogOptions {
  /** Size above which events.log is rotated. Default 1 MiB. */
  maxBytes?: number;
  /** Rotated files kept (events.log.1 … .keep). Default 5. */
  keep?: number;
}

export interface LocalEventFilter {
  /** ISO time: events at or after it. */
  since?: string;
  /** Exact severity. */
  severity?: string;
  taskId?: string;
  /** The newest `limit` matching events. */
  limit?: number;
}

export const EVENT_LOG_FILE = 'events.log';
const SECRET_KEY = /pass(word)?|secret|token|credential|private.?key|api.?key/i;
export const REDACTED = '***';

/** A deep copy of `value` with the values under secret-looking keys replaced by "***". */
export function redact<T>(value: T): T {
  return redactValue(value, new WeakSet()) as T;
}

function redactValue(value: unknown, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => redactValue(v, seen));
    if (value instanceof Date) return value.toISOString();
    if (value instanceof Error) return { name: value.name, message: value.message, ...(redactValue({ ...value }, seen) as object) };
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = SECRET_KEY.test(key) ? REDACTED : redactValue(v, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

export class LocalEventLog {
  readonly dir: string;
  readonly file: string;
  #maxBytes: number;
  #keep: number;
  #size: number | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(dir: string, options: LocalEventLogOptions = {}) {
    this.dir = dir;
    this.file = join(dir, EVENT_LOG_FILE);
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
    this.#keep = options.keep ?? 5;
    checkOptions(this.#maxBytes, this.#keep);
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }
  get keep(): number {
    return this.#keep;
  }

  /**
   * New rotation limits (the agent's policy: logMaxBytes, logKeepFiles), taking effect in
   * the write queue: rotated files beyond a smaller `keep` are deleted.
   */
  configure(options: LocalEventLogOptions): Promise<void> {
    const maxBytes = options.maxBytes ?? this.#maxBytes;
    const keep = options.keep ?? this.#keep;
    checkOptions(maxBytes, keep);
    return this.#enqueue(async () => {
      const before = this.#keep;
      this.#maxBytes = maxBytes;
      this.#keep = keep;
      for (let i = keep + 1; i <= Math.max(before, keep); i++) await unlink(`${this.file}.${i}`).catch(ignoreMissing);
    });
  }

  /** Deletes rotated files last written before `before` (the policy's logRetentionDays); returns how many. */
  pruneRotated(before: Date): Promise<number> {
    let removed = 0;
    return this.#enqueue(async () => {
      for (let i = 1; i <= this.#keep; i++) {
        const f = `${this.file}.${i}`;
        const st = await stat(f).catch(() => null);
        if (st && st.mtimeMs < before.getTime()) {
          await unlink(f).catch(ignoreMissing);
          removed++;
        }
      }
    }).then(() => removed);
  }

  /** Appends one event (its `data` redacted). Resolves when the line is written. */
  write(event: LocalEvent): Promise<void> {
    const record: LocalEvent = { ...event };
    if (record.data !== undefined) record.data = redact(record.data);
    const line = JSON.stringify(record) + '\n';
    return this.#enqueue(() => this.#append(line));
  }

  /** Events across the rotated files, oldest first, newest last. */
  async read(filter: LocalEventFilter = {}): Promise<LocalEvent[]> {
    await this.#enqueue(async () => {}); // let earlier writes land first
    const since = filter.since !== undefined ? Date.parse(filter.since) : undefined;
    if (since !== undefined && Number.isNaN(since)) throw new RangeError(`invalid since: ${filter.since}`);
    const out: LocalEvent[] = [];
    for (const file of this.#filesOldestFirst()) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const line of text.split('\n')) {
        if (!line) continue;
        let event: LocalEvent;
        try {
          event = JSON.parse(line) as LocalEvent;
        } catch {
          continue; // a torn last line after a power cut: skip it
        }
        if (!event || typeof event !== 'object') continue;
        if (filter.severity !== undefined && event.severity !== filter.severity) continue;
        if (filter.taskId !== undefined && event.taskId !== filter.taskId) continue;
        if (since !== undefined && !(Date.parse(event.time) >= since)) continue;
        out.push(event);
      }
    }
    if (filter.limit !== undefined && filter.limit >= 0 && out.length > filter.limit) return out.slice(out.length - filter.limit);
    return out;
  }

  #filesOldestFirst(): string[] {
    const files: string[] = [];
    for (let i = this.keep; i >= 1; i--) files.push(`${this.file}.${i}`);
    files.push(this.file);
    return files;
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(job);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #append(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line);
    if (this.#size === undefined) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      try {
        this.#size = (await stat(this.file)).size;
        await chmod(this.file, 0o600).catch(() => {});
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        this.#size = 0;
      }
    }
    if (this.#size > 0 && this.#size + bytes > this.#maxBytes) await this.#rotate();
    await appendFile(this.file, line, { encoding: 'utf8', mode: 0o600 });
    this.#size += bytes;
  }

  async #rotate(): Promise<void> {
    if (this.keep === 0) {
      await unlink(this.file).catch(ignoreMissing);
    } else {
      await unlink(`${this.file}.${this.keep}`).catch(ignoreMissing);
      for (let i = this.keep - 1; i >= 1; i--) await rename(`${this.file}.${i}`, `${this.file}.${i + 1}`).catch(ignoreMissing);
      await rename(this.file, `${this.file}.1`);
    }
    this.#size = 0;
  }
}

function checkOptions(maxBytes: number, keep: number): void {
  if (!(maxBytes > 0)) throw new RangeError('maxBytes must be positive');
  if (!Number.isInteger(keep) || keep < 0) throw new RangeError('keep must be a non-negative integer');
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
