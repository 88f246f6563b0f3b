/**
 * Real-time protection: the watched folders are watched continuously and a file written
 * there is scanned as soon as it is complete (the seed's "continuously: scan programs and
 * files for threats as they occur"). Part of the service's payload: node:* only.
 *
 * Why it is built this way:
 * - One non-recursive fs.watch (inotify on Linux) per folder, added as folders appear,
 *   rather than fs.watch's `recursive`: we decide what is entered (never a symbolic link,
 *   never an excluded folder, never the quarantine), we know when a folder is renamed away
 *   (its watchers are closed, since inotify would keep reporting under the old name), and a
 *   cap (MAX_WATCHED_DIRS) keeps a huge tree from exhausting the kernel's watches.
 * - A folder that appears (created, or renamed into the tree with files already inside) is
 *   watched first and listed second, and every file in it is scanned: a file written
 *   between its folder's creation and the watch being added is not missed.
 * - Enabling protection does not scan what is already there (an on-demand scan does that):
 *   on-access protection judges files as they are written.
 * - Events on a path are debounced: the file is scanned QUIET_MS after its last event, or
 *   after MAX_DELAY_MS of continuous writes, so a file being written is scanned once it is
 *   written, not at every chunk. A file whose device, inode, size and mtime did not change
 *   since it was last scanned with the same definitions is not scanned again (a chmod, or
 *   our own read, never makes a loop).
 * - Symbolic links are never followed: a link is not scanned, a file is opened with
 *   O_NOFOLLOW (and O_NONBLOCK, so a FIFO swapped in cannot block a worker), and its folder
 *   must still resolve to itself (a folder swapped for a link to elsewhere is refused).
 * - A watched folder that does not exist (yet) is retried every RETRY_MS and watched once
 *   it appears; one deleted while watched goes back to waiting.
 * - Up to CONCURRENCY files are scanned at once; at most MAX_QUEUE wait (beyond, they are
 *   dropped and counted: the next write of the file brings it back).
 */
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { constants, watch, type FSWatcher, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { compileExclusions, isWithin, type ScannerConfig } from './config.ts';
import type { CompiledDefinitions } from './definitions.ts';
import { matchFile } from './matcher.ts';

export const QUIET_MS = 100;
export const MAX_DELAY_MS = 2000;
export const MAX_WATCHED_DIRS = 10_000;
export const MAX_QUEUE = 10_000;
export const CONCURRENCY = 2;
export const RETRY_MS = 1000;
const MAX_REMEMBERED = 20_000;

const OPEN_FLAGS = process.platform === 'win32' ? constants.O_RDONLY : constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export interface RealTimeDetection {
  path: string;
  signatures: string[];
  sha256: string | null;
}

export interface RealTimeHooks {
  /** The definitions in use now (refreshed if the file changed); null when none are loaded. */
  definitions(): Promise<CompiledDefinitions | null>;
  /** Acts on a detection (reports or quarantines, journals); the file is still open as `fh`. */
  onDetection(detection: RealTimeDetection, fh: FileHandle, st: Stats, config: ScannerConfig): Promise<void>;
  log(message: string): void;
}

export interface RealTimeStatus {
  enabled: boolean;
  watching: string[];
  waiting: string[];
  directories: number;
  scanned: number;
  detections: number;
  dropped: number;
  queued: number;
}

export class RealTimeProtection {
  readonly #hooks: RealTimeHooks;
  readonly #defaultQuarantine: string;
  #config: ScannerConfig | null = null;
  #excluded: (p: string) => boolean = () => false;
  #quarantine = '';
  /** configured folder → its real path once watched (null: waiting for it). */
  readonly #roots = new Map<string, string | null>();
  readonly #dirs = new Map<string, FSWatcher>();
  readonly #pending = new Map<string, { first: number; timer: NodeJS.Timeout }>();
  readonly #queue = new Set<string>();
  readonly #seen = new Map<string, string>();
  #active = 0;
  #generation = 0;
  #retry: NodeJS.Timeout | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #capWarned = false;
  #idleWaiters: (() => void)[] = [];
  #counters = { scanned: 0, detections: 0, dropped: 0 };

  constructor(hooks: RealTimeHooks, defaultQuarantine: string) {
    this.#hooks = hooks;
    this.#defaultQuarantine = defaultQuarantine;
  }

  status(): RealTimeStatus {
    const watching: string[] = [];
    const waiting: string[] = [];
    for (const [folder, real] of this.#roots) (real === null ? waiting : watching).push(folder);
    return {
      enabled: this.#config?.realTimeProtection === true,
      watching,
      waiting,
      directories: this.#dirs.size,
      ...this.#counters,
      queued: this.#queue.size + this.#pending.size,
    };
  }

  /** Applies a configuration (serialized with other calls); resolves with notes for whoever applied it. */
  configure(config: ScannerConfig): Promise<string[]> {
    const run = this.#chain.then(() => this.#configure(config));
    this.#chain = run.catch(() => {});
    return run;
  }

  async stop(): Promise<void> {
    await this.#chain;
    this.#closeAll();
    this.#config = null;
    while (this.#active > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
  }

  async #configure(config: ScannerConfig): Promise<string[]> {
    // Only what changes the watches restarts them: a restart has a moment with no watch.
    const watches = (c: ScannerConfig | null) => (c?.realTimeProtection ? JSON.stringify([c.watchedFolders, c.exclusions, c.quarantineFolder]) : null);
    if (this.#config !== null && watches(this.#config) === watches(config)) {
      this.#config = config;
      return [...this.#roots].filter(([, real]) => real === null).map(([folder]) => `watched folder ${folder} is not there: it is watched once it appears`);
    }
    this.#closeAll();
    this.#config = config;
    this.#excluded = compileExclusions(config.exclusions);
    this.#quarantine = resolve(config.quarantineFolder ?? this.#defaultQuarantine);
    this.#quarantine = await realpath(this.#quarantine).catch(() => this.#quarantine);
    if (!config.realTimeProtection) return [];
    // A folder inside another watched one is covered by it.
    const folders = [...new Set(config.watchedFolders.map((f) => resolve(f)))];
    for (const f of folders) if (!folders.some((o) => o !== f && isWithin(f, o))) this.#roots.set(f, null);
    const notes: string[] = [];
    await this.#startWaiting(this.#generation, notes);
    return notes;
  }

  #closeAll(): void {
    this.#generation++;
    for (const w of this.#dirs.values()) w.close();
    this.#dirs.clear();
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#queue.clear();
    this.#roots.clear();
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
  }

  async #startWaiting(generation: number, notes: string[] | null): Promise<void> {
    for (const [folder, real] of this.#roots) {
      if (real !== null || generation !== this.#generation) continue;
      let r: string;
      try {
        r = await realpath(folder);
        if (!(await stat(r)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
      } catch (err) {
        notes?.push(`watched folder ${folder} is not there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): it is watched once it appears`);
        continue;
      }
      if (generation !== this.#generation) return;
      if (isWithin(r, this.#quarantine)) {
        notes?.push(`watched folder ${folder} is inside the quarantine folder: not watched`);
        this.#roots.delete(folder);
        continue;
      }
      if (this.#excluded(r)) notes?.push(`watched folder ${folder} is excluded: nothing in it is scanned`);
      this.#roots.set(folder, r);
      await this.#watchTree(r, false, generation);
      if (notes === null) this.#hooks.log(`real-time protection: watching ${folder}`);
    }
    if (generation === this.#generation && [...this.#roots.values()].some((r) => r === null) && !this.#retry) {
      this.#retry = setTimeout(() => {
        this.#retry = null;
        void this.#startWaiting(generation, null).catch((err) => this.#hooks.log(`real-time protection: ${(err as Error).message}`));
      }, RETRY_MS);
      this.#retry.unref();
    }
  }

  async #watchTree(dir: string, scanFiles: boolean, generation: number): Promise<void> {
    if (generation !== this.#generation || this.#dirs.has(dir)) return;
    if (this.#excluded(dir) || isWithin(dir, this.#quarantine)) return;
    if (this.#dirs.size >= MAX_WATCHED_DIRS) {
      if (!this.#capWarned) this.#hooks.log(`real-time protection: more than ${MAX_WATCHED_DIRS} folders; ${dir} and others are not watched`);
      this.#capWarned = true;
      return;
    }
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (_type, name) => {
        if (name !== null && name !== undefined) this.#schedule(join(dir, String(name)));
      });
    } catch {
      return; // gone, or not readable
    }
    w.on('error', () => this.#unwatchTree(dir));
    this.#dirs.set(dir, w);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (generation !== this.#generation) return;
      const full = join(dir, e.name);
      if (e.isDirectory()) await this.#watchTree(full, scanFiles, generation);
      else if (scanFiles && e.isFile()) this.#schedule(full);
    }
  }

  #unwatchTree(path: string): void {
    for (const [dir, w] of this.#dirs) {
      if (isWithin(dir, path)) {
        w.close();
        this.#dirs.delete(dir);
      }
    }
    for (const [folder, real] of this.#roots) {
      if (real !== null && isWithin(real, path)) {
        this.#roots.set(folder, null);
        void this.#startWaiting(this.#generation, null);
      }
    }
  }

  #schedule(path: string): void {
    if (isWithin(path, this.#quarantine)) return;
    const now = Date.now();
    let p = this.#pending.get(path);
    if (p) clearTimeout(p.timer);
    else {
      p = { first: now, timer: undefined as unknown as NodeJS.Timeout };
      this.#pending.set(path, p);
    }
    const delay = now - p.first >= MAX_DELAY_MS ? 0 : QUIET_MS;
    p.timer = setTimeout(() => {
      this.#pending.delete(path);
      if (this.#queue.size >= MAX_QUEUE) {
        this.#counters.dropped++;
        return;
      }
      this.#queue.add(path);
      this.#pump();
    }, delay);
  }

  #pump(): void {
    while (this.#active < CONCURRENCY && this.#queue.size > 0) {
      const path = this.#queue.values().next().value as string;
      this.#queue.delete(path);
      this.#active++;
      const generation = this.#generation;
      void this.#handle(path, generation)
        .catch((err) => this.#hooks.log(`real-time protection: ${path}: ${(err as Error).message}`))
        .finally(() => {
          this.#active--;
          if (this.#active === 0) for (const w of this.#idleWaiters.splice(0)) w();
          this.#pump();
        });
    }
  }

  async #handle(path: string, generation: number): Promise<void> {
    let st: Stats;
    try {
      st = await lstat(path);
    } catch {
      // Deleted or renamed away: whatever was watched under that name is not there any more.
      this.#unwatchTree(path);
      this.#seen.delete(path);
      return;
    }
    if (generation !== this.#generation) return;
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      if (!this.#dirs.has(path) && [...this.#roots.values()].some((r) => r !== null && isWithin(path, r))) await this.#watchTree(path, true, generation);
      return;
    }
    if (st.isFile()) await this.#scan(path, generation);
  }

  async #scan(path: string, generation: number): Promise<void> {
    const config = this.#config;
    if (!config?.realTimeProtection || this.#excluded(path)) return;
    // The folder must still be itself: one swapped for a link would lead out of the watched tree.
    const dir = dirname(path);
    if ((await realpath(dir).catch(() => null)) !== dir) return;
    const defs = await this.#hooks.definitions();
    if (!defs || defs.signatures.length === 0 || generation !== this.#generation) return;
    let fh;
    try {
      fh = await open(path, OPEN_FLAGS);
    } catch {
      return; // gone, replaced by a link, or unreadable
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return;
      if (config.maxFileBytes !== null && st.size > config.maxFileBytes) return;
      const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${defs.version}:${defs.signatures.length}`;
      if (this.#seen.get(path) === identity) return;
      const result = await matchFile(fh, defs, { hash: true, stop: () => generation !== this.#generation });
      if (!result.complete) return;
      this.#remember(path, identity);
      this.#counters.scanned++;
      if (result.found.length === 0) return;
      this.#counters.detections++;
      await this.#hooks.onDetection({ path, signatures: result.found, sha256: result.sha256 }, fh, st, config);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  #remember(path: string, identity: string): void {
    this.#seen.delete(path);
    this.#seen.set(path, identity);
    if (this.#seen.size > MAX_REMEMBERED) this.#seen.delete(this.#seen.keys().next().value as string);
  }
}
