/**
 * The durable outbox of run reports.
 *
 * A run's result must reach the server even if the agent is offline for days or crashes
 * right after the run ends. Only the latest report of a run matters (the server keeps the
 * highest seq), so the spool holds one file per run, `<dir>/<runId>.json`, replaced
 * atomically (writeJsonAtomic) on each new report: the spool never grows with the number
 * of progress updates, and a crash leaves either the previous or the new report.
 *
 * An in-memory index, loaded once at init, answers pending() without touching the disk.
 * Writes and deletes of the same run are serialized through a per-run promise chain, so an
 * ack racing with a newer put cannot delete the newer report: ack(runId, seq) removes the
 * stored report only when its seq is <= the acknowledged one.
 *
 * A report's `events` (a scanner's detections, the agent's run.interrupted and run.resumed)
 * are recorded centrally from the report that carries them; a newer report of the same run
 * replacing an unsent one would drop them. So put() carries the stored report's events over
 * into the newer one, and ack(runId, seq) of an older report strips from the stored one the
 * events that the acknowledged report had carried (the server has them): each event is sent
 * until a report holding it is acknowledged, at least once and, short of a crash between
 * send and ack, once. At most 100 events per report (the protocol's limit): the oldest stay.
 *
 * runIds come from the server and become file names, so they are checked against a strict
 * pattern (no slashes, no "..": no path traversal). Files that cannot be read at init
 * (crash leftovers, damaged files) are moved aside or removed, never fatal: one bad file
 * must not stop every other report from being sent.
 */
import { mkdir, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunReport } from '@garrison/protocol';
import { isTempFileName, readJson, writeJsonAtomic } from './state-file.ts';

const MAX_EVENTS = 100;

export const RUN_ID_PATTERN = /^[A-Za-z0-9._:-]{1,80}$/;

export function isValidRunId(runId: unknown): runId is string {
  return typeof runId === 'string' && RUN_ID_PATTERN.test(runId) && runId !== '.' && runId !== '..';
}

export interface RunSpoolOptions {
  /** Called for each spool file that could not be loaded at init (it is renamed to `*.corrupt`). */
  onCorrupt?(file: string, error: Error): void;
}

export class RunSpool {
  readonly dir: string;
  #options: RunSpoolOptions;
  #reports = new Map<string, RunReport>();
  /** Per stored report with events: the seq of the report each event was first put with. */
  #eventOrigins = new Map<string, number[]>();
  #chains = new Map<string, Promise<void>>();
  #initialised = false;

  constructor(dir: string, options: RunSpoolOptions = {}) {
    this.dir = dir;
    this.#options = options;
  }

  async init(): Promise<void> {
    if (this.#initialised) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      const file = join(this.dir, name);
      if (isTempFileName(name)) {
        // A write interrupted before its rename: the previous report (if any) is still in place.
        await unlink(file).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const runId = name.slice(0, -'.json'.length);
      try {
        if (!isValidRunId(runId)) throw new Error(`not a valid run id: ${runId}`);
        const report = await readJson<RunReport>(file);
        if (!report || typeof report !== 'object') throw new Error('empty report');
        if (report.runId !== runId) throw new Error(`file holds run ${String(report.runId)}`);
        if (!Number.isInteger(report.seq) || report.seq < 0) throw new Error('report has no valid seq');
        this.#reports.set(runId, report);
        if (report.events?.length) this.#eventOrigins.set(runId, report.events.map(() => report.seq));
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        await rename(file, `${file}.corrupt`).catch(() => {});
        this.#options.onCorrupt?.(file, error);
      }
    }
    this.#initialised = true;
  }

  /** Drops every unsent report (a cloned machine's copy of another device's results); returns how many. */
  async discardAll(): Promise<number> {
    const all = [...this.#reports.values()];
    for (const r of all) await this.ack(r.runId, r.seq);
    return all.length;
  }

  /** Reports not yet acknowledged, oldest first (by createdAt, then seq). */
  pending(): RunReport[] {
    this.#assertInitialised();
    return [...this.#reports.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.seq - b.seq));
  }

  get size(): number {
    return this.#reports.size;
  }

  /** Stores `report` durably as its run's latest report; a report older (lower seq) than the stored one is ignored. */
  async put(report: RunReport): Promise<void> {
    this.#assertInitialised();
    if (!isValidRunId(report.runId)) throw new TypeError(`invalid runId ${JSON.stringify(report.runId)}`);
    if (!Number.isInteger(report.seq) || report.seq < 0) throw new TypeError(`invalid seq ${String(report.seq)} for run ${report.runId}`);
    const copy: RunReport = { ...report };
    await this.#serialize(report.runId, async () => {
      const stored = this.#reports.get(copy.runId);
      if (stored && stored.seq > copy.seq) return;
      let origins = (copy.events ?? []).map(() => copy.seq);
      if (stored && stored.seq < copy.seq && stored.events?.length) {
        const carried = this.#eventOrigins.get(copy.runId) ?? stored.events.map(() => stored.seq);
        copy.events = [...stored.events, ...(copy.events ?? [])].slice(0, MAX_EVENTS);
        origins = [...carried, ...origins].slice(0, MAX_EVENTS);
      }
      await writeJsonAtomic(this.#file(copy.runId), copy);
      this.#reports.set(copy.runId, copy);
      if (origins.length) this.#eventOrigins.set(copy.runId, origins);
      else this.#eventOrigins.delete(copy.runId);
    });
  }

  /** The server stored the run's report up to `seq`: forget it unless a newer report was put meanwhile. */
  async ack(runId: string, seq: number): Promise<void> {
    this.#assertInitialised();
    if (!isValidRunId(runId)) return;
    await this.#serialize(runId, async () => {
      const stored = this.#reports.get(runId);
      if (!stored) return;
      if (stored.seq > seq) {
        // A newer report was put meanwhile: drop the events it carried over from the acknowledged one.
        const origins = this.#eventOrigins.get(runId);
        if (!origins || !stored.events?.length || !origins.some((o) => o <= seq)) return;
        const keep = origins.map((o) => o > seq);
        const next: RunReport = { ...stored, events: stored.events.filter((_, i) => keep[i]) };
        if (!next.events!.length) delete next.events;
        await writeJsonAtomic(this.#file(runId), next);
        this.#reports.set(runId, next);
        const left = origins.filter((o) => o > seq);
        if (left.length) this.#eventOrigins.set(runId, left);
        else this.#eventOrigins.delete(runId);
        return;
      }
      try {
        await unlink(this.#file(runId));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      this.#reports.delete(runId);
      this.#eventOrigins.delete(runId);
    });
  }

  #file(runId: string): string {
    return join(this.dir, `${runId}.json`);
  }

  #assertInitialised(): void {
    if (!this.#initialised) throw new Error('RunSpool.init() must be awaited before use');
  }

  async #serialize(runId: string, job: () => Promise<void>): Promise<void> {
    const previous = this.#chains.get(runId) ?? Promise.resolve();
    const current = previous.then(job, job);
    const tail = current.catch(() => {});
    this.#chains.set(runId, tail);
    try {
      await current;
    } finally {
      if (this.#chains.get(runId) === tail) this.#chains.delete(runId);
    }
  }
}
