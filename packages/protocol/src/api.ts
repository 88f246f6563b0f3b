/**
 * The shapes of the admin API's answers that are not tasks, runs or schedules (those are in
 * task.ts, run.ts, schedule.ts). The server returns them and the CLI and console read them,
 * so they live here, in the wire contract.
 */
import type { InstalledProduct } from './inventory.ts';

export interface Me {
  kind: 'admin' | 'system';
  adminId?: string;
  name: string;
  role?: string;
  scopeGroupId?: string | null;
}

export interface GroupView {
  id: string;
  parentId: string | null;
  name: string;
  blockInheritance: boolean;
  checkInIntervalMinutes: number | null;
  policyEnforcementMinutes: number | null;
  createdAt: string;
  updatedAt: string;
  path: string;
  effectivePolicy: { checkInIntervalMinutes: number; policyEnforcementMinutes: number };
}

export interface DeviceView {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
  osPlatform: string;
  osName: string;
  osVersion: string;
  arch: string;
  addresses: string[];
  agentVersion: string;
  timeZone: string;
  products: InstalledProduct[];
  tags: string[];
  enrolledAt: string;
  lastContactAt: string | null;
  credentialRevoked: boolean;
  updatedAt: string;
  online: boolean;
  groupPath: string;
}

/** What GET /tasks/:id/targets returns per device. */
export interface DeviceSummary {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
}

export interface EnrolmentTokenView {
  id: string;
  groupId: string;
  name: string;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
  createdAt: string;
  createdBy: string;
  groupPath: string;
  state: 'active' | 'expired' | 'revoked' | 'exhausted';
  token?: string;
}

export interface EventView {
  id: number;
  time: string;
  severity: 'info' | 'warning' | 'error';
  kind: string;
  message: string;
  actor?: string | null;
  deviceId?: string | null;
  groupId?: string | null;
  taskId?: string | null;
  runId?: string | null;
  product?: string | null;
  data?: Record<string, unknown> | null;
}

export interface SecretMeta {
  name: string;
  description: string;
  createdAt: string;
  updatedAt: string;
}

export interface RunNowResult {
  requestId: string;
  taskId: string;
  targets: number;
  delivered: number;
  expiresAt: string;
}

export interface ServerSettings {
  eventRetentionDays: number;
  runRetentionDays: number;
}
