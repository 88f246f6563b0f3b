/**
 * The server task types this server offers: the only list that names them. Adding a server
 * task is a module implementing `ServerTaskType` plus one entry here; the runner, the API,
 * the CLI and the console take it from there.
 */
import type { TSchema } from 'typebox';
import { checker, type Checker, type ServerTaskTypeInfo } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { assertNoCredentialLiterals } from '../plugins/registry.ts';
import type { ServerTaskEnvironment, ServerTaskType } from './server-task.ts';
import { databaseMaintenanceTaskType } from './database-maintenance.ts';
import { repositoryDownloadTaskType } from './repository-download.ts';
import { reportTaskType } from './report.ts';
import { backupTaskType } from './backup.ts';
import { installationPackageTaskType } from './installation-package.ts';

export const builtinServerTaskTypes: readonly ServerTaskType[] = [databaseMaintenanceTaskType, backupTaskType, reportTaskType, repositoryDownloadTaskType, installationPackageTaskType];

export class ServerTaskTypes {
  readonly #types = new Map<string, { type: ServerTaskType; checker: Checker<TSchema> }>();
  constructor(types: readonly ServerTaskType[] = builtinServerTaskTypes) {
    for (const t of types) {
      if (this.#types.has(t.type)) throw new Error(`server task type ${t.type} is defined twice`);
      this.#types.set(t.type, { type: t, checker: checker(t.settingsSchema) });
    }
  }
  list(): ServerTaskTypeInfo[] {
    return [...this.#types.values()].map(({ type: t }) => ({ type: t.type, name: t.name, description: t.description, settingsSchema: t.settingsSchema }));
  }
  has(type: string): boolean {
    return this.#types.has(type);
  }
  get(type: string): ServerTaskType {
    const t = this.#types.get(type);
    if (!t) throw new AppError('TASK_TYPE_UNKNOWN', `there is no server task type "${type}"`, { available: [...this.#types.keys()] });
    return t.type;
  }
  /** Settings as stored (secret references, not values): credentials only by reference, then the schema, then the type's own checks. */
  async validateSettings(type: string, settings: Record<string, unknown>, env: ServerTaskEnvironment): Promise<void> {
    const t = this.get(type);
    assertNoCredentialLiterals(settings);
    const c = this.#types.get(type)!.checker;
    if (!c.check(settings)) throw new AppError('SETTINGS_INVALID', `settings do not match the schema of server task type ${type}`, { issues: c.issues(settings) });
    const problems = (await t.validate?.(settings, env)) ?? [];
    if (problems.length > 0) throw new AppError('SETTINGS_INVALID', problems.join('; '), { issues: problems.map((m) => ({ path: '/', message: m })) });
  }
}
