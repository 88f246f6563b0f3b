/**
 * The admin CLI: unit tests of the schedule-spec language and of building API bodies from
 * options; then the real `garrison` binary as a subprocess against a real server (in process)
 * with a real agent.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Task, TaskProgress, Trigger } from '@garrison/protocol';
import { startAgent, startTestServer, sqliteKind, waitFor, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { formatDays, formatTrigger, parseScheduleSpecs, parseTriggerSpec, ScheduleSpecError } from '../src/schedule-spec.ts';
import { buildSchedule, buildTaskCreate, buildTaskUpdate, formatSelection, parseSelection } from '../src/task-options.ts';
import { UsageError, normalizeServerUrl, resolveSettings } from '../src/client.ts';
import { findGroup } from '../src/resolve.ts';
import { parseDuration, parseInstantOption, table } from '../src/format.ts';
import { groupTreeRows } from '../src/commands/groups.ts';
import { progressExitCode, progressLine, watchProgress } from '../src/watch.ts';
import { cliInProcess, cliProcess, type CliResult } from './support/run-cli.ts';
import type { GroupView } from '../src/types.ts';

// ---------------------------------------------------------------------------------------------
// Schedule specs
// ---------------------------------------------------------------------------------------------

describe('schedule spec parser', () => {
  const cases: [string, Trigger][] = [
    ['continuous', { type: 'continuous' }],
    ['check-in', { type: 'check-in' }],
    ['policy-enforcement', { type: 'policy-enforcement' }],
    ['agent-start', { type: 'agent-start' }],
    ['enrolment', { type: 'enrolment' }],
    ['enrollment', { type: 'enrolment' }],
    ['on-demand', { type: 'on-demand' }],
    ['after:abc-123', { type: 'after-task', taskId: 'abc-123' }],
    ['after:abc-123:failed,succeeded', { type: 'after-task', taskId: 'abc-123', states: ['failed', 'succeeded'] }],
    ['after:t1:timed-out', { type: 'after-task', taskId: 't1', states: ['timed_out'] }],
    ['once:2026-12-01T10:00', { type: 'once', at: '2026-12-01T10:00' }],
    ['once:2026-12-01 10:00:30', { type: 'once', at: '2026-12-01T10:00:30' }],
    ['every:15m', { type: 'interval', every: 15, unit: 'minutes' }],
    ['every:2h', { type: 'interval', every: 2, unit: 'hours' }],
    ['every:1d', { type: 'interval', every: 24, unit: 'hours' }],
    ['every:90min', { type: 'interval', every: 90, unit: 'minutes' }],
    ['daily:02:30', { type: 'daily', time: '02:30' }],
    ['daily:2:30', { type: 'daily', time: '02:30' }],
    ['daily:23:59/3', { type: 'daily', time: '23:59', everyDays: 3 }],
    ['weekly:mon,thu@08:00', { type: 'weekly', days: ['mon', 'thu'], time: '08:00' }],
    ['weekly:mon-fri@07:15', { type: 'weekly', days: ['mon', 'tue', 'wed', 'thu', 'fri'], time: '07:15' }],
    ['weekly:sun,Saturday@10:00', { type: 'weekly', days: ['sat', 'sun'], time: '10:00' }],
    ['weekly:fri-mon@10:00', { type: 'weekly', days: ['mon', 'fri', 'sat', 'sun'], time: '10:00' }],
    ['monthly:15@09:00', { type: 'monthly', day: 15, time: '09:00' }],
    ['monthly:last@09:00', { type: 'monthly', day: 'last', time: '09:00' }],
    ['monthly:2nd-tue@09:00', { type: 'monthly', week: 2, weekday: 'tue', time: '09:00' }],
    ['monthly:last-fri@09:00', { type: 'monthly', week: 'last', weekday: 'fri', time: '09:00' }],
    ['monthly:1st-mon@00:00', { type: 'monthly', week: 1, weekday: 'mon', time: '00:00' }],
    ["cron:'0 3 * * 1-5'", { type: 'cron', expression: '0 3 * * 1-5' }],
    ['cron:0 3 * * 1-5', { type: 'cron', expression: '0 3 * * 1-5' }],
    ['cron:  */5   *  * * *', { type: 'cron', expression: '*/5 * * * *' }],
    ['  DAILY:06:00  ', { type: 'daily', time: '06:00' }],
  ];
  for (const [spec, want] of cases) {
    it(`parses ${JSON.stringify(spec)}`, () => assert.deepEqual(parseTriggerSpec(spec), want));
  }

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['sometimes', /unknown schedule "sometimes"/],
    ['check-in:now', /takes no argument/],
    ['after:', /needs an argument/],
    ['after:t1:done', /"done" is not a final run state/],
    ['once:2026-02-30T10:00', /not a date-time/],
    ['once:2026-12-01T25:00', /not a date-time/],
    ['once:tomorrow', /not a date-time/],
    ['every:15', /not an interval/],
    ['every:0m', /at least 1/],
    ['every:15s', /not an interval/],
    ['daily:24:00', /not a time of day/],
    ['daily:02:30/0', /number of days/],
    ['weekly:mon,thu', /DAYS@HH:MM/],
    ['weekly:mon,xyz@08:00', /"xyz" is not a day of the week/],
    ['weekly:@08:00', /empty day/],
    ['monthly:32@09:00', /day 32 is not 1 to 31/],
    ['monthly:6th-tue@09:00', /not a day of the month/],
    ['monthly:2nd-xyz@09:00', /not a day of the week/],
    ['monthly:15', /DAY@HH:MM/],
    ['cron:0 3 * *', /5 fields/],
    ['cron:', /needs an argument/],
  ];
  for (const [spec, message] of bad) {
    it(`refuses ${JSON.stringify(spec)}`, () => assert.throws(() => parseTriggerSpec(spec), (e: Error) => e instanceof ScheduleSpecError && message.test(e.message)));
  }

  it('takes several specs, also joined with ";"', () => {
    assert.deepEqual(parseScheduleSpecs(['check-in', 'every:2h;daily:01:00']), [
      { type: 'check-in' },
      { type: 'interval', every: 2, unit: 'hours' },
      { type: 'daily', time: '01:00' },
    ]);
    assert.throws(() => parseScheduleSpecs([]), ScheduleSpecError);
    assert.throws(() => parseScheduleSpecs(Array(21).fill('check-in')), /at most 20/);
  });

  it('formats every trigger back into a spec that parses to the same trigger', () => {
    for (const [, t] of cases) {
      const spec = formatTrigger(t);
      assert.deepEqual(parseTriggerSpec(spec), t, spec);
    }
  });

  it('writes consecutive days as ranges', () => {
    assert.equal(formatDays(['mon', 'tue', 'wed', 'thu', 'fri']), 'mon-fri');
    assert.equal(formatDays(['sun', 'mon', 'wed']), 'mon,wed,sun');
    assert.equal(formatDays(['fri', 'sat', 'sun', 'tue']), 'tue,fri-sun');
  });
});

// ---------------------------------------------------------------------------------------------
// Options → API bodies
// ---------------------------------------------------------------------------------------------

describe('building TaskCreate and TaskUpdate from options', () => {
  it('builds a script task for a group with a full schedule', () => {
    const body = buildTaskCreate(
      {
        name: 'Nightly backup',
        description: 'backs up',
        group: 'Servers',
        scriptFile: 'backup.sh',
        shell: 'bash',
        arg: ['--fast', '-v'],
        env: ['MODE=full', 'EMPTY='],
        envSecret: ['DB_PASSWORD=db-pass'],
        timeout: '600',
        successCodes: '0,3',
        warningCodes: '1',
        runAs: 'backup',
        cwd: '/srv',
        schedule: ['daily:02:30', 'weekly:sat@04:00'],
        timeBasis: 'utc',
        randomize: '15',
        runMissed: true,
        missedDelay: '5',
        stopAfter: '120',
        retries: '2',
        retryDelay: '30',
        start: '2026-01-01T00:00:00Z',
        end: '2027-01-01T00:00:00+01:00',
        disabled: true,
      },
      { groupId: 'g-1', script: '#!/bin/bash\ntar czf /backup.tgz /srv\n' },
    );
    assert.deepEqual(body, {
      name: 'Nightly backup',
      description: 'backs up',
      type: 'script',
      enabled: false,
      scope: { type: 'group', groupId: 'g-1', includeSubgroups: true },
      settings: {
        script: '#!/bin/bash\ntar czf /backup.tgz /srv\n',
        shell: 'bash',
        args: ['--fast', '-v'],
        env: { MODE: 'full', EMPTY: '', DB_PASSWORD: { $secret: 'db-pass' } },
        timeoutSeconds: 600,
        successExitCodes: [0, 3],
        warningExitCodes: [1],
        runAs: 'backup',
        workingDirectory: '/srv',
      },
      schedule: {
        triggers: [
          { type: 'daily', time: '02:30' },
          { type: 'weekly', days: ['sat'], time: '04:00' },
        ],
        timeBasis: 'UTC',
        randomizeMinutes: 15,
        runMissed: true,
        missedDelayMinutes: 5,
        stopAfterMinutes: 120,
        retry: { attempts: 2, delaySeconds: 30 },
        startAt: '2026-01-01T00:00:00.000Z',
        endAt: '2026-12-31T23:00:00.000Z',
      },
    });
  });

  it('builds device, device-list and selection scopes', () => {
    const base = { name: 'n', command: 'true', schedule: ['on-demand'] };
    assert.deepEqual(buildTaskCreate({ ...base, device: 'web-1' }, { deviceId: 'd-1' }).scope, { type: 'local', deviceId: 'd-1' });
    assert.deepEqual(buildTaskCreate({ ...base, devices: 'a,b' }, { deviceIds: ['d-a', 'd-b'] }).scope, { type: 'global', deviceIds: ['d-a', 'd-b'] });
    assert.deepEqual(buildTaskCreate({ ...base, select: 'tag=x,os=linux,name=web-*,product=p' }, {}).scope, {
      type: 'global',
      selection: { tags: ['x'], os: ['linux'], namePattern: 'web-*', product: 'p' },
    });
    assert.deepEqual(buildTaskCreate({ ...base, group: 'G', subgroups: false }, { groupId: 'g' }).scope, { type: 'group', groupId: 'g', includeSubgroups: false });
    assert.deepEqual(buildTaskCreate({ ...base, group: 'G' }, { groupId: 'g' }).settings, { command: 'true' });
    assert.deepEqual(buildTaskCreate({ ...base, group: 'G' }, { groupId: 'g' }).schedule, { triggers: [{ type: 'on-demand' }] });
  });

  it('parses and formats selections', () => {
    assert.deepEqual(parseSelection('tag=a,tag=b+c,os=linux+darwin'), { tags: ['a', 'b', 'c'], os: ['linux', 'darwin'] });
    assert.equal(formatSelection(parseSelection('tag=a+b,os=linux,name=web-*,product=p')), 'tag=a+b,os=linux,name=web-*,product=p');
    assert.throws(() => parseSelection('color=red'), /unknown criterion "color"/);
    assert.throws(() => parseSelection(''), /at least one criterion/);
    assert.throws(() => parseSelection('name=a,name=b'), /given twice/);
  });

  it('refuses incomplete or contradictory options as usage errors', () => {
    const ok = { name: 'n', group: 'G', command: 'true', schedule: ['on-demand'] };
    const r = { groupId: 'g' };
    const refuses = (o: object, res: object, re: RegExp) => assert.throws(() => buildTaskCreate({ ...ok, ...o }, { ...r, ...res }), (e: Error) => e instanceof UsageError && re.test(e.message));
    refuses({ name: undefined }, {}, /--name/);
    refuses({ group: undefined }, {}, /give the targets/);
    refuses({ device: 'd' }, { deviceId: 'd' }, /give one target/);
    refuses({ command: undefined }, {}, /--command CMD or --script-file/);
    refuses({ scriptFile: 'f' }, { script: 'x' }, /not both/);
    refuses({ schedule: undefined }, {}, /give a schedule/);
    refuses({ schedule: ['every:soon'] }, {}, /--schedule "every:soon"/);
    refuses({ env: ['1BAD=x'] }, {}, /not an environment variable name/);
    refuses({ env: ['NOVALUE'] }, {}, /not NAME=VALUE/);
    refuses({ envSecret: ['K='] }, {}, /names no secret/);
    refuses({ timeout: '0' }, {}, /--timeout must be a whole number from 1/);
    refuses({ successCodes: '0,x' }, {}, /comma-separated list/);
    refuses({ timeBasis: 'Mars/Olympus' }, {}, /--time-basis/);
    refuses({ retryDelay: '10' }, {}, /goes with --retries/);
    refuses({ start: 'yesterday' }, {}, /--start/);
    refuses({ start: '2027-01-01T00:00Z', end: '2026-01-01T00:00Z' }, {}, /after --end/);
    refuses({ shell: 'zsh' }, {}, /--shell must be one of/);
  });

  it('builds a patch with only what changes, over the current task', () => {
    const current: Task = {
      id: 't-1',
      name: 'old',
      description: '',
      product: 'garrison',
      type: 'script',
      settings: { script: 'echo hi', env: { A: '1', S: { $secret: 's' } }, timeoutSeconds: 10 },
      schedule: { triggers: [{ type: 'check-in' }], randomizeMinutes: 5, retry: { attempts: 2, delaySeconds: 30 } },
      scope: { type: 'group', groupId: 'g', includeSubgroups: true },
      enabled: true,
      revision: 7,
      origin: 'admin',
      createdAt: '',
      updatedAt: '',
    };
    assert.deepEqual(buildTaskUpdate({ name: 'new' }, {}, current), { name: 'new', revision: 7 });
    assert.deepEqual(buildTaskUpdate({ command: 'echo bye', env: ['B=2'] }, {}, current).settings, {
      command: 'echo bye',
      env: { A: '1', S: { $secret: 's' }, B: '2' },
      timeoutSeconds: 10,
    });
    assert.deepEqual(buildTaskUpdate({ clearEnv: true, envSecret: ['X=y'] }, {}, current).settings, { script: 'echo hi', env: { X: { $secret: 'y' } }, timeoutSeconds: 10 });
    assert.deepEqual(buildTaskUpdate({ randomize: '0', retries: '0' }, {}, current).schedule, { triggers: [{ type: 'check-in' }] });
    assert.deepEqual(buildTaskUpdate({ retryDelay: '90' }, {}, current).schedule?.retry, { attempts: 2, delaySeconds: 90 });
    assert.deepEqual(buildTaskUpdate({ schedule: ['every:1h'] }, {}, current).schedule, {
      triggers: [{ type: 'interval', every: 1, unit: 'hours' }],
      randomizeMinutes: 5,
      retry: { attempts: 2, delaySeconds: 30 },
    });
    assert.deepEqual(buildTaskUpdate({ subgroups: false }, {}, current).scope, { type: 'group', groupId: 'g', includeSubgroups: false });
    assert.deepEqual(buildTaskUpdate({ device: 'd' }, { deviceId: 'd-1' }, current).scope, { type: 'local', deviceId: 'd-1' });
    assert.deepEqual(buildTaskUpdate({ disabled: true }, {}, current), { enabled: false, revision: 7 });
    assert.throws(() => buildTaskUpdate({}, {}, current), /nothing to change/);
    assert.throws(() => buildTaskUpdate({ type: 'other' }, {}, current), /cannot change/);
  });

  it('drops run-missed and its delay together', () => {
    const s = buildSchedule({ runMissed: false }, { triggers: [{ type: 'check-in' }], runMissed: true, missedDelayMinutes: 3 });
    assert.deepEqual(s, { triggers: [{ type: 'check-in' }] });
  });
});

describe('CLI helpers', () => {
  const groups = [
    { id: 'root', parentId: null, name: 'My Organization', path: 'My Organization' },
    { id: 'g1', parentId: 'root', name: 'Servers', path: 'My Organization/Servers' },
    { id: 'g2', parentId: 'g1', name: 'Web', path: 'My Organization/Servers/Web' },
    { id: 'g3', parentId: 'root', name: 'Laptops', path: 'My Organization/Laptops' },
    { id: 'g4', parentId: 'g3', name: 'Web', path: 'My Organization/Laptops/Web' },
  ] as GroupView[];

  it('finds groups by id, full path, path without the root, or a unique name', () => {
    assert.equal(findGroup(groups, 'g2')?.id, 'g2');
    assert.equal(findGroup(groups, 'My Organization/Servers/Web')?.id, 'g2');
    assert.equal(findGroup(groups, 'servers/web/')?.id, 'g2');
    assert.equal(findGroup(groups, '/Servers')?.id, 'g1');
    assert.equal(findGroup(groups, 'Laptops')?.id, 'g3');
    assert.equal(findGroup(groups, 'My Organization')?.id, 'root');
    assert.equal(findGroup(groups, 'Web'), undefined, 'two groups are named Web');
    assert.equal(findGroup(groups, 'Servers/Nope'), undefined);
  });

  it('draws the group tree', () => {
    assert.deepEqual(
      groupTreeRows(groups).map((r) => r.label),
      ['My Organization', '├─ Laptops', '│  └─ Web', '└─ Servers', '   └─ Web'],
    );
  });

  it('aligns tables', () => {
    assert.equal(table(['A', 'LONGER'], [['xx', 1], [null, true]]), 'A   LONGER\nxx  1\n-   yes\n');
  });

  it('reads durations and instants', () => {
    assert.equal(parseDuration('30m'), 30 * 60_000);
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration('soon'), null);
    const now = Date.parse('2026-03-01T12:00:00Z');
    assert.equal(parseInstantOption('1h', '--since', now), '2026-03-01T11:00:00.000Z');
    assert.equal(parseInstantOption('2026-02-01T00:00:00Z', '--since', now), '2026-02-01T00:00:00.000Z');
    assert.throws(() => parseInstantOption('last week', '--since', now), UsageError);
  });

  it('normalizes server URLs', () => {
    assert.equal(normalizeServerUrl('127.0.0.1:8420/'), 'https://127.0.0.1:8420');
    assert.equal(normalizeServerUrl('https://garrison.example.com/'), 'https://garrison.example.com');
    assert.throws(() => normalizeServerUrl('ftp://x'), UsageError);
  });

  it('resolves connection settings in order, never sending a saved token to another server', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-'));
    try {
      const file = path.join(dir, 'cli.json');
      await writeFile(file, JSON.stringify({ server: 'http://saved:1', token: 'gat.saved' }));
      const tokenFile = path.join(dir, 'token');
      await writeFile(tokenFile, 'gat.file\n');
      assert.deepEqual((await resolveSettings({}, {}, file)).token, 'gat.saved');
      assert.equal((await resolveSettings({}, {}, file)).server, 'http://saved:1');
      assert.equal((await resolveSettings({ server: 'http://x:2', token: 'gat.opt' }, { GARRISON_TOKEN: 'gat.env' }, file)).token, 'gat.opt');
      assert.equal((await resolveSettings({ tokenFile }, { GARRISON_TOKEN: 'gat.env' }, file)).token, 'gat.env');
      assert.equal((await resolveSettings({ tokenFile }, {}, file)).token, 'gat.file');
      assert.equal((await resolveSettings({}, { GARRISON_URL: 'http://saved:1/' }, file)).token, 'gat.saved');
      await assert.rejects(resolveSettings({}, { GARRISON_URL: 'http://other:1' }, file), (e: Error) => e instanceof UsageError && /no API token/.test(e.message));
      await assert.rejects(resolveSettings({}, {}, path.join(dir, 'none.json')), /no server given/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('watches progress: a line per change without a terminal, exit 0 on success', async () => {
    const p = (states: Record<string, number>, notRun: number, finished: boolean): TaskProgress => ({ taskId: 't', targets: 2, notRun, states, finished });
    const seq = [p({ pending: 2 }, 0, false), p({ pending: 2 }, 0, false), p({ running: 1, succeeded: 1 }, 0, false), p({ succeeded: 1, succeeded_with_warnings: 1 }, 0, true)];
    let out = '';
    const r = await watchProgress(async () => seq.shift()!, { tty: false, out: (s) => (out += s), timeoutMs: 10_000, sleep: async () => {} });
    assert.equal(r.timedOut, false);
    assert.equal(progressExitCode(r.progress), 0);
    assert.equal(out, '0/2 finished: pending 2\n1/2 finished: succeeded 1, running 1\n2/2 finished: succeeded 1, warnings 1\n');
    assert.equal(progressExitCode(p({ succeeded: 1, failed: 1 }, 0, true)), 1);
    assert.match(progressLine(p({ succeeded: 1 }, 1, false), { bar: true }), /^\[#{12}-{12}\] 1\/2 finished: succeeded 1, not run 1$/);
  });

  it('watches progress: stops at the timeout', async () => {
    let now = 0;
    const r = await watchProgress(async () => ({ taskId: 't', targets: 1, notRun: 1, states: {}, finished: false }), {
      tty: true,
      out: () => {},
      timeoutMs: 2000,
      now: () => now,
      sleep: async (ms) => void (now += ms),
    });
    assert.equal(r.timedOut, true);
  });
});

// ---------------------------------------------------------------------------------------------
// cliMain in process: usage errors need no server
// ---------------------------------------------------------------------------------------------

function inProcess(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return cliInProcess(argv, { XDG_CONFIG_HOME: '/nonexistent-garrison-test', ...env });
}

describe('cliMain', () => {
  it('prints help listing every command, and the version', async () => {
    const help = await inProcess(['--help']);
    assert.equal(help.code, 0);
    for (const c of ['garrison group policy', 'garrison task run <task>', 'garrison events', 'garrison secret set <name>', 'garrison token create --group <group>']) {
      assert.ok(help.stdout.includes(c), c);
    }
    const v = await inProcess(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('exits 2 on usage errors', async () => {
    assert.equal((await inProcess([])).code, 2);
    assert.equal((await inProcess(['nonsense'])).code, 2);
    assert.equal((await inProcess(['group'])).code, 2);
    assert.equal((await inProcess(['device', 'list', '--bogus'])).code, 2);
    const noServer = await inProcess(['device', 'list']);
    assert.equal(noServer.code, 2);
    assert.match(noServer.stderr, /no server given/);
    const noToken = await inProcess(['device', 'list'], { GARRISON_URL: 'http://127.0.0.1:9' });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /no API token/);
    const badSchedule = await inProcess(['task', 'create', '--name', 'x', '--group', 'g', '--command', 'true', '--schedule', 'whenever'], {
      GARRISON_URL: 'http://127.0.0.1:9',
      GARRISON_TOKEN: 'gat.x.y',
    });
    assert.equal(badSchedule.code, 2, 'options are checked before any request');
    assert.match(badSchedule.stderr, /unknown schedule "whenever"/);
    const unreachable = await inProcess(['task', 'list'], { GARRISON_URL: 'http://127.0.0.1:9', GARRISON_TOKEN: 'gat.x.y' });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^error UNAVAILABLE: cannot reach/);
  });
});

// ---------------------------------------------------------------------------------------------
// The binary against a real server and agent
// ---------------------------------------------------------------------------------------------

describe('garrison CLI against a real server', { timeout: 300_000 }, () => {
  let t: TestServer;
  let agent: AgentProcess & { deviceId: string };
  let configHome: string;
  let fleetId: string;

  /**
   * cliMain in this process unless the step needs a process of its own (standard input, or
   * `spawn` where the binary's own behaviour is the point): a spawned CLI costs about a second.
   */
  const cli = (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; spawn?: boolean } = {}): Promise<CliResult> => {
    const env = { HOME: configHome, XDG_CONFIG_HOME: configHome, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token, GARRISON_CA: t.caFile, ...opts.env };
    return opts.input !== undefined || opts.spawn ? cliProcess(args, env, opts.input) : cliInProcess(args, env);
  };
  const ok = async (args: string[], opts?: { input?: string; env?: NodeJS.ProcessEnv; spawn?: boolean }): Promise<string> => {
    const r = await cli(args, opts);
    assert.equal(r.code, 0, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  before(async () => {
    configHome = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-home-'));
    t = await startTestServer(sqliteKind);
    const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Fleet' });
    fleetId = g.body.id;
    agent = await startAgent(t, fleetId, 'cli-agent-1');
  });
  after(async () => {
    await agent?.stop();
    await t?.close();
    if (agent) await rm(agent.stateDir, { recursive: true, force: true });
    await rm(configHome, { recursive: true, force: true });
  });

  it('creates groups by path and shows the tree', async () => {
    // The real binary once for a success and once for a refusal (its exit code); cliMain for the rest.
    assert.match(await ok(['group', 'create', 'Servers'], { spawn: true }), /created group My Organization\/Servers \(/);
    assert.match(await ok(['group', 'create', 'My Organization/Servers/Web']), /created group My Organization\/Servers\/Web/);
    assert.match(await ok(['group', 'create', 'Servers/DB/Primary', '--parents']), /My Organization\/Servers\/DB\/Primary/);
    await ok(['group', 'policy', 'Servers/Web', '--check-in-interval', '15', '--block-inheritance']);
    const tree = await ok(['group', 'list']);
    assert.match(tree, /^GROUP\s+DEVICES\s+CHECK-IN/m);
    assert.match(tree, /^├─ Fleet\s+1\s/m);
    assert.match(tree, /^\s+├─ DB\s+0\s/m);
    assert.match(tree, /^\s+└─ Web\s+0\s+15m\*\s+5m\s+blocked/m);
    const groups = JSON.parse(await ok(['group', 'list', '--json'])) as GroupView[];
    const web = groups.find((x) => x.path === 'My Organization/Servers/Web')!;
    assert.equal(web.checkInIntervalMinutes, 15);
    assert.equal(web.blockInheritance, true);
    await ok(['group', 'move', 'Servers/DB', '--parent', 'My Organization']);
    await ok(['group', 'rename', 'DB', 'Databases']);
    await ok(['group', 'delete', 'Databases/Primary']);
    const notEmpty = await cli(['group', 'delete', 'Servers'], { spawn: true });
    assert.equal(notEmpty.code, 1);
    assert.match(notEmpty.stderr, /^error GROUP_NOT_EMPTY: /);
  });

  it('creates an enrolment token with the agent command line', async () => {
    const out = await ok(['token', 'create', '--group', 'Fleet', '--expires', '60', '--max-uses', '3', '--name', 'fleet token']);
    const value = /^\s+(get\.\S+)$/m.exec(out)?.[1];
    assert.ok(value, out);
    // The agent command line takes the token from standard input, never as an argument.
    const agentLine = out.split('\n').find((l) => l.trim().startsWith('garrison agent '));
    assert.equal(agentLine?.trim(), `garrison agent --server ${t.server.url} --ca-fingerprint ${t.server.tls!.caFingerprint} --token-stdin`, out);
    const link = await ok(['installer', 'create', '--group', 'Fleet', '--max-uses', '2']);
    assert.match(link, /^Linux \(as root\):\n  \(umask 077; printf 'url = "%s"\\n' 'https:\/\/127\.0\.0\.1:\d+\/install\/get\.[^/]+\/linux\.sh' \| curl -sSk --pinnedpubkey 'sha256\/\/[^']+' -K - -o garrison-install\.sh && sudo sh garrison-install\.sh; r=\$\?; rm -f garrison-install\.sh; exit \$r\)$/m);
    assert.ok(link.includes(t.server.tls!.caFingerprint), link);
    const list = await ok(['token', 'list']);
    assert.match(list, /fleet token\s+My Organization\/Fleet\s+active\s+0\/3/);
    assert.ok(!list.includes(value), 'token values are never listed');
    const id = /\(id ([0-9a-f-]+)/.exec(out)![1]!;
    await ok(['token', 'revoke', id]);
    assert.match(await ok(['token', 'list']), /fleet token\s+My Organization\/Fleet\s+revoked/);
  });

  it('lists, shows and tags devices', async () => {
    const list = await ok(['device', 'list', '--group', 'Fleet']);
    assert.match(list, /^NAME\s+HOSTNAME\s+OS\s+GROUP\s+ONLINE\s+LAST CONTACT\s+AGENT/);
    assert.match(list, new RegExp(`^cli-agent-1\\s+\\S+\\s+.+My Organization/Fleet\\s+yes\\s+.*${agent.deviceId}$`, 'm'));
    assert.match(await ok(['device', 'list', '--offline']), /^no devices$/m);
    assert.match(await ok(['device', 'show', 'cli-agent-1']), /^Group:\s+My Organization\/Fleet$/m);
    await ok(['device', 'tag', 'cli-agent-1', 'web', 'prod']);
    assert.match(await ok(['device', 'list', '--tag', 'prod']), /cli-agent-1/);
    await ok(['device', 'tag', 'cli-agent-1', 'prod', '--remove']);
    const d = JSON.parse(await ok(['device', 'show', agent.deviceId, '--json'])) as { tags: string[] };
    assert.deepEqual(d.tags, ['web']);
    // In bulk: on the devices a filter matches, and on devices named.
    assert.match(await ok(['device', 'bulk', 'tag', '--where-group', 'Fleet', '--tags', 'bulk-a,bulk-b']), /^tag: 1 done, 0 unchanged, 0 refused \(no permission\), 0 not found \(of 1 matched\)$/m);
    assert.match(await ok(['device', 'bulk', 'untag', 'cli-agent-1', '--tags', 'bulk-b']), /^untag: 1 done/m);
    assert.match(await ok(['device', 'list', '--tag', 'bulk-a', '--sort', 'lastContact', '--desc']), /cli-agent-1/);
    assert.match(await ok(['device', 'bulk', 'check-in', '--where-group', 'Fleet', '--where-status', 'online']), /^check-in: 1 done/m);
    const noTags = await cli(['device', 'bulk', 'tag', 'cli-agent-1']);
    assert.equal(noTags.code, 2);
    assert.match(noTags.stderr, /tag needs --tags/);
  });

  it('creates a script task for a group, runs it with --watch, and shows results and events', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-script-'));
    try {
      const script = path.join(dir, 'hello.sh');
      await writeFile(script, 'echo "hello from $(hostname) in $MODE"\necho garrison:progress=50\n');
      const created = await ok([
        'task', 'create', '--name', 'cli hello', '--group', 'My Organization/Fleet', '--script-file', script, '--env', 'MODE=cli-test',
        '--schedule', 'daily:03:00', '--schedule', 'weekly:mon-fri@08:00', '--time-basis', 'UTC', '--timeout', '60', '--json',
      ]);
      const task = JSON.parse(created) as Task;
      assert.deepEqual(task.scope, { type: 'group', groupId: fleetId, includeSubgroups: true });
      assert.deepEqual(task.schedule.triggers, [
        { type: 'daily', time: '03:00' },
        { type: 'weekly', days: ['mon', 'tue', 'wed', 'thu', 'fri'], time: '08:00' },
      ]);
      assert.match(await ok(['task', 'list']), /cli hello\s+script\s+My Organization\/Fleet\s+daily:03:00, weekly:mon-fri@08:00\s+yes/);
      assert.match(await ok(['task', 'show', 'cli hello']), /^Schedule:\s+daily:03:00, weekly:mon-fri@08:00$/m);

      const run = await cli(['task', 'run', task.id, '--watch']);
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.match(run.stdout, /run requested on 1 device/);
      assert.match(run.stdout, /^1\/1 finished: succeeded 1$/m);

      const results = await ok(['task', 'results', task.id, '--output']);
      assert.match(results, /^DEVICE\s+STATE\s+EXIT\s+ENDED\s+REASON/);
      assert.match(results, /^cli-agent-1\s+succeeded\s+0\s/m);
      assert.match(results, /hello from .* in cli-test/);
      assert.match(await ok(['task', 'progress', task.id]), /^1\/1 finished: succeeded 1$/m);

      const runId = (JSON.parse(await ok(['task', 'results', task.id, '--json'])) as { id: string }[])[0]!.id;
      assert.match(await ok(['run', 'show', runId]), /^State:\s+succeeded$/m);
      assert.match(await ok(['run', 'list', '--task', 'cli hello', '--state', 'succeeded']), new RegExp(runId));
      assert.match(await ok(['device', 'runs', 'cli-agent-1']), new RegExp(runId));
      assert.match(await ok(['device', 'tasks', 'cli-agent-1']), /cli hello/);

      const events = await ok(['events', '--severity', 'info', '--task', task.id, '--since', '1h']);
      assert.match(events, /^TIME\s+SEVERITY\s+KIND\s+DEVICE\s+MESSAGE/);
      assert.match(events, /info\s+run\.succeeded\s+cli-agent-1\s+task "cli hello" succeeded/);
      assert.match(events, /audit\.task\.run-now/);
      const csv = await ok(['events', '--task', task.id, '--format', 'csv']);
      assert.match(csv, /^id,time,severity,kind,message/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('exits 1 from --watch when the task fails on a target', async () => {
    await ok(['task', 'create', '--name', 'cli fails', '--device', 'cli-agent-1', '--command', 'exit 4', '--schedule', 'on-demand']);
    const run = await cli(['task', 'run', 'cli fails', '--watch']);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^1\/1 finished: failed 1$/m);
    assert.match(await ok(['task', 'results', 'cli fails']), /^cli-agent-1\s+failed\s+4\s/m);
  });

  it('sets a secret from standard input and uses it with --env-secret, never printing it', async () => {
    assert.match(await ok(['secret', 'set', 'cli-db-pass', '--description', 'test secret'], { input: 's3cr3t-value\n' }), /^secret cli-db-pass set$/m);
    const list = await ok(['secret', 'list']);
    assert.match(list, /^cli-db-pass\s+test secret\s/m);
    assert.ok(!list.includes('s3cr3t-value'));
    await ok([
      'task', 'create', '--name', 'cli secret', '--group', 'Fleet', '--command', 'test "$DB_PASS" = s3cr3t-value && echo match',
      '--env-secret', 'DB_PASS=cli-db-pass', '--schedule', 'on-demand',
    ]);
    const shown = await ok(['task', 'show', 'cli secret', '--json']);
    assert.deepEqual((JSON.parse(shown) as Task).settings.env, { DB_PASS: { $secret: 'cli-db-pass' } });
    const run = await cli(['task', 'run', 'cli secret', '--watch']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(await ok(['task', 'results', 'cli secret', '--output']), /^match$/m);
    const missing = await cli(['task', 'create', '--name', 'x', '--group', 'Fleet', '--command', 'true', '--env-secret', 'P=nope', '--schedule', 'on-demand']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error SECRET_NOT_FOUND: /);
  });

  it('changes, copies, exports and imports tasks', async () => {
    const id = (JSON.parse(await ok(['task', 'create', '--name', 'cli export me', '--group', 'Fleet', '--command', 'echo one', '--schedule', 'every:2h', '--json'])) as Task).id;
    const changed = JSON.parse(await ok(['task', 'set', id, '--schedule', 'monthly:2nd-tue@09:00', '--randomize', '5', '--no-subgroups', '--json'])) as Task;
    assert.equal(changed.revision, 2);
    assert.deepEqual(changed.schedule, { triggers: [{ type: 'monthly', week: 2, weekday: 'tue', time: '09:00' }], randomizeMinutes: 5 });
    assert.equal(changed.scope.type === 'group' && changed.scope.includeSubgroups, false);
    await ok(['task', 'disable', id]);
    assert.match(await ok(['task', 'copy', id, '--name', 'cli copied']), /copied to task "cli copied"/);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-export-'));
    try {
      const file = path.join(dir, 'tasks.json');
      const r = await cli(['task', 'export', id, 'cli copied', '-o', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /exported 2 tasks/);
      const doc = JSON.parse(await readFile(file, 'utf8')) as { format: string; tasks: { name: string; scope: unknown }[] };
      assert.equal(doc.format, 'garrison.tasks');
      assert.deepEqual(doc.tasks.map((x) => x.name), ['cli export me', 'cli copied']);
      assert.deepEqual(doc.tasks[0]!.scope, { type: 'group', groupPath: 'My Organization/Fleet', includeSubgroups: false });
      for (const x of doc.tasks) x.name += ' (imported)';
      await writeFile(file, JSON.stringify(doc));
      assert.match(await ok(['task', 'import', file]), /^imported 2 tasks$/m);
      const names = (JSON.parse(await ok(['task', 'list', '--json'])) as Task[]).map((x) => x.name);
      assert.ok(names.includes('cli export me (imported)') && names.includes('cli copied (imported)'), names.join(', '));
      const bad = await cli(['task', 'import', '-'], { input: JSON.stringify({ format: 'nope' }) });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error IMPORT_INVALID: /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    await ok(['task', 'delete', id]);
    const gone = await cli(['task', 'show', id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error NOT_FOUND: /);
  });

  it('checks packages into the repository, lists, promotes and removes them', async () => {
    const { buildArchive, manifest } = await import('../../server/test/package-fixtures.ts');
    const v1 = await buildArchive(manifest('cli-app', '1.9'));
    const v2 = await buildArchive(manifest('cli-app', '1.10'));
    assert.match(await ok(['repo', 'add', v1]), /cli-app 1\.9 checked into current/);
    assert.match(await ok(['repo', 'add', v2, '--branch', 'evaluation']), /cli-app 1\.10 checked into evaluation/);
    await ok(['repo', 'promote', 'cli-app@1.10', '--branch', 'current']);
    const list = JSON.parse(await ok(['repo', 'list', '--product', 'cli-app', '--json'])) as { version: string; branch: string }[];
    assert.deepEqual(list.map((p) => [p.version, p.branch]), [['1.10', 'current'], ['1.9', 'previous']]);
    assert.match(await ok(['repo', 'show', 'cli-app@1.10']), /sha256:\s+[0-9a-f]{64}/);
    assert.match(await ok(['repo', 'key']), /BEGIN PUBLIC KEY/);
    await ok(['repo', 'remove', 'cli-app@1.9']);
    const bad = await cli(['repo', 'add', '/nonexistent.tgz']);
    assert.equal(bad.code, 2);
    const dup = await cli(['repo', 'add', v2]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /CONFLICT/);
  });

  it('assigns a product to a group and shows deployment compliance as the agent installs it', async () => {
    const { buildArchive, manifest } = await import('../../server/test/package-fixtures.ts');
    await ok(['repo', 'add', await buildArchive(manifest('cli-deployed', '2.1'))]);
    assert.match(await ok(['deploy', 'assign', 'cli-deployed', '--group', 'Fleet']), /install from current on "My Organization\/Fleet"/);
    assert.match(await ok(['deploy', 'list', '--group', 'Fleet']), /cli-deployed\s+install\s+current/);
    let out = '';
    await waitFor(async () => {
      out = await ok(['deploy', 'status', '--group', 'Fleet', '--product', 'cli-deployed']);
      return /cli-agent-1\s+cli-deployed\s+compliant\s+2\.1/.test(out);
    }, { what: 'cli-agent-1 compliant with cli-deployed 2.1', timeoutMs: 20_000 }).catch(() => {});
    assert.match(out, /cli-agent-1\s+cli-deployed\s+compliant\s+2\.1/);
    assert.match(await ok(['deploy', 'assign', 'cli-deployed', '--group', 'Fleet', '--pilot', 'Fleet', '--phases', '10,100', '--failure-threshold', '20']), /staged rollout/);
    const staged = JSON.parse(await ok(['deploy', 'list', '--json'])) as { product: string; rollout: unknown }[];
    assert.deepEqual(staged.find((a) => a.product === 'cli-deployed')!.rollout, { pilotGroupId: fleetId, percentages: [10, 100], failureThresholdPercent: 20 });
    assert.equal((await cli(['deploy', 'assign', 'cli-deployed', '--group', 'Fleet', '--phases', '0,200'])).code, 2);
    const notHalted = await cli(['deploy', 'resume', 'cli-deployed', '--group', 'Fleet']);
    assert.equal(notHalted.code, 1);
    await ok(['deploy', 'unassign', 'cli-deployed', '--group', 'Fleet']);
    assert.equal((await cli(['deploy', 'assign', 'cli-deployed', '--group', 'Fleet', '--branch', 'nightly'])).code, 2);
  });

  it('reports the API error code for unknown groups and exits 2 without a token', async () => {
    const devices = await cli(['device', 'list', '--group', 'No/Such/Group']);
    assert.equal(devices.code, 1);
    assert.match(devices.stderr, /^error NOT_FOUND: group No\/Such\/Group does not exist/);
    const task = await cli(['task', 'create', '--name', 'x', '--group', 'Nowhere', '--command', 'true', '--schedule', 'on-demand']);
    assert.equal(task.code, 1);
    assert.match(task.stderr, /^error SCOPE_INVALID: /);
    const token = await cli(['token', 'create', '--group', 'Nowhere']);
    assert.equal(token.code, 1);
    assert.match(token.stderr, /^error NOT_FOUND: /);

    const noToken = await cli(['device', 'list'], { env: { GARRISON_TOKEN: '' } });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /no API token/);
    const badToken = await cli(['device', 'list'], { env: { GARRISON_TOKEN: 'gat.wrong.token' } });
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /^error UNAUTHENTICATED: /);
    const usage = await cli(['task', 'create', '--name', 'x', '--group', 'Fleet', '--command', 'true', '--schedule', 'fortnightly']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown schedule "fortnightly"/);
  });

  it('logs in, saving the settings readable by the owner only', async () => {
    const env = { GARRISON_URL: '', GARRISON_TOKEN: '', GARRISON_CA: '' };
    const fp = t.server.tls!.caFingerprint;
    const untrusted = await cli(['login', '--server', t.server.url, '--token', t.token], { env });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /SERVER_NOT_TRUSTED/);
    const forged = await cli(['login', '--server', t.server.url, '--token', t.token, '--ca-fingerprint', 'ab'.repeat(32)], { env });
    assert.equal(forged.code, 1);
    assert.match(forged.stderr, /CA_FINGERPRINT_MISMATCH/);
    const bad = await cli(['login', '--server', t.server.url, '--token', 'gat.wrong.token', '--ca-fingerprint', fp], { env });
    assert.equal(bad.code, 1);
    await ok(['login', '--server', t.server.url, '--token', t.token, '--ca-fingerprint', fp.toUpperCase().match(/../g)!.join(':')], { env });
    const file = path.join(configHome, 'garrison', 'cli.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { server: t.server.url, token: t.token, ca: t.server.tls!.caPem });
    assert.match(await ok(['whoami'], { env }), /^Name:\s+admin$/m);
    await ok(['settings', 'set', '--event-retention', '30'], { env });
    assert.match(await ok(['settings', 'show'], { env }), /^Event retention:\s+30 days$/m);
  });
});
