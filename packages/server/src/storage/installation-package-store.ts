/**
 * The index of offline installation packages (issue 14, migration 0012): one row per bundle
 * made by the server task "installation-package", so that every instance on one database
 * lists, serves and deletes every bundle, whichever instance made it. It replaces the folder
 * of JSON files each instance kept in `<dataDir>/installation-packages`; the bundle's bytes
 * are in `package_archive_chunks` by its SHA-256 (ArchiveStore), the row names them.
 *
 * A bundle's name is reserved before its file is written, by inserting a row that is not yet
 * a bundle (`sha256` empty, `info` empty): insert-if-absent on the primary key, so that two
 * instances packing for the same group in the same second never give two bundles one name,
 * and a name stays taken from before its file exists until its bundle is deleted. `put` then
 * turns the reservation into the bundle. Reservations are never listed; one left by a crash is
 * removed by `deleteReservationsBefore` (nothing packs for a day).
 */
import type { Db } from './database.ts';

/** What the index keeps of a bundle (and the API lists): never the token's value. */
export interface InstallationPackageInfo {
  name: string;
  /** The bundle's path on the disk of the instance that made it (other instances serve it from the database). */
  file: string;
  size: number;
  sha256: string;
  createdAt: string;
  taskId: string;
  runId: string;
  groupId: string;
  groupPath: string;
  platform: string;
  serverUrl: string;
  agentVersion: string;
  tokenId: string;
  tokenExpiresAt: string | null;
  maxUses: number | null;
  products: { product: string; version: string; sha256: string; size: number }[];
}

/** `sha256` of a row that only reserves its name. */
const RESERVED = '';

export class InstallationPackageStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /** Takes `name` for a bundle about to be made; false when any row (bundle or reservation) has it. */
  async reserve(name: string, groupId: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely
      .insertInto('installation_packages')
      .values({ name, group_id: groupId, sha256: RESERVED, info: '', created_at: at })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /** Writes the bundle's row, over its reservation or as a new row (an imported bundle). */
  async put(info: InstallationPackageInfo): Promise<void> {
    const row = { group_id: info.groupId, sha256: info.sha256, info: JSON.stringify(info), created_at: info.createdAt };
    await this.#db.kysely
      .insertInto('installation_packages')
      .values({ name: info.name, ...row })
      .onConflict((oc) => oc.column('name').doUpdateSet(row))
      .execute();
  }

  /** Inserts the bundle's row unless its name is taken; whether it was inserted (an import run twice is harmless). */
  async putIfAbsent(info: InstallationPackageInfo): Promise<boolean> {
    const r = await this.#db.kysely
      .insertInto('installation_packages')
      .values({ name: info.name, group_id: info.groupId, sha256: info.sha256, info: JSON.stringify(info), created_at: info.createdAt })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /** The bundles, newest first (reservations left out). */
  async list(): Promise<InstallationPackageInfo[]> {
    const rows = await this.#db.kysely.selectFrom('installation_packages').select('info').where('sha256', '<>', RESERVED).orderBy('created_at', 'desc').orderBy('name', 'desc').execute();
    return rows.map((r) => JSON.parse(r.info) as InstallationPackageInfo);
  }

  /** One bundle by name; null for an unknown name or a reservation. */
  async find(name: string): Promise<InstallationPackageInfo | null> {
    const row = await this.#db.kysely.selectFrom('installation_packages').select('info').where('name', '=', name).where('sha256', '<>', RESERVED).executeTakeFirst();
    return row ? (JSON.parse(row.info) as InstallationPackageInfo) : null;
  }

  /** Every name taken, bundles and reservations: a file whose name is not here belongs to a deleted bundle. */
  async names(): Promise<Set<string>> {
    return new Set((await this.#db.kysely.selectFrom('installation_packages').select('name').execute()).map((r) => r.name));
  }

  /** How many bundles have these bytes (the bytes are shared by SHA-256: deleted with the last). */
  async countBySha(sha256: string): Promise<number> {
    const r = await this.#db.kysely.selectFrom('installation_packages').select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).where('sha256', '=', sha256).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Removes the bundle's row or the name's reservation; whether there was one. */
  async delete(name: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('installation_packages').where('name', '=', name).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Reservations made before `before` (ISO time), left by runs that crashed; returns how many went. */
  async deleteReservationsBefore(before: string): Promise<number> {
    const r = await this.#db.kysely.deleteFrom('installation_packages').where('sha256', '=', RESERVED).where('created_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
