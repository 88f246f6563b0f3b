import { Option, type Command } from 'commander';
import { act, type RunState } from '../context.ts';
import { formatTime, parseInstantOption, parseIntOption, table } from '../format.ts';
import { EVENT_EXPORT_MAX, listEvents, PAGE_LIMIT_MAX } from '@garrison/protocol';
import { Groups, resolveDevice, resolveTaskId } from '../resolve.ts';
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
      .option('--kind <kind>', 'events of these kinds, comma-separated; * matches anything (e.g. run.failed, audit.*, *.detection)')
      .option('--product <id>', 'events of this product')
      .option('--limit <n>', 'at most this many (default 100, at most 10000; an export holds every matching event)')
      .addOption(new Option('--format <format>', `print the export of every matching event (at most ${EVENT_EXPORT_MAX}) instead of a table`).choices(['csv', 'jsonl'])),
    state,
    async (io, opts) => {
      const client = await io.client();
      const limit = parseIntOption(opts.limit, '--limit', 1, 10000) ?? 100;
      const query: { severity?: 'info' | 'warning' | 'error'; kind?: string; product?: string; runId?: string; since?: string; until?: string; deviceId?: string; groupId?: string; taskId?: string } = {
        ...(opts.severity ? { severity: opts.severity as 'info' | 'warning' | 'error' } : {}),
        ...(opts.kind !== undefined ? { kind: opts.kind as string } : {}),
        ...(opts.product !== undefined ? { product: opts.product as string } : {}),
        ...(opts.run !== undefined ? { runId: opts.run as string } : {}),
        ...(opts.since !== undefined ? { since: parseInstantOption(opts.since, '--since') } : {}),
        ...(opts.until !== undefined ? { until: parseInstantOption(opts.until, '--until') } : {}),
      };
      if (opts.device !== undefined) query.deviceId = (await resolveDevice(client, opts.device)).id;
      if (opts.group !== undefined) query.groupId = await new Groups(client).id(opts.group);
      if (opts.task !== undefined) query.taskId = await resolveTaskId(client, opts.task);
      if (opts.format) {
        io.out(await client.request<string>('GET', '/events', { query: { ...query, format: opts.format }, text: true }));
        return;
      }
      const events: StoredEvent[] = [];
      for await (const page of client.api.pages(listEvents, { query: { ...query, limit: Math.min(limit, PAGE_LIMIT_MAX) } })) {
        events.push(...page.items.slice(0, limit - events.length));
        if (events.length >= limit) break;
      }
      if (io.json) return io.print(events, () => '');
      if (events.length === 0) return io.out('no events\n');
      io.out(
        table(
          ['TIME', 'SEVERITY', 'KIND', 'DEVICE', 'MESSAGE'],
          events.map((e) => [formatTime(e.time), e.severity, e.kind, e.deviceId ? (e.deviceName ?? e.deviceId) : '', e.message]),
        ),
      );
    },
  );
}
