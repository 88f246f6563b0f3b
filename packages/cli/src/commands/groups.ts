import type { Command } from 'commander';
import { createGroup, deleteGroup, listGroups, listGroupStatuses, updateGroup, PAGE_LIMIT_MAX, type GroupCreate, type GroupPatch } from '@garrison/protocol';
import { ApiError, UsageError } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { keyValues, parseIntOption, table, type Cell } from '../format.ts';
import { Groups } from '../resolve.ts';
import type { GroupView } from '../types.ts';

/** Rows of the tree: each group under its parent, siblings by name, with tree glyphs. */
export function groupTreeRows(groups: readonly GroupView[]): { group: GroupView; label: string }[] {
  const children = new Map<string | null, GroupView[]>();
  const ids = new Set(groups.map((g) => g.id));
  for (const g of groups) {
    // An administrator scoped to a group sees no parent for the top of their part of the tree.
    const parent = g.parentId !== null && ids.has(g.parentId) ? g.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), g]);
  }
  for (const list of children.values()) list.sort((a, b) => a.name.localeCompare(b.name));
  const rows: { group: GroupView; label: string }[] = [];
  const walk = (parent: string | null, prefix: string, top: boolean) => {
    const list = children.get(parent) ?? [];
    list.forEach((g, i) => {
      const last = i === list.length - 1;
      rows.push({ group: g, label: top ? g.name : `${prefix}${last ? '└─ ' : '├─ '}${g.name}` });
      walk(g.id, top ? '' : `${prefix}${last ? '   ' : '│  '}`, false);
    });
  };
  walk(null, '', true);
  return rows;
}

function policyCell(own: number | null, effective: number): string {
  return `${effective}m${own === null ? '' : '*'}`;
}

function groupDetails(g: GroupView): string {
  return keyValues([
    ['Group', g.path],
    ['ID', g.id],
    ['Check-in interval', `${g.effectivePolicy.checkInIntervalMinutes} min (${g.checkInIntervalMinutes === null ? 'inherited' : 'set on this group'})`],
    ['Policy enforcement', `${g.effectivePolicy.policyEnforcementMinutes} min (${g.policyEnforcementMinutes === null ? 'inherited' : 'set on this group'})`],
    ['Inheritance', g.blockInheritance ? 'blocked: tasks of parent groups do not apply' : 'inherits tasks of parent groups'],
  ]);
}

function minutesOrInherit(text: string | undefined, option: string): number | null | undefined {
  if (text === undefined) return undefined;
  if (text.trim().toLowerCase() === 'inherit') return null;
  return parseIntOption(text, option, 1, 10080);
}

export function registerGroupCommands(program: Command, state: RunState): void {
  const group = program.command('group').description('Groups: the tree devices live in, with policy and inheritance');

  act(
    group
      .command('list')
      .description('The group tree, with device counts and effective policy')
      .option('--no-counts', 'do not count devices per group'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const groups = await client.api.all(listGroups, { query: { limit: PAGE_LIMIT_MAX } });
      if (io.json) return io.print(groups, () => '');
      let counts: Map<string, number> | undefined;
      if (opts.counts !== false) {
        // Counted by the server (the group tree's statuses), whatever the size of the fleet.
        counts = new Map((await client.api.all(listGroupStatuses, { query: { limit: PAGE_LIMIT_MAX } })).map((g) => [g.groupId, g.devices]));
      }
      const rows: Cell[][] = groupTreeRows(groups).map(({ group: g, label }) => [
        label,
        ...(counts ? [counts.get(g.id) ?? 0] : []),
        policyCell(g.checkInIntervalMinutes, g.effectivePolicy.checkInIntervalMinutes),
        policyCell(g.policyEnforcementMinutes, g.effectivePolicy.policyEnforcementMinutes),
        g.blockInheritance ? 'blocked' : '',
        g.id,
      ]);
      io.out(table(['GROUP', ...(counts ? ['DEVICES'] : []), 'CHECK-IN', 'POLICY', 'INHERITANCE', 'ID'], rows));
      io.out('(* set on the group; other intervals are inherited)\n');
    },
  );

  act(
    group
      .command('create')
      .description('Create a group; NAME may be a path ("Servers/Web") under an existing group')
      .argument('<name>', 'the name, or a path whose last part is the new group')
      .option('--parent <group>', 'the parent group (id or path); default: the root')
      .option('-p, --parents', 'also create the missing groups of a path')
      .option('--check-in-interval <min>', 'check-in interval of the group in minutes')
      .option('--policy-interval <min>', 'policy enforcement interval in minutes')
      .option('--block-inheritance', "tasks of parent groups do not apply to this group's devices"),
    state,
    async (io, opts, [nameArg]) => {
      const client = await io.client();
      const groups = new Groups(client);
      const parts = nameArg!.split('/').map((s) => s.trim()).filter(Boolean);
      const name = parts.pop();
      if (!name) throw new UsageError('give the group a name');
      let parentId: string | undefined = opts.parent !== undefined ? await groups.id(opts.parent) : undefined;
      if (parts.length > 0) {
        const list = await groups.list();
        const root = list.find((g) => g.parentId === null);
        let cur: GroupView | undefined = opts.parent !== undefined ? await groups.get(opts.parent) : root;
        if (!cur) throw new ApiError('NOT_FOUND', 'the root group is not visible to this administrator; give --parent');
        const childOf = (parent: string, n: string) => list.find((g) => g.parentId === parent && g.name.toLowerCase() === n.toLowerCase());
        if (opts.parent === undefined && root && parts[0]!.toLowerCase() === root.name.toLowerCase() && !childOf(root.id, parts[0]!)) parts.shift();
        for (const p of parts) {
          let child = childOf(cur!.id, p);
          if (!child) {
            if (!opts.parents) throw new ApiError('NOT_FOUND', `group "${cur!.path}/${p}" does not exist (add --parents to create it)`);
            child = await client.api.call(createGroup, { body: { name: p, parentId: cur!.id } });
            list.push(child);
            if (!io.json) io.out(`created group ${child.path} (${child.id})\n`);
          }
          cur = child;
        }
        parentId = cur!.id;
      }
      const body: GroupCreate = { name };
      if (parentId !== undefined) body.parentId = parentId;
      const checkIn = parseIntOption(opts.checkInInterval, '--check-in-interval', 1, 10080);
      if (checkIn !== undefined) body.checkInIntervalMinutes = checkIn;
      const policy = parseIntOption(opts.policyInterval, '--policy-interval', 1, 10080);
      if (policy !== undefined) body.policyEnforcementMinutes = policy;
      if (opts.blockInheritance) body.blockInheritance = true;
      const created = await client.api.call(createGroup, { body });
      io.print(created, () => `created group ${created.path} (${created.id})\n`);
    },
  );

  act(
    group.command('rename').description('Rename a group').argument('<group>', 'id or path').argument('<name>', 'the new name'),
    state,
    async (io, _opts, [ref, name]) => {
      const client = await io.client();
      const id = await new Groups(client).id(ref!);
      const g = await client.api.call(updateGroup, { params: { id }, body: { name } });
      io.print(g, () => `renamed: ${g.path}\n`);
    },
  );

  act(
    group
      .command('move')
      .description('Move a group (with its subgroups and devices) under another group')
      .argument('<group>', 'id or path')
      .requiredOption('--parent <group>', 'the new parent (id or path)'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const groups = new Groups(client);
      const id = await groups.id(ref!);
      const g = await client.api.call(updateGroup, { params: { id }, body: { parentId: await groups.id(opts.parent) } });
      io.print(g, () => `moved: ${g.path}\n`);
    },
  );

  act(
    group.command('delete').description('Delete an empty group').argument('<group>', 'id or path'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const groups = new Groups(client);
      const g = await groups.find(ref!);
      await client.api.call(deleteGroup, { params: { id: g?.id ?? ref! } });
      io.print({ deleted: g?.id ?? ref }, () => `deleted group ${g?.path ?? ref}\n`);
    },
  );

  act(
    group
      .command('policy')
      .description("Show or set a group's check-in and policy-enforcement intervals and inheritance")
      .argument('<group>', 'id or path')
      .option('--check-in-interval <min|inherit>', 'minutes between agent check-ins, or inherit')
      .option('--policy-interval <min|inherit>', 'minutes between policy enforcements, or inherit')
      .option('--block-inheritance', 'tasks of parent groups stop applying here')
      .option('--allow-inheritance', 'tasks of parent groups apply here again'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const groups = new Groups(client);
      if (opts.blockInheritance && opts.allowInheritance) throw new UsageError('give --block-inheritance or --allow-inheritance, not both');
      const patch: GroupPatch = {};
      const checkIn = minutesOrInherit(opts.checkInInterval, '--check-in-interval');
      if (checkIn !== undefined) patch.checkInIntervalMinutes = checkIn;
      const policy = minutesOrInherit(opts.policyInterval, '--policy-interval');
      if (policy !== undefined) patch.policyEnforcementMinutes = policy;
      if (opts.blockInheritance) patch.blockInheritance = true;
      if (opts.allowInheritance) patch.blockInheritance = false;
      const g = Object.keys(patch).length
        ? await client.api.call(updateGroup, { params: { id: await groups.id(ref!) }, body: patch })
        : await groups.get(ref!);
      io.print(g, () => groupDetails(g));
    },
  );
}
