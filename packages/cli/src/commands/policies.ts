/**
 * `garrison policy …` and `garrison device policy`: product policies (PRODUCT.md "Policy",
 * docs/adr/0020-policies.md) from the command line. A policy sets some settings of its
 * product's policy type and may lock them; it is assigned to a group per product. Settings are
 * given as `--set key=JSON` (a value that is not JSON is taken as a string), so that scripts
 * can change one setting without writing the whole document; `edit` sends the revision it read,
 * and a policy changed meanwhile is refused with POLICY_REVISION_CONFLICT rather than
 * overwritten. `device policy` answers "why does this device have this value": each effective
 * setting with its origin and its lock.
 */
import type { Command } from 'commander';
import {
  assignGroupPolicy,
  copyPolicy,
  createPolicy,
  deletePolicy,
  exportPolicy,
  getDevicePolicy,
  getPolicy,
  getPolicyCompliance,
  importPolicy,
  listGroupPolicies,
  listPolicies as listPoliciesOp,
  listPolicyTypes,
  PAGE_LIMIT_MAX,
  previewGroupPolicy,
  previewPolicy,
  unassignGroupPolicy,
  updatePolicy,
  type DevicePolicyView,
  type PolicyComplianceCounts,
  type PolicyComplianceItem,
  type PolicyCompliancePage,
  type PolicyInput,
  type PolicyListItem,
  type PolicyPatch,
  type PolicyPreview,
  type PolicyProfile,
  type PolicyTypeView,
  type PolicyView,
  type SettingOrigin,
} from '@garrison/protocol';
import { ApiError, UsageError, type Client } from '../client.ts';
import { act, type Opts, type RunState } from '../context.ts';
import { formatTime, indent, keyValues, parseIntOption, table, type Cell } from '../format.ts';
import { readJson, writeText } from '../files.ts';
import { Groups, resolveDevice } from '../resolve.ts';

export type PolicyDetails = PolicyView;
export type PolicyTypeInfo = PolicyTypeView & { settingsSchema: { properties?: Record<string, unknown> } & Record<string, unknown> };
export type DevicePolicyAnswer = DevicePolicyView;

const STATES = ['compliant', 'drifted', 'failed', 'pending'];
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Every policy (all pages), of one product when given, each with the groups it is assigned to. */
export async function listPolicies(client: Client, product?: string): Promise<PolicyListItem[]> {
  return client.api.all(listPoliciesOp, { query: { limit: PAGE_LIMIT_MAX, ...(product ? { product } : {}) } });
}

/** A policy by id, else by name (exactly, else ignoring case); CONFLICT when several share it, the API's NOT_FOUND when none. */
export async function resolvePolicy(client: Client, ref: string): Promise<PolicyDetails> {
  try {
    return await client.api.call(getPolicy, { params: { id: ref } });
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'NOT_FOUND') throw err;
    const all = await listPolicies(client);
    const exact = all.filter((p) => p.name === ref);
    const named = exact.length ? exact : all.filter((p) => p.name.toLowerCase() === ref.trim().toLowerCase());
    if (named.length > 1) throw new ApiError('CONFLICT', `${named.length} policies are named "${ref}" (${named.map((p) => `${p.id} for ${p.product}`).join(', ')}); give the id`);
    if (named.length === 0) throw err;
    return client.api.call(getPolicy, { params: { id: named[0]!.id } });
  }
}

/** `key=JSON` → [key, value]; a value that is not JSON is the string itself. */
export function parseSetting(text: string): [string, unknown] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set "${text}": write KEY=VALUE, the value as JSON (such as checkInIntervalMinutes=30 or updateSources='[{"kind":"server"}]')`);
  const key = text.slice(0, eq).trim();
  const raw = text.slice(eq + 1);
  try {
    return [key, JSON.parse(raw)];
  } catch {
    return [key, raw];
  }
}

/** Settings and locks after --set, --unset, --lock and --unlock; unsetting a setting also drops its lock. */
export function applySettingOptions(settings: Record<string, unknown>, locked: readonly string[], o: { set?: string[]; unset?: string[]; lock?: string[]; unlock?: string[] }): { settings: Record<string, unknown>; locked: string[] } {
  const next = { ...settings };
  const locks = new Set(locked);
  for (const s of o.set ?? []) {
    const [k, v] = parseSetting(s);
    next[k] = v;
  }
  for (const k of o.unset ?? []) {
    delete next[k];
    locks.delete(k);
  }
  for (const k of o.lock ?? []) locks.add(k);
  for (const k of o.unlock ?? []) locks.delete(k);
  return { settings: next, locked: [...locks] };
}

/** The policy part of a file: an export document's `policy`, or a policy body as the API takes it. */
function policyBodyOf(doc: unknown): Record<string, unknown> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError('--file must hold a JSON object (a policy, or a policy export document)');
  const d = doc as Record<string, unknown>;
  if (d.format === 'garrison-policy' && typeof d.policy === 'object' && d.policy !== null) return { ...(d.policy as Record<string, unknown>) };
  const { id: _id, revision: _r, createdAt: _c, updatedAt: _u, assignedTo: _a, ...rest } = d;
  return rest;
}

export function valueText(v: unknown): string {
  return v === undefined ? '-' : JSON.stringify(v);
}

/** Where a value comes from, in words: "default", "policy X (rev 3) at group G", "profile P of policy X at group G". */
export function originText(o: SettingOrigin, groupPath: (id: string) => string = (id) => id): string {
  if (o.kind === 'default') return 'default';
  if (o.kind === 'policy') return `policy "${o.policyName}" (rev ${o.revision}) at ${groupPath(o.groupId)}`;
  return `profile "${o.profileName}" of policy "${o.policyName}" (rev ${o.revision}) at ${groupPath(o.groupId)}`;
}

function conditionText(p: PolicyProfile): string {
  const c = p.condition as Record<string, unknown>;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(c)) if (v !== undefined && !(Array.isArray(v) && v.length === 0)) parts.push(`${k}=${Array.isArray(v) ? v.join(',') : String(v)}`);
  return parts.join(' ') || '(matches no device)';
}

function policyDetailsText(p: PolicyDetails): string {
  const locked = new Set(p.locked);
  let text = keyValues([
    ['Policy', p.name],
    ['ID', p.id],
    ['Product', p.product],
    ['Revision', p.revision],
    ['Description', p.description],
    ['Assigned to', (p.assignedTo ?? []).map((a) => a.path).join(', ') || 'no group'],
    ['Changed', formatTime(p.updatedAt)],
  ]);
  const keys = Object.keys(p.settings);
  text += keys.length
    ? `\nSettings (the others are inherited):\n${indent(table(['SETTING', 'VALUE', 'LOCKED'], keys.map((k) => [k, valueText(p.settings[k]), locked.has(k)])))}\n`
    : '\nSettings: none set (all inherited)\n';
  const strayLocks = p.locked.filter((k) => !(k in p.settings));
  if (strayLocks.length) text += `Locked: ${strayLocks.join(', ')}\n`;
  if (p.profiles.length) {
    text += '\nProfiles (applied in ascending priority):\n';
    for (const pr of [...p.profiles].sort((a, b) => a.priority - b.priority)) {
      text += `  ${pr.name} [${pr.id}] priority ${pr.priority}${pr.enabled ? '' : ' (disabled)'} when ${conditionText(pr)}\n`;
      for (const [k, v] of Object.entries(pr.settings)) text += `    ${k} = ${valueText(v)}${pr.locked.includes(k) ? ' (locked)' : ''}\n`;
      for (const k of pr.locked.filter((k) => !(k in pr.settings))) text += `    ${k} (locked)\n`;
    }
  }
  return text;
}

export function previewText(pv: PolicyPreview): string {
  let text = `reaches ${pv.reached} device${pv.reached === 1 ? '' : 's'}; changes ${pv.changed}\n`;
  for (const d of pv.devices) {
    text += `${d.deviceName} (${d.deviceId}):\n`;
    for (const c of d.changes) {
      const lock = c.lockedBefore === c.lockedAfter ? (c.lockedAfter ? ' (locked)' : '') : c.lockedAfter ? ' (now locked)' : ' (now unlocked)';
      text += `  ${c.setting}: ${valueText(c.before)} -> ${valueText(c.after)}${lock}\n`;
    }
  }
  if (pv.truncated) text += `(only the first ${pv.devices.length} changed devices are listed)\n`;
  return text;
}

/** The human text of a device's effective policies: per product, each setting with value, origin and lock. */
export function devicePolicyText(d: DevicePolicyAnswer, groupPath: (id: string) => string = (id) => id, product?: string): string {
  let text = '';
  const comp = new Map(d.compliance.map((c) => [c.product, c]));
  for (const p of d.products.filter((x) => !product || x.product === product)) {
    const c = comp.get(p.product);
    text += `${p.product} (revision ${p.revision.slice(0, 12)})`;
    text += c ? `: ${c.state}${c.reportedAt ? ` as of ${formatTime(c.reportedAt)}` : ''}${c.reason ? ` (${c.reason})` : ''}\n` : '\n';
    if (p.profiles.length) text += `  active profiles: ${p.profiles.map((x) => x.profileName).join(', ')}\n`;
    const rows: Cell[][] = Object.entries(p.settings).map(([k, s]) => [k, valueText(s.value), originText(s.origin, groupPath), s.lockedBy ? `locked by ${originText(s.lockedBy, groupPath)}` : '']);
    text += indent(table(['SETTING', 'VALUE', 'ORIGIN', 'LOCK'], rows)) + '\n';
    for (const [k, s] of Object.entries(p.settings)) {
      for (const o of s.overridden) text += `  ${k}: ${valueText(o.value)} from ${originText(o.origin, groupPath)} is overridden by the lock\n`;
    }
    for (const dr of c?.drift ?? []) text += `  drift: ${dr.setting} expected ${valueText(dr.expected)}, found ${valueText(dr.found)} (${dr.action})\n`;
  }
  if (!text) text = product ? `no policy for ${product}\n` : 'no product policies\n';
  text += `next maintenance window: ${d.nextMaintenanceWindow ? `${formatTime(d.nextMaintenanceWindow.start)} to ${formatTime(d.nextMaintenanceWindow.end)}` : 'none'}\n`;
  return text;
}

const POLICY_HEADERS = ['NAME', 'PRODUCT', 'REV', 'SETTINGS', 'LOCKED', 'PROFILES', 'ASSIGNED TO', 'ID'];
/** Assigned groups are read per policy while the list is at most this long. */

function settingOptions(opts: Opts): { set: string[]; unset: string[]; lock: string[]; unlock: string[] } {
  return { set: opts.set ?? [], unset: opts.unset ?? [], lock: opts.lock ?? [], unlock: opts.unlock ?? [] };
}

export function registerPolicyCommands(program: Command, state: RunState): void {
  const policy = program
    .command('policy')
    .description("Product policies: settings (and locks) for a product on the devices of the groups they are assigned to")
    .addHelpText('after', '\nSettings: --set KEY=JSON (a value that is not JSON is a string), e.g. --set checkInIntervalMinutes=30 --set \'maintenanceWindows=[{"days":["sat"],"start":"02:00","durationMinutes":120}]\'.\n"garrison policy types" lists each product\'s settings.');

  act(policy.command('types').description("Each product's policy type: its settings, defaults and which may be locked").option('--product <id>', 'only this product'), state, async (io, opts) => {
    const client = await io.client();
    const types = ((await client.api.call(listPolicyTypes, {})).items as PolicyTypeInfo[]).filter((t) => !opts.product || t.product === opts.product);
    if (io.json) return io.print(types, () => '');
    for (const t of types) {
      io.out(`${t.product} (${t.productName})\n`);
      const keys = Object.keys(t.settingsSchema.properties ?? t.defaults);
      io.out(indent(table(['SETTING', 'DEFAULT', 'LOCKABLE'], keys.map((k) => [k, valueText(t.defaults[k]), t.lockable.includes(k)]))) + '\n');
    }
    if (!types.length) io.out('no policy types\n');
  });

  act(policy.command('list').description('Policies').option('--product <id>', 'only policies of this product'), state, async (io, opts) => {
    const client = await io.client();
    const list = await listPolicies(client, opts.product);
    if (io.json) return io.print(list, () => '');
    // The list carries the groups each policy is assigned to (those the caller reads; the others counted).
    const assigned = new Map(list.map((p) => [p.id, [...p.assignedTo.map((a) => a.path), ...(p.assignedElsewhere ? [`+${p.assignedElsewhere} not visible`] : [])].join(', ')]));
    io.out(
      list.length
        ? table(
            POLICY_HEADERS,
            list.map((p) => [p.name, p.product, p.revision, Object.keys(p.settings).length, p.locked.length, p.profiles.length, assigned.get(p.id) ?? '?', p.id]),
          )
        : 'no policies\n',
    );
  });

  act(policy.command('show').description('One policy: its settings, locks, profiles and groups').argument('<policy>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const p = await resolvePolicy(client, ref!);
    if (io.json) return io.print(p, () => '');
    io.out(policyDetailsText(p));
  });

  act(
    policy
      .command('create')
      .description('Create a policy from options, or from a file (a policy body or an export document) with options on top')
      .option('--name <name>', 'its name')
      .option('--product <id>', 'the product it configures (garrison: the agent itself)')
      .option('--description <text>', 'what it is for')
      .option('--set <key=json>', 'set a setting (repeatable)', collect)
      .option('--lock <key>', 'lock a setting it sets (repeatable)', collect)
      .option('--file <file>', 'start from this JSON file ("-": standard input)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const body: Record<string, unknown> = opts.file !== undefined ? policyBodyOf(await readJson(opts.file, '--file')) : {};
      if (opts.name !== undefined) body.name = opts.name;
      if (opts.product !== undefined) body.product = opts.product;
      if (opts.description !== undefined) body.description = opts.description;
      if (typeof body.name !== 'string' || !body.name) throw new UsageError('give the policy a --name');
      if (typeof body.product !== 'string' || !body.product) throw new UsageError('give the --product the policy configures ("garrison policy types" lists them)');
      const s = applySettingOptions((body.settings as Record<string, unknown>) ?? {}, (body.locked as string[]) ?? [], settingOptions(opts));
      body.settings = s.settings;
      body.locked = s.locked;
      const created = await client.api.call(createPolicy, { body: body as PolicyInput });
      io.print(created, () => `created policy "${created.name}" for ${created.product} (${created.id})\n`);
    },
  );

  act(
    policy
      .command('edit')
      .description('Change a policy; refused (POLICY_REVISION_CONFLICT) when it changed since it was read')
      .argument('<policy>', 'id or name')
      .option('--name <name>', 'rename it')
      .option('--description <text>', 'change its description')
      .option('--set <key=json>', 'set a setting (repeatable)', collect)
      .option('--unset <key>', 'stop setting it: it is inherited again (repeatable)', collect)
      .option('--lock <key>', 'lock a setting (repeatable)', collect)
      .option('--unlock <key>', 'unlock a setting (repeatable)', collect)
      .option('--profiles <file>', "replace the profiles with this file's JSON array")
      .option('--revision <n>', 'the revision the change starts from (default: the one just read)'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const s = applySettingOptions(cur.settings, cur.locked, settingOptions(opts));
      const body: Record<string, unknown> = { revision: parseIntOption(opts.revision, '--revision', 1) ?? cur.revision, settings: s.settings, locked: s.locked };
      if (opts.name !== undefined) body.name = opts.name;
      if (opts.description !== undefined) body.description = opts.description;
      if (opts.profiles !== undefined) {
        const profiles = await readJson(opts.profiles, '--profiles');
        if (!Array.isArray(profiles)) throw new UsageError('--profiles: the file must hold a JSON array of profiles');
        body.profiles = profiles;
      }
      const p = await client.api.call(updatePolicy, { params: { id: cur.id }, body: body as PolicyPatch });
      io.print(p, () => `changed policy "${p.name}": revision ${p.revision}\n`);
    },
  );

  act(
    policy.command('copy').description('Copy a policy (the copy is assigned to no group)').argument('<policy>', 'id or name').option('--name <name>', 'name of the copy (default: "NAME (copy)")'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const p = await client.api.call(copyPolicy, { params: { id: cur.id }, body: { name: opts.name ?? `${cur.name} (copy)` } });
      io.print(p, () => `copied to policy "${p.name}" (${p.id})\n`);
    },
  );

  act(policy.command('delete').description('Delete a policy (refused while it is assigned: POLICY_IN_USE)').argument('<policy>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const cur = await resolvePolicy(client, ref!);
    await client.api.call(deletePolicy, { params: { id: cur.id } });
    io.print({ deleted: cur.id }, () => `deleted policy "${cur.name}" (${cur.id})\n`);
  });

  act(
    policy.command('export').description('Export a policy as a portable JSON document').argument('<policy>', 'id or name').option('-o, --output <file>', 'write to this file instead of standard output'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const doc = await client.api.call(exportPolicy, { params: { id: cur.id } });
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (opts.output && opts.output !== '-') {
        await writeText(opts.output, text, '--output');
        io.err(`exported policy "${cur.name}" to ${opts.output}\n`);
      } else io.out(text);
    },
  );

  act(
    policy.command('import').description('Create a policy from an export document').argument('<file>', 'the document ("-": standard input)').option('--name <name>', 'name it this instead of the name in the document'),
    state,
    async (io, opts, [file]) => {
      const client = await io.client();
      const doc = await readJson(file!, 'import');
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`${file} is not a policy export document`);
      const p = await client.api.call(importPolicy, { body: opts.name !== undefined ? { ...(doc as object), name: opts.name } : doc });
      io.print(p, () => `imported policy "${p.name}" for ${p.product} (${p.id})\n`);
    },
  );

  act(
    policy
      .command('assign')
      .description("Make a policy the group's policy for its product (replacing the one it had)")
      .argument('<policy>', 'id or name')
      .requiredOption('--group <group>', 'the group (id or path)')
      .option('--block-inheritance', "the policies of the group's ancestors for this product stop applying (their locked settings still do)")
      .option('--preview', 'only show which devices would change'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const groups = new Groups(client);
      const g = await groups.get(opts.group);
      const body = { policyId: cur.id, blockInheritance: !!opts.blockInheritance };
      if (opts.preview) {
        const pv = await client.api.call(previewGroupPolicy, { params: { id: g.id, product: cur.product }, body });
        return io.print(pv, () => previewText(pv));
      }
      const a = await client.api.call(assignGroupPolicy, { params: { id: g.id, product: cur.product }, body });
      io.print(a, () => `assigned policy "${cur.name}" to ${g.path} for ${cur.product}${opts.blockInheritance ? ' (inheritance blocked)' : ''}\n`);
    },
  );

  act(
    policy
      .command('unassign')
      .description("Remove a group's policy for a product: its devices take the policy of the group above")
      .requiredOption('--group <group>', 'the group (id or path)')
      .requiredOption('--product <id>', 'the product'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const g = await new Groups(client).get(opts.group);
      await client.api.call(unassignGroupPolicy, { params: { id: g.id, product: opts.product } });
      io.print({ groupId: g.id, product: opts.product, policyId: null }, () => `${g.path} has no policy of its own for ${opts.product} now\n`);
    },
  );

  act(
    policy
      .command('group')
      .description("A group's own policies, per product")
      .argument('<group>', 'id or path'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const g = await new Groups(client).get(ref!);
      const r = await client.api.call(listGroupPolicies, { params: { id: g.id } });
      if (io.json) return io.print(r.items, () => '');
      io.out(r.items.length ? table(['PRODUCT', 'POLICY', 'INHERITANCE', 'POLICY ID'], r.items.map((a) => [a.product, a.policyName, a.blockInheritance ? 'blocked' : '', a.policyId])) : `${g.path} has no policies of its own\n`);
    },
  );

  act(
    policy
      .command('preview')
      .description('Which devices a change of the policy would change, and how (nothing is saved)')
      .argument('<policy>', 'id or name')
      .option('--set <key=json>', 'set a setting (repeatable)', collect)
      .option('--unset <key>', 'stop setting it (repeatable)', collect)
      .option('--lock <key>', 'lock a setting (repeatable)', collect)
      .option('--unlock <key>', 'unlock a setting (repeatable)', collect)
      .option('--limit <n>', 'list at most this many devices', '200'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const s = applySettingOptions(cur.settings, cur.locked, settingOptions(opts));
      const limit = parseIntOption(opts.limit, '--limit', 1, PAGE_LIMIT_MAX);
      const pv = await client.api.call(previewPolicy, { params: { id: cur.id }, ...(limit !== undefined ? { query: { limit } } : {}), body: { revision: cur.revision, settings: s.settings, locked: s.locked, profiles: cur.profiles } });
      io.print(pv, () => previewText(pv));
    },
  );

  act(
    policy
      .command('compliance')
      .description("The devices a policy reaches, by the state of their agent's last report")
      .argument('<policy>', 'id or name')
      .option('--state <state>', `only devices in this state (${STATES.join(', ')})`)
      .option('--limit <n>', 'at most this many devices', '500'),
    state,
    async (io, opts, [ref]) => {
      if (opts.state !== undefined && !STATES.includes(opts.state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}, not "${opts.state}"`);
      const client = await io.client();
      const cur = await resolvePolicy(client, ref!);
      const limit = parseIntOption(opts.limit, '--limit', 1, 100000)!;
      const items: PolicyComplianceItem[] = [];
      let counts: PolicyComplianceCounts | undefined;
      let cursor: string | null = null;
      const state = opts.state as PolicyComplianceItem['state'] | undefined;
      while (items.length < limit) {
        const page: PolicyCompliancePage = await client.api.call(getPolicyCompliance, { params: { id: cur.id }, query: { ...(state ? { state } : {}), ...(cursor ? { cursor } : {}), limit: Math.min(PAGE_LIMIT_MAX, limit - items.length) } });
        counts ??= page.states;
        items.push(...page.items);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      const c = counts ?? { compliant: 0, drifted: 0, failed: 0, pending: 0 };
      if (io.json) return io.print({ counts: c, items }, () => '');
      const groups = new Groups(client);
      const paths = new Map<string, string>();
      for (const i of items) if (!paths.has(i.groupId)) paths.set(i.groupId, await groups.pathOf(i.groupId));
      io.out(`policy "${cur.name}": compliant ${c.compliant}, drifted ${c.drifted}, failed ${c.failed}, pending ${c.pending}\n`);
      if (items.length) {
        io.out(
          table(
            ['DEVICE', 'GROUP', 'STATE', 'REPORTED', 'DRIFT', 'DEVICE ID'],
            items.map((i) => [i.deviceName, paths.get(i.groupId), i.state, formatTime(i.reportedAt), i.drift.map((d) => `${d.setting} (${d.action})`).join(', ') || i.reason, i.deviceId]),
          ),
        );
      }
      if (cursor) io.out(`(more devices: raise --limit)\n`);
    },
  );
}

/** `garrison device policy DEVICE`: the effective policy per product, with every value's origin and lock. */
export function registerDevicePolicyCommand(dev: Command, state: RunState): void {
  act(
    dev
      .command('policy')
      .description('The effective policy of a device per product: each value, where it comes from, who locked it; compliance and the next maintenance window')
      .argument('<device>', 'id, name or hostname')
      .option('--product <id>', 'only this product'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const d = await resolveDevice(client, ref!);
      const answer = await client.api.call(getDevicePolicy, { params: { id: d.id } });
      if (io.json) return io.print(opts.product ? { ...answer, products: answer.products.filter((p) => p.product === opts.product), compliance: answer.compliance.filter((c) => c.product === opts.product) } : answer, () => '');
      const groups = new Groups(client);
      const list = await groups.list().catch(() => []);
      const path = (id: string) => list.find((g) => g.id === id)?.path ?? id;
      io.out(`${d.name} in ${d.groupPath}\n${devicePolicyText(answer, path, opts.product)}`);
    },
  );
}
