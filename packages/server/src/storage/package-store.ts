import type { Branch, PackageManifest, RepositoryPackage } from '@garrison/protocol';
import type { Db } from './database.ts';
import { ArchiveStore } from './archive-store.ts';
import type { PackagesTable } from './schema.ts';

function toPackage(r: PackagesTable): RepositoryPackage {
  return {
    id: r.id,
    product: r.product,
    version: r.version,
    kind: r.kind as RepositoryPackage['kind'],
    platforms: JSON.parse(r.platforms) as string[],
    branch: r.branch as Branch | null,
    sha256: r.sha256,
    signature: r.signature,
    size: Number(r.size),
    manifest: JSON.parse(r.manifest) as PackageManifest,
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}

export class PackageStore {
  readonly #db: Db;
  /** The packages' archives, by SHA-256 (the rows a package's `sha256` names). */
  readonly archives: ArchiveStore;
  constructor(db: Db) {
    this.#db = db;
    this.archives = new ArchiveStore(db);
  }
  /** The SHA-256 of every package's archive, each once. */
  async shas(): Promise<string[]> {
    return (await this.#db.kysely.selectFrom('packages').select('sha256').distinct().execute()).map((r) => r.sha256);
  }
  /** `branch` "none": the packages in no branch. */
  async list(filter: { product?: string; branch?: Branch | 'none' } = {}): Promise<RepositoryPackage[]> {
    let q = this.#db.kysely.selectFrom('packages').selectAll();
    if (filter.product) q = q.where('product', '=', filter.product);
    if (filter.branch === 'none') q = q.where('branch', 'is', null);
    else if (filter.branch) q = q.where('branch', '=', filter.branch);
    return (await q.orderBy('product').orderBy('created_at', 'desc').execute()).map(toPackage);
  }
  async get(id: string): Promise<RepositoryPackage | undefined> {
    const r = await this.#db.kysely.selectFrom('packages').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toPackage(r);
  }
  async find(product: string, version: string): Promise<RepositoryPackage | undefined> {
    const r = await this.#db.kysely.selectFrom('packages').selectAll().where('product', '=', product).where('version', '=', version).executeTakeFirst();
    return r && toPackage(r);
  }
  async countBySha(sha256: string): Promise<number> {
    const r = await this.#db.kysely.selectFrom('packages').select((eb) => eb.fn.countAll<number>().as('n')).where('sha256', '=', sha256).executeTakeFirstOrThrow();
    return Number(r.n);
  }
  /**
   * Inserts or moves a package into a branch, shifting the product's others in one
   * transaction: into `current`, the old current becomes `previous` and the old previous
   * leaves the branches; into `previous` or `evaluation`, the old holder leaves them.
   */
  /**
   * With `versionScheme` (a new package), the product's scheme is claimed in the same
   * transaction as the insert: the first package of a product sets it, and a package naming
   * another one is not inserted and the product's scheme is returned instead. On PostgreSQL a
   * concurrent claim waits for the first transaction and then reads its row.
   */
  async placeInBranch(pkg: RepositoryPackage, branch: Branch | null, insert: boolean, versionScheme?: string): Promise<{ schemeMismatch?: string }> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      if (insert && versionScheme) {
        await trx.insertInto('product_version_schemes').values({ product: pkg.product, scheme: versionScheme }).onConflict((oc) => oc.column('product').doNothing()).execute();
        const claimed = await trx.selectFrom('product_version_schemes').select('scheme').where('product', '=', pkg.product).executeTakeFirstOrThrow();
        if (claimed.scheme !== versionScheme) return { schemeMismatch: claimed.scheme };
      }
      const others = () => trx.updateTable('packages').where('product', '=', pkg.product).where('id', '!=', pkg.id);
      if (branch === 'current') {
        await others().set({ branch: null }).where('branch', '=', 'previous').execute();
        await others().set({ branch: 'previous' }).where('branch', '=', 'current').execute();
      } else if (branch !== null) {
        await others().set({ branch: null }).where('branch', '=', branch).execute();
      }
      if (insert) {
        await trx
          .insertInto('packages')
          .values({
            id: pkg.id,
            product: pkg.product,
            version: pkg.version,
            kind: pkg.kind,
            platforms: JSON.stringify(pkg.platforms),
            manifest: JSON.stringify(pkg.manifest),
            sha256: pkg.sha256,
            signature: pkg.signature,
            size: pkg.size,
            branch,
            created_at: pkg.createdAt,
            created_by: pkg.createdBy,
          })
          .execute();
      } else {
        await trx.updateTable('packages').set({ branch }).where('id', '=', pkg.id).execute();
      }
      return {};
    });
  }
  /** Deletes a package; with the product's last one goes its version scheme. */
  async remove(id: string): Promise<boolean> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('packages').select('product').where('id', '=', id).executeTakeFirst();
      if (!row) return false;
      await trx.deleteFrom('packages').where('id', '=', id).execute();
      const left = await trx.selectFrom('packages').select('id').where('product', '=', row.product).limit(1).executeTakeFirst();
      if (!left) await trx.deleteFrom('product_version_schemes').where('product', '=', row.product).execute();
      return true;
    });
  }
}
