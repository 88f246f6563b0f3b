/**
 * Saved selections (protocol operations/saved-selections.ts): each administrator keeps their
 * own, and sees and deletes only those; the built-in ones are the same for everyone, listed
 * first, and cannot be deleted. Any signed-in administrator may keep selections: a selection
 * is only a filter, and the lists it is applied to check the caller's reach themselves.
 */
import type { Page, PageRequest, SavedSelection, SavedSelectionCreate, SavedSelectionPage } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import { compareKeys, decodeCursor, encodeCursor, pageLimit, type CursorKey } from '../paging.ts';
import type { SavedSelectionStore, StoredSelection } from '../storage/saved-selection-store.ts';
import type { Actor } from './actor.ts';

/** How many selections an administrator may keep per page. */
export const SAVED_SELECTIONS_MAX = 200;

/**
 * The built-in selections, as the query of their page's URL (the event log's: severity is the
 * lowest shown, range a relative time, kind a comma list with * patterns).
 */
export const BUILTIN_SELECTIONS: readonly SavedSelection[] = [
  { id: 'builtin:events-problems-24h', page: 'events', name: 'Errors and warnings, last 24 hours', query: { severity: 'warning', range: '24h' }, builtIn: true, createdAt: null },
  { id: 'builtin:events-failed-runs', page: 'events', name: 'Failed runs', query: { kind: 'run.failed,run.timed_out' }, builtIn: true, createdAt: null },
  { id: 'builtin:events-audit', page: 'events', name: 'Audit trail', query: { kind: 'audit.*' }, builtIn: true, createdAt: null },
  { id: 'builtin:events-detections', page: 'events', name: 'Detections', query: { kind: '*.detection' }, builtIn: true, createdAt: null },
];

function adminOf(actor: Actor): string {
  if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'saved selections belong to administrators');
  return actor.adminId;
}
function view(s: StoredSelection): SavedSelection {
  return { id: s.id, page: s.page, name: s.name, query: s.query, builtIn: false, createdAt: s.createdAt };
}
// The list's sort key: built-in ones (0) in their order, then the caller's (1) by name and id.
const builtinKey = (i: number): CursorKey => [0, String(i).padStart(4, '0'), BUILTIN_SELECTIONS[i]!.id];
const ownKey = (s: { name: string; id: string }): CursorKey => [1, s.name, s.id];

export class SavedSelectionService {
  readonly #store: SavedSelectionStore;
  readonly #clock: Clock;
  constructor(deps: { store: SavedSelectionStore; clock: Clock }) {
    this.#store = deps.store;
    this.#clock = deps.clock;
  }

  async list(actor: Actor, page: SavedSelectionPage, req: PageRequest): Promise<Page<SavedSelection>> {
    const adminId = adminOf(actor);
    const limit = pageLimit(req);
    const after = decodeCursor(req.cursor, 3);
    const builtins = BUILTIN_SELECTIONS.map((s, i) => ({ s, key: builtinKey(i) })).filter((b) => b.s.page === page && (!after || compareKeys(b.key, after) > 0));
    const taken = builtins.slice(0, limit);
    const items: { s: SavedSelection; key: CursorKey }[] = [...taken];
    const ownAfter = after && after[0] === 1 ? ([String(after[1]), String(after[2])] as const) : undefined;
    // One more than the page holds tells whether there is a next page.
    const own = await this.#store.list(adminId, page, { ...(ownAfter ? { after: ownAfter } : {}), limit: limit - items.length + 1 });
    items.push(...own.map((o) => ({ s: view(o), key: ownKey(o) })));
    const more = items.length > limit || builtins.length > taken.length;
    const slice = items.slice(0, limit);
    const total = BUILTIN_SELECTIONS.filter((s) => s.page === page).length + (await this.#store.count(adminId, page));
    return { items: slice.map((i) => i.s), nextCursor: more && slice.length ? encodeCursor(slice.at(-1)!.key) : null, total };
  }

  async create(actor: Actor, input: SavedSelectionCreate): Promise<SavedSelection> {
    const adminId = adminOf(actor);
    const name = input.name.trim();
    if (!name) throw new AppError('VALIDATION_FAILED', 'a saved selection needs a name', { issues: [{ path: '/name', message: 'empty' }] });
    if ((await this.#store.count(adminId, input.page)) >= SAVED_SELECTIONS_MAX && !(await this.#store.list(adminId, input.page, { limit: SAVED_SELECTIONS_MAX })).some((s) => s.name === name)) {
      throw new AppError('CONFLICT', `at most ${SAVED_SELECTIONS_MAX} saved selections per page; delete some first`);
    }
    const saved = await this.#store.put({ id: newId(), adminId, page: input.page, name, query: input.query, createdAt: this.#clock.now().toISOString() });
    return view(saved);
  }

  async remove(actor: Actor, id: string): Promise<void> {
    const adminId = adminOf(actor);
    if (BUILTIN_SELECTIONS.some((s) => s.id === id)) throw new AppError('CONFLICT', 'built-in selections cannot be deleted');
    // Another administrator's selection reads as absent: its id says nothing about it.
    if (!(await this.#store.delete(adminId, id))) throw new AppError('NOT_FOUND', `saved selection ${id} does not exist`);
  }
}
