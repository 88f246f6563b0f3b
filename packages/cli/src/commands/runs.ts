import { Option, type Command } from 'commander';
import { getRun, getTask, listRuns, PAGE_LIMIT_MAX, type Run, type RunListQuery } from '@garrison/protocol';
import { act, type RunState } from '../context.ts';
import { formatTime, keyValues, parseIntOption, table } from '../format.ts';
import { deviceNames, resolveDevice, resolveTaskId } from '../resolve.ts';
import { allTasks, runRows, RUN_HEADERS } from './tasks.ts';

const RUN_STATES = ['pending', 'scheduled', 'running', 'succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'];

export function registerRunCommands(program: Command, state: RunState): void {
  const run = program.command('run').description('Runs: one execution of a task on one device');

  act(run.command('show').description('One run, with its output tail').argument('<run>', 'run id'), state, async (io, _opts, [id]) => {
    const client = await io.client();
    const r = await client.api.call(getRun, { params: { id: id! } });
    if (io.json) return io.print(r, () => '');
    const [task, names] = await Promise.all([client.api.call(getTask, { params: { id: r.taskId } }).catch(() => undefined), deviceNames(client, [r.deviceId])]);
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
      const tasks = await allTasks(client);
      const limit = parseIntOption(opts.limit, '--limit', 1, 10000) ?? 100;
      const query: RunListQuery = { ...(opts.state ? { state: opts.state as Run['state'] } : {}), limit: Math.min(limit, PAGE_LIMIT_MAX) };
      if (opts.task !== undefined) query.taskId = await resolveTaskId(client, opts.task, tasks);
      if (opts.device !== undefined) query.deviceId = (await resolveDevice(client, opts.device)).id;
      // Newest first, page after page until --limit.
      const runs: Run[] = [];
      for await (const r of client.api.each(listRuns, { query })) {
        runs.push(r);
        if (runs.length >= limit) break;
      }
      if (io.json) return io.print(runs, () => '');
      if (runs.length === 0) return io.out('no runs\n');
      const names = await deviceNames(client, runs.map((r) => r.deviceId));
      io.out(table(RUN_HEADERS, runRows(runs, new Map(tasks.map((t) => [t.id, t.name])), names)));
    },
  );
}
