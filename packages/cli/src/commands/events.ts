import { Option, type Command } from 'commander';
import { act, type RunState } from '../context.ts';
import { formatTime, parseInstantOption, parseIntOption, table } from '../format.ts';
import { deviceNames, Groups, resolveDevice, resolveTaskId } from '../resolve.ts';
import type { StoredEvent } from '../types.ts';

export function registerEventCommands(program: Command, state: RunState): void {
  act(
    program
      .command('events')
      .description('The event log, newest first: run results, agent and server events, the audit trail')
      .option('--device <device>', 'events of this device (id, name or hostname)')
      .option('--group <group>', 'events of devices in this group and its subgroups (id or path)')
      .option('--task <task>', 'events of this task (id or name)')
      .option('--run <run>', 'events of this run')
      .addOption(new Option('--severity <level>', 'at least this severity').choices(['info', 'warning', 'error']))
      .option('--since <when>', 'from this time: ISO date-time, or back from now: 30m, 1h, 7d')
      .option('--until <when>', 'up to this time: ISO date-time, or back from now')
      .option('--kind <kind>', 'events of this kind (e.g. run.failed, audit.task.created)')
      .option('--product <id>', 'events of this product')
      .option('--limit <n>', 'at most this many (default 100, at most 10000)')
      .addOption(new Option('--format <format>', 'print the export format instead of a table').choices(['csv', 'jsonl'])),
    state,
    async (io, opts) => {
      const client = await io.client();
      const query: Record<string, string | number | undefined> = {
        severity: opts.severity,
        kind: opts.kind,
        product: opts.product,
        runId: opts.run,
        limit: parseIntOption(opts.limit, '--limit', 1, 10000),
        since: opts.since !== undefined ? parseInstantOption(opts.since, '--since') : undefined,
        until: opts.until !== undefined ? parseInstantOption(opts.until, '--until') : undefined,
      };
      if (opts.device !== undefined) query.deviceId = (await resolveDevice(client, opts.device)).id;
      if (opts.group !== undefined) query.groupId = await new Groups(client).id(opts.group);
      if (opts.task !== undefined) query.taskId = await resolveTaskId(client, opts.task);
      if (opts.format) {
        io.out(await client.request<string>('GET', '/events', { query: { ...query, format: opts.format }, text: true }));
        return;
      }
      const events = await client.get<StoredEvent[]>('/events', query);
      if (io.json) return io.print(events, () => '');
      if (events.length === 0) return io.out('no events\n');
      const names = await deviceNames(client, events.map((e) => e.deviceId));
      io.out(
        table(
          ['TIME', 'SEVERITY', 'KIND', 'DEVICE', 'MESSAGE'],
          events.map((e) => [formatTime(e.time), e.severity, e.kind, e.deviceId ? (names.get(e.deviceId) ?? e.deviceId) : '', e.message]),
        ),
      );
    },
  );
}
