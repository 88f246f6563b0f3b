/**
 * Device identity (ADR 0009): credential rotation (the previous hash stays valid until the
 * agent first uses the new one), the machine identity that tells a cloned machine from the
 * original, and the administrator's requests to rotate or uninstall.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const column of ['credential_prev_hash', 'credential_rotated_at', 'rotate_requested_at', 'machine_identity', 'uninstall_requested_at', 'uninstalled_at', 'cloned_from']) {
    await db.schema.alterTable('devices').addColumn(column, 'text').execute();
  }
}
