import { Argument, Option, type Command } from 'commander';
import {
  approveDeviceDuplicate,
  bulkDevices,
  DEVICE_SORTS,
  DEVICE_STATUSES,
  deleteDevice,
  getRefusalCounts,
  listDeviceDuplicates,
  listDeviceRuns,
  listDevices,
  listDeviceTasks,
  listTasks,
  PAGE_LIMIT_MAX,
  rejectDeviceDuplicate,
  revokeDeviceCredential,
  rotateDeviceCredential,
  uninstallDeviceAgent,
  updateDevice,
  type DeviceBulkAction,
  type DeviceBulkActionName,
  type DeviceFilter,
  type DeviceListQuery,
  type Task,
} from '@garrison/protocol';
import { UsageError, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatAgo, formatTime, keyValues, parseIntOption, table } from '../format.ts';
import { deviceNames, Groups, resolveDevice, resolveTaskId } from '../resolve.ts';
import type { DeviceView } from '../types.ts';
import { runRows, RUN_HEADERS, taskRows, TASK_HEADERS } from './tasks.ts';
import { registerDevicePolicyCommand } from './policies.ts';

export function deviceRows(devices: readonly DeviceView[], now = Date.now()) {
  return devices.map((d) => [
    d.name,
    d.hostname,
    `${d.osName} ${d.osVersion}`.trim(),
    d.groupPath,
    d.online ? 'yes' : 'no',
    formatAgo(d.lastContactAt, now),
    d.agentVersion,
    d.id,
  ]);
}
export const DEVICE_HEADERS = ['NAME', 'HOSTNAME', 'OS', 'GROUP', 'ONLINE', 'LAST CONTACT', 'AGENT', 'ID'];

function deviceDetails(d: DeviceView): string {
  return keyValues([
    ['Device', d.name],
    ['ID', d.id],
    ['Hostname', d.hostname],
    ['OS', `${d.osName} ${d.osVersion} (${d.osPlatform}, ${d.arch})`],
    ['Group', d.groupPath],
    ['State', d.online ? 'online' : 'offline'],
    ['Last contact', d.lastContactAt ? `${formatTime(d.lastContactAt)} (${formatAgo(d.lastContactAt)})` : 'never'],
    ['Enrolled', formatTime(d.enrolledAt)],
    ['Agent version', d.agentVersion],
    ['Time zone', d.timeZone],
    ['Addresses', d.addresses.join(', ')],
    ['Tags', d.tags.join(', ')],
    ['Products', d.products.map((p) => `${p.id} ${p.version}${p.running === false ? ' (stopped)' : ''}`).join(', ')],
    ...(d.credentialRevoked ? [['Credential', 'revoked'] as const] : []),
    ...(d.credentialRotatedAt ? [['Credential rotated', formatTime(d.credentialRotatedAt)] as const] : []),
    ...(d.rotateRequested ? [['Rotation', 'requested, waiting for the agent'] as const] : []),
    ...(d.uninstallRequested ? [['Uninstall', 'requested, waiting for the agent'] as const] : []),
    ...(d.uninstalledAt ? [['Uninstalled', formatTime(d.uninstalledAt)] as const] : []),
    ...(d.clonedFrom ? [['Cloned from', d.clonedFrom] as const] : []),
  ]);
}

async function device(client: Client, ref: string): Promise<DeviceView> {
  return resolveDevice(client, ref);
}

export function registerDeviceCommands(program: Command, state: RunState): void {
  const dev = program.command('device').description('Devices: list, inspect, move, tag, rename, delete; duplicates and refusals');

  act(
    dev
      .command('list')
      .description('Devices, filtered')
      .option('--group <group>', 'in this group and its subgroups (id or path)')
      .option('--no-subgroups', 'with --group: only devices directly in the group')
      .option('--search <text>', 'name or hostname contains')
      .option('--tag <tag>', 'has this tag')
      .option('--online', 'only online devices')
      .option('--offline', 'only offline devices')
      .addOption(new Option('--status <status>', 'only devices in this state').choices([...DEVICE_STATUSES]))
      .option('--os <name>', 'OS name (exact, any case)')
      .option('--platform <platform>', 'OS platform: linux, darwin, win32, ...')
      .option('--agent-version <version>', 'agent version (exact)')
      .option('--not-seen-for <days>', 'last contact more than this many days ago (or never)')
      .option('--seen-within <days>', 'last contact within this many days')
      .addOption(new Option('--sort <key>', 'sort by').choices([...DEVICE_SORTS]).default('name'))
      .option('--desc', 'in descending order')
      .option('--limit <n>', 'at most this many'),
    state,
    async (io, opts) => {
      if (opts.online && opts.offline) throw new UsageError('give --online or --offline, not both');
      const client = await io.client();
      const limit = parseIntOption(opts.limit, '--limit', 1, 1000000);
      const query: DeviceListQuery = {
        search: opts.search,
        tag: opts.tag,
        status: opts.status,
        osName: opts.os,
        osPlatform: opts.platform,
        agentVersion: opts.agentVersion,
        notSeenForDays: parseIntOption(opts.notSeenFor, '--not-seen-for', 1, 36500),
        seenWithinDays: parseIntOption(opts.seenWithin, '--seen-within', 1, 36500),
        sort: opts.sort,
        order: opts.desc ? 'desc' : 'asc',
        limit: Math.min(limit ?? PAGE_LIMIT_MAX, PAGE_LIMIT_MAX),
      };
      if (opts.group !== undefined) {
        query.groupId = await new Groups(client).id(opts.group);
        if (opts.subgroups === false) query.recursive = false;
      }
      if (opts.online) query.online = true;
      if (opts.offline) query.online = false;
      const devices: DeviceView[] = [];
      for await (const d of client.api.each(listDevices, { query })) {
        devices.push(d);
        if (limit !== undefined && devices.length >= limit) break;
      }
      io.print(devices, () => (devices.length ? table(DEVICE_HEADERS, deviceRows(devices)) : 'no devices\n'));
    },
  );

  // One action on many devices: those named, or every device a filter matches (ADR 0021, POST /devices/bulk).
  const BULK_ACTIONS: Record<string, DeviceBulkActionName> = { tag: 'addTags', untag: 'removeTags', move: 'move', delete: 'delete', 'check-in': 'checkIn', 'run-task': 'runTask' };
  act(
    dev
      .command('bulk')
      .description('Tag, untag, move, delete, check in now or run a task now on many devices: those named, or with --where-… every device that matches')
      .addArgument(new Argument('<action>', 'what to do').choices(Object.keys(BULK_ACTIONS)))
      .argument('[devices...]', 'ids, names or hostnames (or give --where-… filters)')
      .option('--tags <tags>', 'tag, untag: the tags, separated by commas')
      .option('--to <group>', 'move: the group to move to (id or path)')
      .option('--task <task>', 'run-task: the task (id or name)')
      .option('--where-group <group>', 'every device in this group and its subgroups')
      .option('--where-tag <tag>', 'every device with this tag')
      .option('--where-search <text>', 'every device whose name or hostname contains this')
      .addOption(new Option('--where-status <status>', 'every device in this state').choices([...DEVICE_STATUSES]))
      .option('--where-not-seen-for <days>', 'every device not seen for this many days'),
    state,
    async (io, opts, [action, ...refs]) => {
      const client = await io.client();
      const filter: DeviceFilter = {};
      if (opts.whereGroup !== undefined) filter.groupId = await new Groups(client).id(opts.whereGroup);
      if (opts.whereTag !== undefined) filter.tag = opts.whereTag;
      if (opts.whereSearch !== undefined) filter.search = opts.whereSearch;
      if (opts.whereStatus !== undefined) filter.status = opts.whereStatus;
      const notSeen = parseIntOption(opts.whereNotSeenFor, '--where-not-seen-for', 1, 36500);
      if (notSeen !== undefined) filter.notSeenForDays = notSeen;
      const filtered = Object.keys(filter).length > 0;
      if (filtered === refs.length > 0) throw new UsageError('name the devices or give --where-… filters (not both)');
      const body: DeviceBulkAction = { action: BULK_ACTIONS[action!]!, ...(filtered ? { filter } : { deviceIds: await Promise.all(refs.map(async (r) => (await device(client, r)).id)) }) };
      if (body.action === 'addTags' || body.action === 'removeTags') {
        if (!opts.tags) throw new UsageError(`${action} needs --tags`);
        body.tags = String(opts.tags).split(',').map((x) => x.trim()).filter(Boolean);
      }
      if (body.action === 'move') {
        if (!opts.to) throw new UsageError('move needs --to <group>');
        body.groupId = await new Groups(client).id(opts.to);
      }
      if (body.action === 'runTask') {
        if (!opts.task) throw new UsageError('run-task needs --task <task>');
        body.taskId = await resolveTaskId(client, opts.task);
      }
      const r = await client.api.call(bulkDevices, { body });
      io.print(r, () => `${action}: ${r.done} done, ${r.unchanged} unchanged, ${r.refused} refused (no permission), ${r.notFound} not found (of ${r.matched} matched)${r.runRequestId ? `; run-now request ${r.runRequestId}` : ''}\n`);
    },
  );

  act(
    dev.command('show').description('One device with its inventory').argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const d = await device(await io.client(), ref!);
      io.print(d, () => deviceDetails(d));
    },
  );

  act(
    dev
      .command('rotate-credential')
      .description("Ask the agent for a new credential (at once if it is connected, else at its next check-in)")
      .argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await client.api.call(rotateDeviceCredential, { params: { id: (await device(client, ref!)).id } });
      io.print(d, () => `credential rotation requested for ${d.name}\n`);
    },
  );
  act(
    dev
      .command('revoke')
      .description('Revoke the device credential: the agent is disconnected at once and must be enrolled again')
      .argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await client.api.call(revokeDeviceCredential, { params: { id: (await device(client, ref!)).id } });
      io.print(d, () => `revoked the credential of ${d.name}; its agent was disconnected\n`);
    },
  );
  act(
    dev
      .command('uninstall')
      .description('Ask the agent to uninstall itself (the device record and its history are kept)')
      .argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await client.api.call(uninstallDeviceAgent, { params: { id: (await device(client, ref!)).id } });
      io.print(d, () => `uninstall requested on ${d.name}${d.online ? '' : ' (offline: at its next check-in)'}\n`);
    },
  );

  act(
    dev
      .command('move')
      .description('Move a device to another group')
      .argument('<device>', 'id, name or hostname')
      .requiredOption('--group <group>', 'the new group (id or path)'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const moved = await client.api.call(updateDevice, { params: { id: d.id }, body: { groupId: await new Groups(client).id(opts.group) } });
      io.print(moved, () => `moved ${moved.name} to ${moved.groupPath}\n`);
    },
  );

  act(
    dev
      .command('tag')
      .description('Add tags to a device, or remove them with --remove')
      .argument('<device>', 'id, name or hostname')
      .argument('<tags...>', 'tags')
      .option('--remove', 'remove these tags instead'),
    state,
    async (io, opts, [ref, ...tags]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const next = opts.remove ? d.tags.filter((t) => !tags.includes(t)) : [...new Set([...d.tags, ...tags])];
      const updated = await client.api.call(updateDevice, { params: { id: d.id }, body: { tags: next } });
      io.print(updated, () => `${updated.name}: tags ${updated.tags.length ? updated.tags.join(', ') : '(none)'}\n`);
    },
  );

  act(
    dev.command('rename').description('Rename a device').argument('<device>', 'id, name or hostname').argument('<name>', 'the new name'),
    state,
    async (io, _opts, [ref, name]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const updated = await client.api.call(updateDevice, { params: { id: d.id }, body: { name: name! } });
      io.print(updated, () => `renamed ${d.name} to ${updated.name}\n`);
    },
  );

  act(
    dev.command('delete').description('Delete a device and revoke its credential').argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      await client.api.call(deleteDevice, { params: { id: d.id } });
      io.print({ deleted: d.id }, () => `deleted device ${d.name} (${d.id}); its agent can no longer connect\n`);
    },
  );

  act(
    dev.command('tasks').description("The device's effective tasks (its own, its groups', global ones)").argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const tasks: Task[] = await client.api.all(listDeviceTasks, { params: { id: d.id }, query: { limit: PAGE_LIMIT_MAX } });
      if (io.json) return io.print(tasks, () => '');
      io.out(tasks.length ? table(TASK_HEADERS, await taskRows(client, tasks)) : `no tasks apply to ${d.name}\n`);
    },
  );

  registerDevicePolicyCommand(dev, state);

  act(
    dev.command('runs').description("The device's runs, newest first").argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      // The newest 200, as before paging: the CLI shows a recent history, not every run.
      const runs = (await client.api.call(listDeviceRuns, { params: { id: d.id }, query: { limit: 200 } })).items;
      if (io.json) return io.print(runs, () => '');
      const tasks = await client.api.all(listTasks, { query: { limit: PAGE_LIMIT_MAX } });
      const names = new Map(tasks.map((t) => [t.id, t.name]));
      io.out(runs.length ? table(RUN_HEADERS, runRows(runs, names, new Map([[d.id, d.name]]))) : `no runs on ${d.name}\n`);
    },
  );

  // Machines that presented another device's credential with another machine identity (a
  // cloned image, a copied credential): quarantined, nothing merged, until someone decides.
  act(
    dev
      .command('duplicates')
      .description("Machines that presented another device's credential, waiting to be approved as new devices or rejected")
      .addOption(new Option('--state <state>', 'which duplicates to list').choices(['pending', 'approved', 'rejected', 'all']).default('pending')),
    state,
    async (io, opts) => {
      const client = await io.client();
      const dups = await client.api.all(listDeviceDuplicates, { query: { state: opts.state === 'all' ? undefined : opts.state, limit: PAGE_LIMIT_MAX } });
      if (io.json) return io.print(dups, () => '');
      if (dups.length === 0) return io.out(`no ${opts.state === 'all' ? '' : `${opts.state} `}duplicates\n`);
      const names = await deviceNames(client, dups.flatMap((d) => [d.deviceId, d.newDeviceId]));
      io.out(
        table(
          ['HOSTNAME', 'CREDENTIAL OF', 'STATE', 'SEEN', 'FIRST SEEN', 'LAST SEEN', 'ADDRESS', 'DECIDED', 'ID'],
          dups.map((d) => [
            d.hostname,
            names.get(d.deviceId) ?? d.deviceId,
            d.state === 'approved' && d.newDeviceId ? `approved as ${names.get(d.newDeviceId) ?? d.newDeviceId}` : d.state,
            d.seenCount,
            formatTime(d.firstSeenAt),
            formatTime(d.lastSeenAt),
            d.remoteAddress,
            d.decidedBy ? `${d.decidedBy} ${formatTime(d.decidedAt)}` : '',
            d.id,
          ]),
        ),
      );
    },
  );
  act(
    dev
      .command('approve-duplicate')
      .description("Approve a duplicate as a new device in the original's group; it takes its own identity at its next check-in")
      .argument('<id>', 'duplicate id (garrison device duplicates)'),
    state,
    async (io, _opts, [id]) => {
      const d = await (await io.client()).api.call(approveDeviceDuplicate, { params: { id: id! } });
      io.print(d, () => `approved: the machine ${d.hostname} takes the identity of the new device ${d.newDeviceId} (at once if it is connected, else at its next contact); device ${d.deviceId} is unchanged\n`);
    },
  );
  act(
    dev
      .command('reject-duplicate')
      .description('Reject a duplicate: that machine is refused from now on')
      .argument('<id>', 'duplicate id (garrison device duplicates)'),
    state,
    async (io, _opts, [id]) => {
      const d = await (await io.client()).api.call(rejectDeviceDuplicate, { params: { id: id! } });
      io.print(d, () => `rejected: the machine ${d.hostname} is refused from now on; device ${d.deviceId} is unchanged\n`);
    },
  );

  act(dev.command('refusals').description('Agent messages refused at the device boundary since the server started, by code and by device'), state, async (io) => {
    const client = await io.client();
    const r = await client.api.call(getRefusalCounts, {});
    if (io.json) return io.print(r, () => '');
    const codes = Object.entries(r.byCode).sort((a, b) => b[1] - a[1]);
    let out = keyValues([
      ['Since', formatTime(r.since)],
      ['Refused', r.total],
    ]);
    if (codes.length) out += `\n${table(['CODE', 'COUNT'], codes)}`;
    if (r.devices.length) {
      const names = await deviceNames(client, r.devices.map((d) => d.deviceId));
      out += `\n${table(
        ['DEVICE', 'REFUSED', 'CODES', 'LAST', 'ID'],
        r.devices.map((d) => [names.get(d.deviceId) ?? d.deviceId, d.total, Object.entries(d.byCode).map(([c, n]) => `${c} ${n}`).join(', '), formatTime(d.lastAt), d.deviceId]),
      )}`;
    }
    io.out(out);
  });
}
