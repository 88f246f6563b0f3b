/**
 * The policy pages' shared vocabulary: the API's answer shapes (docs/adr/0020-policies.md, the
 * policy routes), reading a product's policy type, and the words for where a value comes from
 * ("default", "policy X at group Y", "profile P of policy X"), so that the policy editor, the
 * group and the device pages say it the same way.
 */
import type {
  DevicePolicyView,
  GroupPolicyAssignmentView,
  GroupView,
  Page,
  Permission,
  Policy,
  PolicyComplianceCounts,
  PolicyComplianceItem,
  PolicyCompliancePage,
  PolicyListItem,
  PolicyProfile,
  PolicyView,
  SettingOrigin,
} from '@garrison/protocol';
import type { UseQueryResult } from '@tanstack/react-query';
import { listPolicyTypes } from '@garrison/protocol';
import type { JsonSchema } from '../tasks/schema.ts';
import { useOp } from '../api.ts';

/** The permission for creating, changing, assigning and deleting policies. */
export const POLICIES_WRITE = 'policies:write' as Permission;

export interface PolicyType {
  product: string;
  productName: string;
  settingsSchema: JsonSchema;
  defaults: Record<string, unknown>;
  lockable: string[];
}
export type PolicyDetails = PolicyView;
/** A page of the policy list: each policy with its groups and (asked for) its compliance counts. */
export type PolicyList = Page<PolicyListItem>;
export type ComplianceRow = PolicyComplianceItem;
export type ComplianceCounts = PolicyComplianceCounts;
export type ComplianceAnswer = PolicyCompliancePage;
export type GroupAssignment = GroupPolicyAssignmentView;
export type DevicePolicy = DevicePolicyView;

/** The installed policy types (their settings schemas read as the forms' JSON Schema). */
export function usePolicyTypes(): UseQueryResult<{ items: PolicyType[] }, Error> {
  return useOp(listPolicyTypes, {}, { staleTime: 60_000 }) as unknown as UseQueryResult<{ items: PolicyType[] }, Error>;
}

export const COMPLIANCE_STATES = [
  { key: 'compliant', label: 'Compliant' },
  { key: 'drifted', label: 'Drifted' },
  { key: 'failed', label: 'Failed' },
  { key: 'pending', label: 'Pending' },
] as const;

/** The settings of a policy type in the schema's order, each with its schema. */
export function settingsOf(t: PolicyType): [string, JsonSchema][] {
  const props = t.settingsSchema.properties ?? {};
  const keys = Object.keys(props).length ? Object.keys(props) : Object.keys(t.defaults);
  return keys.map((k) => [k, props[k] ?? {}]);
}

export function productName(types: readonly PolicyType[] | undefined, product: string): string {
  return types?.find((t) => t.product === product)?.productName ?? product;
}

/** A value in one line: JSON, shortened. */
export function valueText(v: unknown, max = 80): string {
  if (v === undefined) return '—';
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function groupPathOf(groups: readonly GroupView[] | undefined, id: string): string {
  return groups?.find((g) => g.id === id)?.path ?? id;
}

/** Where a value comes from, in words. */
export function originText(o: SettingOrigin, groups?: readonly GroupView[]): string {
  if (o.kind === 'default') return 'default';
  if (o.kind === 'policy') return `policy “${o.policyName}” (revision ${o.revision}) at ${groupPathOf(groups, o.groupId)}`;
  return `profile “${o.profileName}” of policy “${o.policyName}” (revision ${o.revision}) at ${groupPathOf(groups, o.groupId)}`;
}

/** An id for a new profile, unique in its policy, from its name. */
export function profileId(name: string, taken: readonly string[]): string {
  const base = name.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'profile';
  let id = base;
  for (let n = 2; taken.includes(id); n++) id = `${base}-${n}`;
  return id;
}

export function newProfile(taken: readonly PolicyProfile[]): PolicyProfile {
  const name = `Profile ${taken.length + 1}`;
  return { id: profileId(name, taken.map((p) => p.id)), name, priority: (Math.max(0, ...taken.map((p) => p.priority)) || 0) + 10, enabled: true, condition: {}, settings: {}, locked: [] };
}

/** The document the editor saves or previews. */
export interface PolicyDraft {
  name: string;
  description: string;
  product: string;
  settings: Record<string, unknown>;
  locked: string[];
  profiles: PolicyProfile[];
}

export function draftOf(p: Policy): PolicyDraft {
  return { name: p.name, description: p.description, product: p.product, settings: structuredClone(p.settings), locked: [...p.locked], profiles: structuredClone(p.profiles) };
}

/** Settings and locks after a setting is set (a value) or no longer set (undefined: its lock goes too). */
export function withSetting(d: { settings: Record<string, unknown>; locked: string[] }, key: string, value: unknown): { settings: Record<string, unknown>; locked: string[] } {
  const settings = { ...d.settings };
  if (value === undefined) {
    delete settings[key];
    return { settings, locked: d.locked.filter((k) => k !== key) };
  }
  settings[key] = value;
  return { settings, locked: d.locked };
}

export function withLock(d: { settings: Record<string, unknown>; locked: string[] }, key: string, on: boolean): { settings: Record<string, unknown>; locked: string[] } {
  const locked = d.locked.filter((k) => k !== key);
  return { settings: d.settings, locked: on ? [...locked, key] : locked };
}
