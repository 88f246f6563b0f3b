import { Option, type Command } from 'commander';
import type { Run, Task } from '@garrison/protocol';
import { seg } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, keyValues, parseIntOption, table } from '../format.ts';
import { deviceNames, resolveDevice, resolveTaskId } from '../resolve.ts';
import { runRows, RUN_HEADERS } from './tasks.ts';

const RUN_STATES = ['pending', 'scheduled', 'running', 'succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'];

export function registerRunCommands(program: Command, state: RunState): void {
  const run = program.command('run').description('Runs: one execution of a task on one device');

  act(run.command('show').description('One run, with its output tail').argument('<run>', 'run id'), state, async (io, _opts, [id]) => {
    const client = await io.client();
    const r = await client.get<Run>(`/runs/${seg(id!)}`);
    if (io.json) return io.print(r, () => '');
    const [task, names] = await Promise.all([client.get<Task>(`/tasks/${seg(r.taskId)}`).catch(() => undefined), deviceNames(client, [r.deviceId])]);
    io.out(
      keyValues([
        ['Run', r.id],
        ['Task', task ? `${task.name} (${r.taskId})` : r.taskId],
        ['Device', names.has(r.deviceId) ? `${names.get(r.deviceId)} (${r.deviceId})` : r.deviceId],
        ['State', r.percent !== null && r.state === 'running' ? `running ${r.percent}%` : r.state],
        ['Cause', r.cause],
        ['Attempt', r.attempt],
        ['Created', formatTime(r.createdAt)],
        ['Started', formatTime(r.startedAt)],
        ['Ended', formatTime(r.endedAt)],
        ['Exit code', r.exitCode],
        ['Reason', r.reason],
        ...(r.requestId ? [['Request', r.requestId] as const] : []),
      ]),
    );
    io.out(r.outputTail ? `Output (tail):\n${r.outputTail.replace(/\n?$/, '\n')}` : 'Output: (none)\n');
  });

  act(
    run
      .command('list')
      .description('Runs, newest first')
      .option('--task <task>', 'runs of this task (id or name)')
      .option('--device <device>', 'runs on this device (id, name or hostname)')
      .addOption(new Option('--state <state>', 'runs in this state').choices(RUN_STATES))
      .option('--limit <n>', 'at most this many (default 100)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const tasks = await client.get<Task[]>('/tasks');
      const query: Record<string, string | number | undefined> = { state: opts.state, limit: parseIntOption(opts.limit, '--limit', 1, 10000) };
      if (opts.task !== undefined) query.taskId = await resolveTaskId(client, opts.task, tasks);
      if (opts.device !== undefined) query.deviceId = (await resolveDevice(client, opts.device)).id;
      const runs = await client.get<Run[]>('/runs', query);
      if (io.json) return io.print(runs, () => '');
      if (runs.length === 0) return io.out('no runs\n');
      const names = await deviceNames(client, runs.map((r) => r.deviceId));
      io.out(table(RUN_HEADERS, runRows(runs, new Map(tasks.map((t) => [t.id, t.name])), names)));
    },
  );
}
