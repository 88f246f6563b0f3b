import { Option, type Command } from 'commander';
import type { Run, Task } from '@garrison/protocol';
import { UsageError, seg, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatAgo, formatTime, keyValues, parseIntOption, table } from '../format.ts';
import { deviceNames, Groups, resolveDevice } from '../resolve.ts';
import type { DeviceDuplicateView, DeviceView, RefusalCounts } from '../types.ts';
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
      .option('--limit <n>', 'at most this many'),
    state,
    async (io, opts) => {
      if (opts.online && opts.offline) throw new UsageError('give --online or --offline, not both');
      const client = await io.client();
      const query: Record<string, string | number | boolean | undefined> = { search: opts.search, tag: opts.tag, limit: parseIntOption(opts.limit, '--limit', 1, 100000) };
      if (opts.group !== undefined) {
        query.groupId = await new Groups(client).id(opts.group);
        if (opts.subgroups === false) query.recursive = false;
      }
      if (opts.online) query.online = true;
      if (opts.offline) query.online = false;
      const devices = await client.get<DeviceView[]>('/devices', query);
      io.print(devices, () => (devices.length ? table(DEVICE_HEADERS, deviceRows(devices)) : 'no devices\n'));
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
      const d = await client.post<DeviceView>(`/devices/${seg((await device(client, ref!)).id)}/credential/rotate`);
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
      const d = await client.post<DeviceView>(`/devices/${seg((await device(client, ref!)).id)}/credential/revoke`);
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
      const d = await client.post<DeviceView>(`/devices/${seg((await device(client, ref!)).id)}/uninstall`);
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
      const moved = await client.patch<DeviceView>(`/devices/${seg(d.id)}`, { groupId: await new Groups(client).id(opts.group) });
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
      const updated = await client.patch<DeviceView>(`/devices/${seg(d.id)}`, { tags: next });
      io.print(updated, () => `${updated.name}: tags ${updated.tags.length ? updated.tags.join(', ') : '(none)'}\n`);
    },
  );

  act(
    dev.command('rename').description('Rename a device').argument('<device>', 'id, name or hostname').argument('<name>', 'the new name'),
    state,
    async (io, _opts, [ref, name]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const updated = await client.patch<DeviceView>(`/devices/${seg(d.id)}`, { name });
      io.print(updated, () => `renamed ${d.name} to ${updated.name}\n`);
    },
  );

  act(
    dev.command('delete').description('Delete a device and revoke its credential').argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      await client.delete(`/devices/${seg(d.id)}`);
      io.print({ deleted: d.id }, () => `deleted device ${d.name} (${d.id}); its agent can no longer connect\n`);
    },
  );

  act(
    dev.command('tasks').description("The device's effective tasks (its own, its groups', global ones)").argument('<device>', 'id, name or hostname'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const d = await device(client, ref!);
      const tasks = await client.get<Task[]>(`/devices/${seg(d.id)}/tasks`);
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
      const runs = await client.get<Run[]>(`/devices/${seg(d.id)}/runs`);
      if (io.json) return io.print(runs, () => '');
      const tasks = await client.get<Task[]>('/tasks');
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
      const dups = await client.get<DeviceDuplicateView[]>('/device-duplicates', { state: opts.state === 'all' ? undefined : opts.state });
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
      const d = await (await io.client()).post<DeviceDuplicateView>(`/device-duplicates/${seg(id!)}/approve`);
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
      const d = await (await io.client()).post<DeviceDuplicateView>(`/device-duplicates/${seg(id!)}/reject`);
      io.print(d, () => `rejected: the machine ${d.hostname} is refused from now on; device ${d.deviceId} is unchanged\n`);
    },
  );

  act(dev.command('refusals').description('Agent messages refused at the device boundary since the server started, by code and by device'), state, async (io) => {
    const client = await io.client();
    const r = await client.get<RefusalCounts>('/security/refusals');
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
