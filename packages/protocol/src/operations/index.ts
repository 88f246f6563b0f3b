/**
 * Every operation of the API (ADR 0021), one module per area. `allOperations` lists them for
 * the server's check that each is registered once, and for clients that want the whole table.
 */
import type { OperationDef } from '../contract.ts';
import * as groups from './groups.ts';
import * as identity from './identity.ts';
import * as admin from './admin.ts';
import * as devices from './devices.ts';
import * as tasks from './tasks.ts';
import * as policies from './policies.ts';
import * as repository from './repository.ts';
import * as deployments from './deployments.ts';
import * as push from './push.ts';
import * as serverTasks from './server-tasks.ts';
import * as installation from './installation.ts';
import * as signIn from './sign-in.ts';
import * as agent from './agent.ts';
import * as server from './server.ts';
import * as notifications from './notifications.ts';
import * as savedSelections from './saved-selections.ts';
import * as consoleOps from './console.ts';
import * as dashboard from './dashboard.ts';

export * from './common.ts';
export * from './groups.ts';
export * from './identity.ts';
export * from './admin.ts';
export * from './devices.ts';
export * from './tasks.ts';
export * from './policies.ts';
export * from './repository.ts';
export * from './deployments.ts';
export * from './push.ts';
export * from './server-tasks.ts';
export * from './installation.ts';
export * from './sign-in.ts';
export * from './agent.ts';
export * from './server.ts';
export * from './notifications.ts';
export * from './saved-selections.ts';
export * from './console.ts';
export * from './dashboard.ts';

/** Values of the area modules that are operations (the modules also export their request schemas). */
function operationsOf(mod: Record<string, unknown>): OperationDef[] {
  return Object.values(mod).filter((v): v is OperationDef => typeof v === 'object' && v !== null && 'id' in v && 'method' in v && 'path' in v && 'response' in v);
}
export const allOperations: readonly OperationDef[] = [groups, identity, admin, devices, tasks, policies, repository, deployments, push, serverTasks, installation, signIn, agent, server, notifications, savedSelections, consoleOps, dashboard].flatMap((m) => operationsOf(m));
