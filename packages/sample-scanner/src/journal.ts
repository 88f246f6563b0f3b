/**
 * The detection journal: how real-time detections get from the service to the agent
 * without being lost or repeated. Part of the service's payload: node:* only.
 *
 *   DIR/journal/detections.jsonl   one JSON object per line; the first line is the header
 *                                  { "journal": "<random id>", "created": "…" }, then entries
 *   DIR/journal/delivered.json     { "journal": "<id>", "offset": N }: the reader's position
 *
 * - The service appends (JournalWriter), one fsync'd write per batch, so an entry it has
 *   logged survives a crash of the service.
 * - The agent half reads (JournalReader) from its offset, hands each complete line to its
 *   `deliver` (the agent's durable emit) and only then advances the offset, written
 *   atomically (rename). An agent that stops or restarts resumes at the first entry not yet
 *   delivered: nothing lost. Each entry carries an `eventId` made of the journal's id and
 *   its sequence number, so the one entry in flight when an agent is killed between emit
 *   and offset write reaches the server twice with the same id, which stores it once.
 * - A line without its newline (a service killed mid-write) is not read until it is
 *   terminated; the writer terminates it at start, and the reader skips a line that does
 *   not parse.
 * - The journal is replaced by a fresh one (new id) when the service starts and finds it
 *   larger than ROTATE_BYTES and fully delivered; a reader seeing another id starts at 0.
 */
import { randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, rename, stat, writeFile, type FileHandle } from 'node:fs/promises';
import type { ScannerPaths } from './paths.ts';

export const ROTATE_BYTES = 4 * 1024 * 1024;
/** How often the reader looks even without a file event (events can be missed). */
export const READER_POLL_MS = 1000;
const READ_BYTES = 1024 * 1024;

export type DetectionActionTaken = 'reported' | 'quarantined' | 'quarantine-failed';

export interface JournalEntry {
  seq: number;
  eventId: string;
  time: string;
  source: 'real-time';
  path: string;
  signature: string;
  action: DetectionActionTaken;
  sha256: string | null;
  quarantineId?: string;
  quarantineFolder?: string;
  error?: string;
}

interface Header {
  journal: string;
  created: string;
}

function parseHeader(line: string): Header | null {
  try {
    const h = JSON.parse(line) as Partial<Header>;
    return typeof h.journal === 'string' && /^[0-9a-f]{8,40}$/.test(h.journal) ? (h as Header) : null;
  } catch {
    return null;
  }
}

async function firstLine(file: string): Promise<string | null> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(10);
    return nl < 0 ? null : buf.subarray(0, nl).toString('utf8');
  } finally {
    await fh.close();
  }
}

export async function readOffset(file: string): Promise<{ journal: string; offset: number } | null> {
  try {
    const o = JSON.parse(await readFile(file, 'utf8')) as { journal?: unknown; offset?: unknown };
    if (typeof o.journal === 'string' && typeof o.offset === 'number' && Number.isSafeInteger(o.offset) && o.offset >= 0) return { journal: o.journal, offset: o.offset };
  } catch {
    // none yet, or damaged: start from the beginning (ids make a repeat harmless)
  }
  return null;
}

async function writeOffset(file: string, value: { journal: string; offset: number }): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(value));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/** The service's side: appends entries durably. */
export class JournalWriter {
  readonly #file: string;
  #fh: FileHandle | null = null;
  #id = '';
  #seq = 0;
  #chain: Promise<void> = Promise.resolve();

  private constructor(file: string) {
    this.#file = file;
  }

  get id(): string {
    return this.#id;
  }

  static async open(paths: ScannerPaths): Promise<JournalWriter> {
    const w = new JournalWriter(paths.journal);
    await mkdir(paths.journalDir, { recursive: true, mode: 0o700 });
    let header = parseHeader((await firstLine(paths.journal)) ?? '');
    if (header) {
      const size = (await stat(paths.journal)).size;
      const delivered = await readOffset(paths.journalOffset);
      if (size > ROTATE_BYTES && delivered?.journal === header.journal && delivered.offset >= size) {
        await rename(paths.journal, `${paths.journal}.old`);
        header = null;
      }
    }
    if (!header) {
      header = { journal: randomBytes(8).toString('hex'), created: new Date().toISOString() };
      // A missing or foreign file is replaced whole: a journal without a header cannot be read.
      const tmp = `${paths.journal}.tmp`;
      await writeFile(tmp, `${JSON.stringify(header)}\n`, { mode: 0o600 });
      await rename(tmp, paths.journal);
    }
    w.#id = header.journal;
    w.#fh = await open(paths.journal, 'a+', 0o600);
    const text = await readFile(paths.journal, 'utf8');
    if (!text.endsWith('\n')) await w.#fh.write('\n');
    for (const line of text.split('\n')) {
      try {
        const e = JSON.parse(line) as { seq?: unknown };
        if (typeof e.seq === 'number' && e.seq > w.#seq) w.#seq = e.seq;
      } catch {
        // the header, a blank or a torn line
      }
    }
    return w;
  }

  /** Appends entries (sequence numbers and ids given here); resolves once they are on disk. */
  append(entries: Omit<JournalEntry, 'seq' | 'eventId'>[]): Promise<JournalEntry[]> {
    const done = this.#chain.then(async () => {
      const fh = this.#fh;
      if (!fh) throw new Error('the journal is closed');
      const full = entries.map((e) => {
        const seq = ++this.#seq;
        return { seq, eventId: `ssj-${this.#id}-${seq}`, ...e } as JournalEntry;
      });
      await fh.write(full.map((e) => `${JSON.stringify(e)}\n`).join(''));
      await fh.datasync();
      return full;
    });
    this.#chain = done.then(
      () => {},
      () => {},
    );
    return done;
  }

  async close(): Promise<void> {
    await this.#chain;
    const fh = this.#fh;
    this.#fh = null;
    await fh?.close();
  }
}

/** The agent's side: delivers every entry once, in order, across restarts. */
export class JournalReader {
  readonly #paths: ScannerPaths;
  readonly #deliver: (entry: JournalEntry) => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  constructor(paths: ScannerPaths, deliver: (entry: JournalEntry) => Promise<void>, onError: (err: unknown) => void = () => {}) {
    this.#paths = paths;
    this.#deliver = deliver;
    this.#onError = onError;
  }

  async start(): Promise<void> {
    await mkdir(this.#paths.journalDir, { recursive: true, mode: 0o700 });
    try {
      this.#watcher = watch(this.#paths.journalDir, { persistent: false }, (_type, name) => {
        if (name === 'detections.jsonl') this.kick();
      });
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = null; // the poll goes on
      });
    } catch {
      // no file events here: the poll alone
    }
    this.#timer = setInterval(() => this.kick(), READER_POLL_MS);
    this.#timer.unref();
    this.kick();
  }

  /** Reads what is new; a read already running goes round once more. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#drain();
        } catch (err) {
          this.#onError(err);
          break; // retried at the next poll
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = null;
    });
  }

  /** Resolves once nothing is being read (for tests and stop). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
    await this.idle();
  }

  async #drain(): Promise<void> {
    const header = parseHeader((await firstLine(this.#paths.journal)) ?? '');
    if (!header) return;
    const saved = await readOffset(this.#paths.journalOffset);
    let offset = saved?.journal === header.journal ? saved.offset : 0;
    const fh = await open(this.#paths.journal, 'r');
    try {
      while (!this.#stopped) {
        const size = (await fh.stat()).size;
        if (offset > size) offset = 0; // cut short by hand: read it again (ids make that harmless)
        if (offset >= size) return;
        const base = offset;
        const buf = Buffer.alloc(Math.min(READ_BYTES, size - base));
        const { bytesRead } = await fh.read(buf, 0, buf.length, base);
        const data = buf.subarray(0, bytesRead);
        let start = 0;
        for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
          const entry = parseEntry(data.subarray(start, nl).toString('utf8'));
          start = nl + 1;
          if (entry) await this.#deliver(entry); // throws: the offset stays before this entry
          offset = base + start;
          await writeOffset(this.#paths.journalOffset, { journal: header.journal, offset });
          if (this.#stopped) return;
        }
        if (start === 0) {
          if (bytesRead === READ_BYTES) throw new Error('a journal line longer than 1 MiB');
          return; // a torn last line: wait for its end
        }
      }
    } finally {
      await fh.close();
    }
  }
}

function parseEntry(line: string): JournalEntry | null {
  if (line.trim() === '') return null;
  try {
    const e = JSON.parse(line) as Partial<JournalEntry>;
    if (typeof e.seq !== 'number' || typeof e.path !== 'string' || typeof e.signature !== 'string' || typeof e.eventId !== 'string') return null;
    return e as JournalEntry;
  } catch {
    return null;
  }
}
