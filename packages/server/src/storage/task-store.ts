import type { Schedule, Scope, Task } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { TasksTable } from './schema.ts';

export function toTask(r: TasksTable): Task {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    product: r.product,
    type: r.type,
    settings: JSON.parse(r.settings) as Record<string, unknown>,
    schedule: JSON.parse(r.schedule) as Schedule,
    scope: JSON.parse(r.scope) as Scope,
    enabled: r.enabled === 1,
    revision: r.revision,
    origin: r.origin as Task['origin'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toRow(t: Task): Omit<TasksTable, 'deleted_at'> {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    product: t.product,
    type: t.type,
    settings: JSON.stringify(t.settings),
    schedule: JSON.stringify(t.schedule),
    scope: JSON.stringify(t.scope),
    scope_type: t.scope.type,
    scope_group_id: t.scope.type === 'group' ? t.scope.groupId : null,
    scope_device_id: t.scope.type === 'local' ? t.scope.deviceId : null,
    enabled: t.enabled ? 1 : 0,
    revision: t.revision,
    origin: t.origin,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  };
}

export class TaskStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async listTasks(): Promise<Task[]> {
    const rows = await this.#db.kysely.selectFrom('tasks').selectAll().where('deleted_at', 'is', null).orderBy('name').execute();
    return rows.map(toTask);
  }
  async getTask(id: string): Promise<Task | undefined> {
    const row = await this.#db.kysely.selectFrom('tasks').selectAll().where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
    return row && toTask(row);
  }
  /** Whether a task id was ever known, deleted or not: late results of a deleted task are still history. */
  async taskExisted(id: string): Promise<boolean> {
    const row = await this.#db.kysely.selectFrom('tasks').select('id').where('id', '=', id).executeTakeFirst();
    return row !== undefined;
  }
  async insertTask(t: Task): Promise<void> {
    await this.#db.kysely.insertInto('tasks').values({ ...toRow(t), deleted_at: null }).execute();
  }
  /** Writes a new revision only if the stored one is still `expectedRevision` (optimistic concurrency). */
  async replaceTask(t: Task, expectedRevision: number): Promise<boolean> {
    const { id, created_at: _c, ...rest } = toRow(t);
    const r = await this.#db.kysely
      .updateTable('tasks')
      .set(rest)
      .where('id', '=', id)
      .where('revision', '=', expectedRevision)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async softDeleteTask(id: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('tasks').set({ deleted_at: at, updated_at: at }).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
