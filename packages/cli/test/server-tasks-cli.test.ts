/**
 * `garrison server-task …`: the settings-schema display as a unit, then the CLI against a real
 * server (in process) running the real database-maintenance type: types, create, show, list,
 * update (and a CONFLICT), run --wait, runs, run-show, stop, copy, export, delete, import,
 * enable/disable, and the API's error codes. The steps whose process behaviour matters (exit
 * codes, --wait) run the real `garrison` binary; the rest go through cliMain in process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ServerTask, ServerTaskExport, ServerTaskRun } from '@garrison/protocol';
import { startTestServer, sqliteKind, type TestServer } from '../../server/test/helpers.ts';
import { formatDuration, schemaType, settingsFields } from '../src/commands/server-tasks.ts';
import { cliInProcess, cliProcess, type CliResult } from './support/run-cli.ts';

describe('server task settings fields', () => {
  it('flattens a settings schema into typed fields', () => {
    const schema = {
      type: 'object',
      required: ['reports', 'delivery'],
      properties: {
        reports: { type: 'array', items: { anyOf: [{ type: 'string', const: 'a' }, { type: 'string', const: 'b' }] }, description: 'which' },
        vacuum: { anyOf: [{ const: 'auto' }, { const: 'never' }] },
        days: { type: 'integer', minimum: 1, maximum: 30 },
        delivery: {
          type: 'object',
          required: ['host'],
          properties: { host: { type: 'string' }, password: { type: 'object', properties: { $secret: { type: 'string' } } } },
        },
      },
    };
    assert.deepEqual(
      settingsFields(schema).map((f) => [f.field, f.type, f.required]),
      [
        ['reports', '(a|b)[]', true],
        ['vacuum', 'auto|never', false],
        ['days', 'integer 1..30', false],
        ['delivery', 'object', true],
        ['delivery.host', 'string', true],
        ['delivery.password', 'secret {"$secret": NAME}', false],
      ],
    );
    assert.equal(schemaType({ type: 'boolean' }), 'boolean');
    assert.equal(formatDuration(420), '0.4s');
    assert.equal(formatDuration(185_000), '3m 05s');
  });
});

describe('garrison server-task against a real server', { timeout: 60_000 }, () => {
  let t: TestServer;
  let home: string;

  const env = () => ({ HOME: home, XDG_CONFIG_HOME: home, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token, GARRISON_CA: t.caFile });
  const cli = (args: string[]): Promise<CliResult> => cliProcess(args, env());
  /**
   * The same commands through cliMain in this process: a spawned CLI costs about a second of
   * start-up, so only the steps whose process behaviour matters (exit codes, --wait) spawn.
   */
  const inProcess = (args: string[]): Promise<CliResult> => cliInProcess(args, env());
  const ok = async (args: string[], spawned = false): Promise<string> => {
    const r = await (spawned ? cli : inProcess)(args);
    assert.equal(r.code, 0, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fails = async (args: string[], exit: number, stderr: RegExp): Promise<void> => {
    const r = await inProcess(args);
    assert.equal(r.code, exit, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    assert.match(r.stderr, stderr);
  };

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-st-'));
    t = await startTestServer(sqliteKind);
  });
  after(async () => {
    await t?.close();
    await rm(home, { recursive: true, force: true });
  });

  it('manages a database-maintenance server task end to end', async () => {
    // Independent checks side by side, to keep the file fast.
    const [types, badSettings, clientTrigger, unknown] = await Promise.all([
      ok(['server-task', 'types'], true),
      cli(['server-task', 'create', '--name', 'bad', '--type', 'database-maintenance', '--settings', '{"vacuum":"sometimes"}', '--schedule', 'on-demand']),
      inProcess(['server-task', 'create', '--name', 'bad', '--type', 'database-maintenance', '--schedule', 'check-in']),
      inProcess(['server-tasks', 'show', 'no such task']),
    ]);
    assert.match(types, /^database-maintenance: Database maintenance$/m);
    assert.match(types, /^\s+FIELD\s+TYPE\s+REQUIRED\s+DESCRIPTION$/m);
    assert.match(types, /^\s+vacuum\s+auto\|always\|never\s+no\s+Default auto/m);
    assert.match(types, /^\s+eventRetentionDays\s+integer 1\.\.36500\s+no\s/m);
    assert.equal(badSettings.code, 1, badSettings.stderr);
    assert.match(badSettings.stderr, /^error SETTINGS_INVALID: /);
    assert.equal(clientTrigger.code, 2, 'a trigger server tasks cannot use is a usage error, before any request');
    assert.match(clientTrigger.stderr, /cannot use the "check-in" trigger/);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error NOT_FOUND: /);

    // create
    const task = JSON.parse(
      await ok([
        'server-task', 'create', '--name', 'Tidy DB', '--type', 'database-maintenance', '--settings', '{"vacuum":"never"}',
        '--schedule', 'daily:03:15', '--time-basis', 'UTC', '--retries', '1', '--json',
      ], true),
    ) as ServerTask;
    assert.deepEqual(task.settings, { vacuum: 'never' });
    assert.deepEqual(task.schedule.triggers, [{ type: 'daily', time: '03:15' }]);
    assert.equal(task.schedule.retry?.attempts, 1);
    assert.ok(task.nextRunAt, 'a daily schedule has a next run');
    // after:NAME is linked to the other server task's id.
    const follower = JSON.parse(await ok(['server-task', 'create', '--name', 'After tidy', '--type', 'database-maintenance', '--schedule', 'after:Tidy DB', '--schedule', 'on-demand', '--json'])) as ServerTask;
    assert.deepEqual(follower.schedule.triggers[0], { type: 'after-task', taskId: task.id });

    // show and list
    const [show, list] = await Promise.all([ok(['server-task', 'show', 'Tidy DB']), ok(['server-task', 'list'])]);
    assert.match(show, /^Type:\s+database-maintenance$/m);
    assert.match(show, /^Schedule:\s+daily:03:15$/m);
    assert.match(show, /^Options:\s+time basis UTC; 1 retries, 60s apart$/m);
    assert.match(show, /^Next run:\s+\d{4}-\d\d-\d\d \d\d:\d\d:00$/m);
    assert.match(show, /"vacuum": "never"/);
    assert.match(show, /^Last runs: none$/m);
    assert.match(list, /^NAME\s+TYPE\s+SCHEDULE\s+ENABLED\s+NEXT RUN\s+LAST RUN\s+ID$/m);
    assert.match(list, new RegExp(`^Tidy DB\\s+database-maintenance\\s+daily:03:15\\s+yes\\s+\\d{4}-.*\\s+-\\s+${task.id}$`, 'm'));
    assert.match(list, /^After tidy\s+database-maintenance\s+after:Tidy DB, on-demand\s+yes\s/m);

    // update: settings merged, schedule replaced, revision sent; a stale revision is a CONFLICT
    assert.match(await ok(['server-task', 'update', task.id, '--settings', '{"eventRetentionDays":30}', '--schedule', 'weekly:mon@04:00']), /changed server task "Tidy DB" \(revision 2\)/);
    await fails(['server-task', 'update', 'Tidy DB', '--description', 'late', '--revision', '1'], 1, /^error CONFLICT: /);
    const updated = JSON.parse(await ok(['server-task', 'show', 'Tidy DB', '--json'])) as ServerTask;
    assert.deepEqual(updated.settings, { vacuum: 'never', eventRetentionDays: 30 });
    assert.deepEqual(updated.schedule.triggers, [{ type: 'weekly', days: ['mon'], time: '04:00' }]);
    assert.equal(updated.schedule.timeBasis, 'UTC', 'schedule options not given are kept');
    assert.equal(updated.revision, 2);

    // run --wait, then the history
    const run = await cli(['server-task', 'run', 'Tidy DB', '--wait']);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /^server task "Tidy DB": run \S+ started$/m);
    assert.match(run.stdout, /^succeeded in [\d.]+s: removed \d+ events and \d+ runs; .*MiB$/m);
    const runs = await ok(['server-task', 'runs', 'Tidy DB']);
    assert.match(runs, /^STATE\s+CAUSE\s+ATTEMPT\s+STARTED\s+DURATION\s+SUMMARY\s+ID$/m);
    assert.match(runs, /^succeeded\s+run-now\s+1\s+\d{4}-\S+ \S+\s+[\d.]+s\s+removed /m);
    const [last] = JSON.parse(await ok(['server-task', 'runs', task.id, '--limit', '1', '--json'])) as ServerTaskRun[];
    const runShow = await ok(['server-task', 'run-show', last!.id]);
    assert.match(runShow, /^Server task:\s+Tidy DB \(/m);
    assert.match(runShow, /^State:\s+succeeded$/m);
    assert.match(runShow, /^Summary:\s+removed /m);
    assert.match(runShow, /^Result:\n {2}\{\n {4}"removed": \{/m);
    assert.match(runShow, /^Output \(tail\):\n.*database size before/m);

    // stop on an idle task
    assert.match(await ok(['server-task', 'stop', 'Tidy DB']), /has no pending or running run/);

    // copy, export, delete the copy, import under changed names
    assert.match(await ok(['server-task', 'copy', 'Tidy DB', '--name', 'Tidy DB copy']), /^copied to server task "Tidy DB copy" \(/);
    const file = path.join(home, 'server-tasks.json');
    const exported = await inProcess(['server-task', 'export', 'Tidy DB', 'After tidy', '-o', file]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /exported 2 server tasks to /);
    assert.match(await ok(['server-task', 'delete', 'Tidy DB copy']), /^deleted server task "Tidy DB copy"/);
    const doc = JSON.parse(await readFile(file, 'utf8')) as ServerTaskExport;
    assert.equal(doc.format, 'garrison.server-tasks');
    assert.deepEqual(doc.tasks.map((x) => x.name), ['Tidy DB', 'After tidy']);
    assert.deepEqual(doc.tasks[1]!.schedule.triggers[0], { type: 'after-task', taskId: 'Tidy DB' }, 'after-task links travel by name');
    const renamed: ServerTaskExport = {
      ...doc,
      tasks: doc.tasks.map((x) => ({
        ...x,
        name: `${x.name} 2`,
        schedule: { ...x.schedule, triggers: x.schedule.triggers.map((tr) => (tr.type === 'after-task' ? { ...tr, taskId: `${tr.taskId} 2` } : tr)) },
      })),
    };
    await writeFile(file, JSON.stringify(renamed));
    const imported = await ok(['server-task', 'import', file], true);
    assert.match(imported, /^imported 2 server tasks$/m);
    assert.match(imported, /^Tidy DB 2\s+database-maintenance\s+weekly:mon@04:00\s+yes\s/m);
    assert.match(imported, /^After tidy 2\s+database-maintenance\s+after:Tidy DB 2, on-demand\s/m);

    const all = JSON.parse(await ok(['server-task', 'list', '--json'])) as ServerTask[];
    const names = all.map((x) => x.name);
    for (const n of ['Tidy DB', 'After tidy', 'Tidy DB 2', 'After tidy 2']) assert.ok(names.includes(n), n);
    assert.ok(!names.includes('Tidy DB copy'));
    const tidy2 = all.find((x) => x.name === 'Tidy DB 2')!;
    assert.deepEqual(all.find((x) => x.name === 'After tidy 2')!.schedule.triggers[0], { type: 'after-task', taskId: tidy2.id });

    // disable, enable, delete; a name two tasks share must be given as an id
    assert.match(await ok(['server-task', 'disable', 'Tidy DB 2']), /server task "Tidy DB 2" disabled/);
    await ok(['server-task', 'copy', 'Tidy DB 2']);
    await ok(['server-task', 'update', 'Tidy DB 2 (copy)', '--name', 'Tidy DB 2']);
    await fails(['server-task', 'enable', 'Tidy DB 2'], 1, /^error CONFLICT: 2 server tasks are named "Tidy DB 2"/);
    assert.match(await ok(['server-task', 'enable', tidy2.id]), /enabled/);
  });
});
