/**
 * Naming things on the command line: groups by id or path ("My Organization/Servers", or
 * without the root, "Servers/Web"), devices by id, name or hostname, tasks by id or name,
 * roles and administrators by id or name.
 * What cannot be found here is passed on as an id, so that the API says what is wrong with
 * its own error code.
 */
import { getAdmin, getDevice, getGroup, getTask, listAdmins, listDevices, listGroups, listRoles, listTasks, PAGE_LIMIT_MAX, type Task } from '@garrison/protocol';
import { ApiError, type Client } from './client.ts';
import type { AdminView, DeviceView, GroupView, RoleView } from './types.ts';

function normPath(p: string): string {
  return p
    .trim()
    .split('/')
    .map((s) => s.trim())
    .filter(Boolean)
    .join('/')
    .toLowerCase();
}

/** The group a reference names, or undefined. */
export function findGroup(groups: readonly GroupView[], ref: string): GroupView | undefined {
  const byId = groups.find((g) => g.id === ref);
  if (byId) return byId;
  const want = normPath(ref);
  if (!want) return undefined;
  const root = groups.find((g) => g.parentId === null);
  const byPath = groups.find((g) => g.path.toLowerCase() === want) ?? (root ? groups.find((g) => g.path.toLowerCase() === `${root.name.toLowerCase()}/${want}`) : undefined);
  if (byPath) return byPath;
  // A bare name that only one group has.
  if (!want.includes('/')) {
    const named = groups.filter((g) => g.name.toLowerCase() === want);
    if (named.length === 1) return named[0];
  }
  return undefined;
}

/** Caches the group list for one command. */
export class Groups {
  readonly #client: Client;
  #list: Promise<GroupView[]> | undefined;
  constructor(client: Client) {
    this.#client = client;
  }
  list(): Promise<GroupView[]> {
    this.#list ??= this.#client.api.all(listGroups, { query: { limit: PAGE_LIMIT_MAX } });
    return this.#list;
  }
  refresh(): void {
    this.#list = undefined;
  }
  async find(ref: string): Promise<GroupView | undefined> {
    return findGroup(await this.list(), ref);
  }
  /** The group's id; an unknown reference is passed on as given, for the API to refuse. */
  async id(ref: string): Promise<string> {
    return (await this.find(ref))?.id ?? ref;
  }
  /** The group itself; the API's NOT_FOUND when there is none. */
  async get(ref: string): Promise<GroupView> {
    return (await this.find(ref)) ?? (await this.#client.api.call(getGroup, { params: { id: ref } }));
  }
  async pathOf(id: string): Promise<string> {
    return (await this.list()).find((g) => g.id === id)?.path ?? id;
  }
}

/** The devices a reference may name among a search's results. */
export function matchDevices(devices: readonly DeviceView[], ref: string): DeviceView[] {
  const exact = devices.filter((d) => d.id === ref);
  if (exact.length) return exact;
  const byName = devices.filter((d) => d.name === ref);
  if (byName.length) return byName;
  const lower = ref.toLowerCase();
  const byNameCi = devices.filter((d) => d.name.toLowerCase() === lower);
  if (byNameCi.length) return byNameCi;
  return devices.filter((d) => d.hostname.toLowerCase() === lower);
}

/** A device by id, name or hostname; CONFLICT when a name is ambiguous, the API's NOT_FOUND when unknown. */
export async function resolveDevice(client: Client, ref: string): Promise<DeviceView> {
  const found = matchDevices((await client.api.call(listDevices, { query: { search: ref, limit: PAGE_LIMIT_MAX } })).items, ref);
  if (found.length === 1) return found[0]!;
  if (found.length > 1) {
    throw new ApiError('CONFLICT', `${found.length} devices are named "${ref}" (${found.map((d) => `${d.id} in ${d.groupPath}`).join(', ')}); give the id`);
  }
  return client.api.call(getDevice, { params: { id: ref } });
}

/** Device names for ids, fetched one by one for a few ids; unknown (deleted) ones keep their id. */
export async function deviceNames(client: Client, ids: Iterable<string | null | undefined>, max = 50): Promise<Map<string, string>> {
  const unique = [...new Set([...ids].filter((x): x is string => !!x))];
  const names = new Map<string, string>();
  if (unique.length === 0) return names;
  if (unique.length > max) {
    // One listing, when the fleet is small enough for that to be cheap; else ids are shown.
    for await (const page of client.api.pages(listDevices, { query: { limit: PAGE_LIMIT_MAX } })) {
      if ((page.total ?? Infinity) > 5000) break;
      for (const d of page.items) names.set(d.id, d.name);
    }
    return names;
  }
  await Promise.all(
    unique.map(async (id) => {
      try {
        names.set(id, (await client.api.call(getDevice, { params: { id } })).name);
      } catch {
        /* deleted since: show the id */
      }
    }),
  );
  return names;
}

/** A task by id, or by exact name when no task has that id. */
export async function resolveTaskId(client: Client, ref: string, tasks?: readonly Task[]): Promise<string> {
  // Without a list: only the tasks whose name contains the reference (an id matches by getTask in resolveTask).
  const list = tasks ?? (await client.api.all(listTasks, { query: { search: ref.slice(0, 200), limit: PAGE_LIMIT_MAX } }));
  if (list.some((t) => t.id === ref)) return ref;
  const named = list.filter((t) => t.name === ref);
  if (named.length === 1) return named[0]!.id;
  if (named.length > 1) throw new ApiError('CONFLICT', `${named.length} tasks are named "${ref}" (${named.map((t) => t.id).join(', ')}); give the id`);
  return ref;
}

/** A task by id, else by exact name; the API's NOT_FOUND when neither. */
export async function resolveTask(client: Client, ref: string): Promise<Task> {
  try {
    return await client.api.call(getTask, { params: { id: ref } });
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'NOT_FOUND') throw err;
    const id = await resolveTaskId(client, ref);
    if (id === ref) throw err;
    return client.api.call(getTask, { params: { id } });
  }
}

/** The one item whose name is `ref` (exactly, else ignoring case); CONFLICT when several are. */
function byName<T extends { id: string; name: string }>(items: readonly T[], ref: string, what: string): T | undefined {
  const exact = items.filter((i) => i.name === ref);
  const named = exact.length ? exact : items.filter((i) => i.name.toLowerCase() === ref.trim().toLowerCase());
  if (named.length > 1) throw new ApiError('CONFLICT', `${named.length} ${what}s are named "${ref}" (${named.map((i) => i.id).join(', ')}); give the id`);
  return named[0];
}

/** The role a reference names (its id, such as "operator", or its name, such as "Operator"), or undefined. */
export function findRole(roles: readonly RoleView[], ref: string): RoleView | undefined {
  return roles.find((r) => r.id === ref) ?? byName(roles, ref, 'role');
}

/** Caches the role list for one command. */
export class Roles {
  readonly #client: Client;
  #list: Promise<RoleView[]> | undefined;
  constructor(client: Client) {
    this.#client = client;
  }
  list(): Promise<RoleView[]> {
    this.#list ??= this.#client.api.all(listRoles, { query: { limit: PAGE_LIMIT_MAX } });
    return this.#list;
  }
  async find(ref: string): Promise<RoleView | undefined> {
    return findRole(await this.list(), ref);
  }
  /** The role's id; an unknown reference is passed on as given, for the API to refuse. */
  async id(ref: string): Promise<string> {
    return (await this.find(ref))?.id ?? ref;
  }
  /** The role itself; NOT_FOUND when there is none. */
  async get(ref: string): Promise<RoleView> {
    const r = await this.find(ref);
    if (!r) throw new ApiError('NOT_FOUND', `no role "${ref}" (garrison role list shows them)`);
    return r;
  }
}

/** An administrator by id or name; the API's NOT_FOUND when neither. */
export async function resolveAdmin(client: Client, ref: string): Promise<AdminView> {
  const admins = await client.api.all(listAdmins, { query: { limit: PAGE_LIMIT_MAX } });
  const found = admins.find((a) => a.id === ref) ?? byName(admins, ref, 'administrator');
  return found ?? client.api.call(getAdmin, { params: { id: ref } });
}
