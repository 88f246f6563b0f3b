/**
 * Saved selections (migration 0016): each administrator's named filters of a console page.
 * Names are unique per administrator and page; saving under a name already used replaces it.
 */
import type { SavedSelectionPage } from '@garrison/protocol';
import type { Db } from './database.ts';

export interface StoredSelection {
  id: string;
  adminId: string;
  page: SavedSelectionPage;
  name: string;
  query: Record<string, string>;
  createdAt: string;
}

export class SavedSelectionStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  /** One administrator's selections of a page, by name then id, after the (name, id) cursor. */
  async list(adminId: string, page: SavedSelectionPage, opts: { after?: readonly [string, string]; limit: number }): Promise<StoredSelection[]> {
    let q = this.#db.kysely.selectFrom('saved_selections').selectAll().where('admin_id', '=', adminId).where('page', '=', page);
    if (opts.after) {
      const [name, id] = opts.after;
      q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(name, id)));
    }
    const rows = await q.orderBy('name').orderBy('id').limit(opts.limit).execute();
    return rows.map((r) => ({ id: r.id, adminId: r.admin_id, page: r.page as SavedSelectionPage, name: r.name, query: JSON.parse(r.query) as Record<string, string>, createdAt: r.created_at }));
  }
  async count(adminId: string, page: SavedSelectionPage): Promise<number> {
    const r = await this.#db.kysely.selectFrom('saved_selections').select((eb) => eb.fn.countAll<number>().as('n')).where('admin_id', '=', adminId).where('page', '=', page).executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  /** Saves under the name: a selection of the same administrator, page and name is replaced (it keeps its id). */
  async put(s: StoredSelection): Promise<StoredSelection> {
    const query = JSON.stringify(s.query);
    await this.#db.kysely
      .insertInto('saved_selections')
      .values({ id: s.id, admin_id: s.adminId, page: s.page, name: s.name, query, created_at: s.createdAt })
      .onConflict((oc) => oc.columns(['admin_id', 'page', 'name']).doUpdateSet({ query, created_at: s.createdAt }))
      .execute();
    const row = await this.#db.kysely.selectFrom('saved_selections').select('id').where('admin_id', '=', s.adminId).where('page', '=', s.page).where('name', '=', s.name).executeTakeFirstOrThrow();
    return { ...s, id: row.id };
  }
  /** Deletes one of the administrator's own; false when they have none with that id. */
  async delete(adminId: string, id: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('saved_selections').where('id', '=', id).where('admin_id', '=', adminId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
}
