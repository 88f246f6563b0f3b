/**
 * Repository archives in the database (issue 14, migration 0012), so that every server
 * instance on one database can serve a package checked in through any of them; each
 * instance's `DATA/repository/` folder is only a cache of these rows.
 *
 * An archive is stored as rows of `package_archive_chunks` keyed by (sha256, chunk): chunks
 * 0…n-1 hold the bytes, CHUNK_BYTES each (the last one shorter), and one more row, chunk
 * COMPLETE_MARKER (-1), written last, says the archive is whole and how big it is. A reader
 * looks for the marker first, so an archive being written (or left half-written by a crash) is
 * never visible: "write then mark complete", not one transaction. One transaction would do
 * the same on PostgreSQL, but on SQLite the one connection would be held for as long as a
 * 1 GiB archive takes to write, and every agent check-in would wait behind it; row by row, with
 * a turn of the event loop between chunks, other queries get in between.
 *
 * Chunks are upserted: two writers of the same SHA-256 (two instances copying the same old
 * archive at start, or a retry after a crash) write the same bytes, so the last one winning is
 * harmless, and leftovers of a crashed write are simply overwritten. A reader still checks the
 * SHA-256 of what it read (the repository service does, before a fetched file is renamed into
 * place), so a row damaged in any other way is refused rather than served.
 *
 * Memory: one chunk at a time, on write and on read.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Db } from './database.ts';

/** 1 MiB: small enough for one bound parameter on both drivers, big enough that a 1 GiB archive is ~1,000 rows. */
export const CHUNK_BYTES = 1024 * 1024;
/** The chunk number of the row that marks an archive complete; its data is `{"size":…,"chunks":…}`. */
export const COMPLETE_MARKER = -1;

interface Marker {
  size: number;
  chunks: number;
}

export class ArchiveStore {
  readonly #db: Db;
  readonly #chunkBytes: number;
  /** `chunkBytes` is for tests (many chunks from a small archive). */
  constructor(db: Db, opts: { chunkBytes?: number } = {}) {
    this.#db = db;
    this.#chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  }

  /** Whether the archive is stored whole. */
  async has(sha256: string): Promise<boolean> {
    return (await this.#marker(sha256)) !== undefined;
  }

  /** The SHA-256 of every archive stored whole. */
  async stored(): Promise<Set<string>> {
    const rows = await this.#db.kysely.selectFrom('package_archive_chunks').select('sha256').where('chunk', '=', COMPLETE_MARKER).execute();
    return new Set(rows.map((r) => r.sha256));
  }

  /**
   * Stores the file as the archive `sha256`, streaming it a chunk at a time. The file's bytes
   * must hash to `sha256`: otherwise nothing is marked complete and this throws. Returns false
   * when the archive was already stored whole (nothing written).
   */
  async put(sha256: string, file: string): Promise<boolean> {
    if (await this.has(sha256)) return false;
    const hash = createHash('sha256');
    let size = 0;
    let index = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (bytes: Buffer) => {
      await this.#db.kysely
        .insertInto('package_archive_chunks')
        .values({ sha256, chunk: index, data: bytes })
        .onConflict((oc) => oc.columns(['sha256', 'chunk']).doUpdateSet((eb) => ({ data: eb.ref('excluded.data') })))
        .execute();
      index++;
      // With SQLite every statement runs synchronously: let the event loop turn between chunks.
      await new Promise<void>((resolve) => setImmediate(resolve));
    };
    for await (const piece of createReadStream(file, { highWaterMark: this.#chunkBytes }) as AsyncIterable<Buffer>) {
      hash.update(piece);
      size += piece.length;
      let rest = piece;
      while (rest.length) {
        const take = Math.min(rest.length, this.#chunkBytes - pendingBytes);
        pending.push(rest.subarray(0, take));
        pendingBytes += take;
        rest = rest.subarray(take);
        if (pendingBytes === this.#chunkBytes) {
          const full = Buffer.concat(pending);
          pending = [];
          pendingBytes = 0;
          await flush(full);
        }
      }
    }
    if (pendingBytes) await flush(Buffer.concat(pending));
    const got = hash.digest('hex');
    if (got !== sha256) throw new Error(`${file} has SHA-256 ${got}, not ${sha256}: not stored in the database`);
    const marker: Marker = { size, chunks: index };
    await this.#db.kysely
      .insertInto('package_archive_chunks')
      .values({ sha256, chunk: COMPLETE_MARKER, data: Buffer.from(JSON.stringify(marker)) })
      .onConflict((oc) => oc.columns(['sha256', 'chunk']).doUpdateSet((eb) => ({ data: eb.ref('excluded.data') })))
      .execute();
    return true;
  }

  /**
   * The archive's bytes as a stream, a chunk per query, or undefined when it is not stored
   * whole. The stream fails (rather than ends short) when the archive is deleted while it is
   * read; the caller still verifies the SHA-256.
   */
  async open(sha256: string): Promise<{ size: number; stream: Readable } | undefined> {
    const marker = await this.#marker(sha256);
    if (!marker) return undefined;
    const db = this.#db;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < marker!.chunks; i++) {
        const row = await db.kysely.selectFrom('package_archive_chunks').select('data').where('sha256', '=', sha256).where('chunk', '=', i).executeTakeFirst();
        if (!row) throw new Error(`chunk ${i} of archive ${sha256} is gone from the database (deleted while it was read?)`);
        yield Buffer.from(row.data);
      }
    }
    return { size: marker.size, stream: Readable.from(chunks(), { objectMode: false }) };
  }

  /** Deletes the archive's rows, marker and chunks in one statement. */
  async delete(sha256: string): Promise<void> {
    await this.#db.kysely.deleteFrom('package_archive_chunks').where('sha256', '=', sha256).execute();
  }

  /**
   * Deletes the archive unless a package still names its SHA-256, checked in the same
   * statement as the delete (another instance may be checking in the same bytes right now).
   * Returns whether it was deleted.
   */
  async deleteUnlessUsed(sha256: string): Promise<boolean> {
    const r = await this.#db.kysely
      .deleteFrom('package_archive_chunks')
      .where('sha256', '=', sha256)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('packages').select('id').where('packages.sha256', '=', sha256))))
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async #marker(sha256: string): Promise<Marker | undefined> {
    const row = await this.#db.kysely.selectFrom('package_archive_chunks').select('data').where('sha256', '=', sha256).where('chunk', '=', COMPLETE_MARKER).executeTakeFirst();
    return row ? (JSON.parse(Buffer.from(row.data).toString('utf8')) as Marker) : undefined;
  }
}
