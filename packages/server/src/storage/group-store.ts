import type { GroupView } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { GroupsTable } from './schema.ts';

/** A group as stored; the API adds its path and effective policy (GroupView). */
export type Group = Omit<GroupView, 'path' | 'effectivePolicy'>;

function toGroup(r: GroupsTable): Group {
  return {
    id: r.id,
    parentId: r.parent_id,
    name: r.name,
    blockInheritance: r.block_inheritance === 1,
    // Not read since migration 0013 made them policies: the group service fills these from the group's own agent policy.
    checkInIntervalMinutes: null,
    policyEnforcementMinutes: null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class GroupStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async listGroups(): Promise<Group[]> {
    const rows = await this.#db.kysely.selectFrom('groups').selectAll().orderBy('name').execute();
    return rows.map(toGroup);
  }
  async getGroup(id: string): Promise<Group | undefined> {
    const row = await this.#db.kysely.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toGroup(row);
  }
  async insertGroup(g: Group): Promise<void> {
    await this.#db.kysely
      .insertInto('groups')
      .values({
        id: g.id,
        parent_id: g.parentId,
        name: g.name,
        block_inheritance: g.blockInheritance ? 1 : 0,
        check_in_interval_minutes: g.checkInIntervalMinutes,
        policy_enforcement_minutes: g.policyEnforcementMinutes,
        created_at: g.createdAt,
        updated_at: g.updatedAt,
      })
      .execute();
  }
  async updateGroup(g: Group): Promise<void> {
    await this.#db.kysely
      .updateTable('groups')
      .set({
        parent_id: g.parentId,
        name: g.name,
        block_inheritance: g.blockInheritance ? 1 : 0,
        updated_at: g.updatedAt,
      })
      .where('id', '=', g.id)
      .execute();
  }
  /** Deletes the group only if it is still empty, in one statement, so a concurrent enrolment cannot be orphaned. */
  async deleteGroupIfEmpty(id: string): Promise<boolean> {
    const k = this.#db.kysely;
    const result = await k
      .deleteFrom('groups')
      .where('id', '=', id)
      .where((eb) =>
        eb.and([
          eb.not(eb.exists(eb.selectFrom('devices').select('id').where('group_id', '=', id))),
          eb.not(eb.exists(eb.selectFrom('groups as g2').select('g2.id').where('g2.parent_id', '=', id))),
          eb.not(eb.exists(eb.selectFrom('tasks').select('id').where('scope_group_id', '=', id).where('deleted_at', 'is', null))),
          eb.not(eb.exists(eb.selectFrom('enrolment_tokens').select('id').where('group_id', '=', id).where('revoked_at', 'is', null))),
        ]),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }
}
