// PolicyEnforcer and the agent's own settings (agent-settings.ts): real plug-in objects that keep
// their configuration in real files, a real state folder, and "restarts" as new instances on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reconcilePolicy } from '@garrison/core';
import { DEFAULT_AGENT_POLICY, type AgentProductPolicy } from '@garrison/protocol';
import { AgentPluginRegistry, type AgentPlugin, type PolicyContext } from '../src/plugins.ts';
import { PolicyEnforcer } from '../src/policy-enforcer.ts';
import { AgentSettings, SettingsChangeError } from '../src/agent-settings.ts';
import { DeviceEventSpool } from '../src/device-events.ts';
import { LocalEventLog } from '../src/event-log.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-policy-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A product whose configuration is a JSON file in its folder: what a real plug-in does. */
function filePlugin(file: string, calls: { reason: string; previous: unknown }[]): AgentPlugin {
  return {
    product: 'scanner',
    taskTypes: {},
    async applyPolicy(p, ctx) {
      calls.push({ reason: p.reason, previous: p.previous });
      const found = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as Record<string, unknown>;
      if (found.broken) throw new Error('the configuration file is unreadable');
      const r = reconcilePolicy(p, p.previous, found);
      await writeFile(file, JSON.stringify(r.target));
      for (const d of r.drift) if (d.fresh && d.action === 'restored') await ctx.emit({ severity: 'warning', kind: 'policy.restored', message: `${d.setting} put back` });
      return { state: 'compliant', drift: r.drift.map(({ fresh: _f, ...d }) => d), applied: r.target };
    },
  };
}

function setup(dir: string, plugin: AgentPlugin, intervalMs = 60_000) {
  const plugins = new AgentPluginRegistry(join(dir, 'products'));
  plugins.install(plugin);
  const spool = new DeviceEventSpool(join(dir, 'device-events'));
  let changes = 0;
  let ticks = 0;
  const context = (product: string): PolicyContext => ({
    ...plugins.context(product),
    emit: (e) => spool.add({ eventId: `ev${Date.now()}${Math.random().toString(36).slice(2, 10)}`, product, time: new Date().toISOString(), ...e }),
  });
  const enforcer = new PolicyEnforcer({ dir: join(dir, 'policy'), plugins, context, intervalMs: () => intervalMs, onStatusChanged: () => changes++, onTick: () => ticks++, applyTimeoutMs: 500 });
  return { enforcer, spool, plugins, changes: () => changes, ticks: () => ticks };
}

const policy = (revision: string, settings: Record<string, unknown>, locked: string[] = []): AgentProductPolicy => ({ product: 'scanner', revision, settings, locked });

test('a new policy is applied at once, kept across a restart, and previous survives it', () =>
  withDir(async (dir) => {
    const conf = join(dir, 'scanner.json');
    const calls: { reason: string; previous: unknown }[] = [];
    const a = setup(dir, filePlugin(conf, calls));
    await a.spool.init();
    await a.enforcer.init();
    await a.enforcer.setPolicies({ etag: 'e1', products: [policy('r1', { level: 'high', heuristics: true }, ['level'])] });
    assert.deepEqual(JSON.parse(await readFile(conf, 'utf8')), { level: 'high', heuristics: true });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.previous, null);
    assert.equal(a.enforcer.pendingStatus()[0]?.state, 'compliant');
    assert.equal(a.changes(), 1);
    // The check-in that carried the status came back: nothing left to send.
    await a.enforcer.statusSent(a.enforcer.pendingStatus());
    assert.deepEqual(a.enforcer.pendingStatus(), []);

    // Restart: the policies and the previous application come from the state folder.
    const b = setup(dir, filePlugin(conf, calls));
    await b.spool.init();
    await b.enforcer.init();
    assert.equal(b.enforcer.etag, 'e1');
    assert.equal(b.enforcer.policy('scanner')?.revision, 'r1');
    // The locked setting changed on the device while the agent was stopped…
    await writeFile(conf, JSON.stringify({ level: 'low', heuristics: false }));
    b.enforcer.start();
    await until(() => calls.length === 2, 'the enforcement at start');
    await until(async () => b.spool.size === 1, 'the restored event');
    assert.deepEqual(calls[1]!.previous, { policy: { level: 'high', heuristics: true }, applied: { level: 'high', heuristics: true } });
    // …is put back; the unlocked one stands (kept-local).
    assert.deepEqual(JSON.parse(await readFile(conf, 'utf8')), { level: 'high', heuristics: false });
    assert.equal(b.spool.pending()[0]!.kind, 'policy.restored');
    await until(() => b.enforcer.pendingStatus().length === 1, 'the new status');
    assert.deepEqual(
      b.enforcer.pendingStatus()[0]!.drift?.map((d) => [d.setting, d.action]).sort(),
      [['heuristics', 'kept-local'], ['level', 'restored']],
    );
    // The unlocked local change stands at the next application, until the administrator changes it.
    await b.enforcer.enforce('enforcement');
    assert.equal(JSON.parse(await readFile(conf, 'utf8')).heuristics, false);
    await b.enforcer.setPolicies({ etag: 'e2', products: [policy('r2', { level: 'high', heuristics: 'strict' }, ['level'])] });
    assert.equal(JSON.parse(await readFile(conf, 'utf8')).heuristics, 'strict');
    await b.enforcer.stop();
  }));

test('a throwing or hanging applyPolicy is a failed status, and previous stays the last success', () =>
  withDir(async (dir) => {
    const conf = join(dir, 'scanner.json');
    const calls: { reason: string; previous: unknown }[] = [];
    const plugin = filePlugin(conf, calls);
    const s = setup(dir, plugin);
    await s.spool.init();
    await s.enforcer.init();
    await s.enforcer.setPolicies({ etag: 'e1', products: [policy('r1', { level: 'high' })] });
    await writeFile(conf, JSON.stringify({ broken: true }));
    await s.enforcer.enforce('enforcement');
    const failed = s.enforcer.status('scanner')!;
    assert.equal(failed.state, 'failed');
    assert.match(failed.reason!, /unreadable/);
    assert.equal(s.enforcer.applied('scanner')?.revision, 'r1');
    // A hang is cut by the time limit.
    plugin.applyPolicy = () => new Promise(() => {});
    await s.enforcer.setPolicies({ etag: 'e2', products: [policy('r2', { level: 'low' })] });
    assert.equal(s.enforcer.status('scanner')!.state, 'failed');
    assert.match(s.enforcer.status('scanner')!.reason!, /did not finish/);
    assert.equal(s.enforcer.applied('scanner')?.revision, 'r1');
    await s.enforcer.stop();
  }));

test('the enforcement interval applies again and fires the trigger on one clock; an unchanged status sends nothing', () =>
  withDir(async (dir) => {
    const calls: { reason: string; previous: unknown }[] = [];
    const s = setup(dir, filePlugin(join(dir, 'scanner.json'), calls), 30);
    await s.spool.init();
    await s.enforcer.init();
    await s.enforcer.setPolicies({ etag: 'e1', products: [policy('r1', { level: 'high' })] });
    const changesBefore = s.changes();
    s.enforcer.start();
    await until(() => calls.filter((c) => c.reason === 'enforcement').length >= 3 && s.ticks() >= 3, 'three enforcements');
    await s.enforcer.stop();
    assert.equal(s.changes(), changesBefore, 'the same status again is not a change');
  }));

test('the agent settings: locked ones refused locally and restored when edited by hand, unlocked ones stand', () =>
  withDir(async (dir) => {
    const file = join(dir, 'agent-settings.json');
    const events = new LocalEventLog(join(dir, 'logs'));
    const seen: number[] = [];
    const settings = new AgentSettings({ file, events, onChange: (s) => void seen.push(s.checkInIntervalMinutes) });
    await settings.load();
    const spool = new DeviceEventSpool(join(dir, 'device-events'));
    await spool.init();
    const plugins = new AgentPluginRegistry(join(dir, 'products'));
    plugins.install({ product: 'garrison', taskTypes: {}, applyPolicy: (p, ctx) => settings.applyPolicy(p, ctx) });
    const enforcer = new PolicyEnforcer({
      dir: join(dir, 'policy'),
      plugins,
      intervalMs: () => 60_000,
      context: (product) => ({ ...plugins.context(product), emit: (e) => spool.add({ eventId: `ev${Date.now()}${Math.random().toString(36).slice(2, 10)}`, product, time: new Date().toISOString(), ...e }) }),
    });
    await enforcer.init();
    const wanted = { ...DEFAULT_AGENT_POLICY, checkInIntervalMinutes: 15, localTasksAllowed: false };
    await enforcer.setPolicies({ etag: 'g1', products: [{ product: 'garrison', revision: 'g1', settings: wanted, locked: ['localTasksAllowed'] }] });
    assert.equal(settings.current.checkInIntervalMinutes, 15);
    assert.equal(settings.current.localTasksAllowed, false);
    assert.equal(seen.at(-1), 15);

    await assert.rejects(settings.setLocal({ localTasksAllowed: true }), (e: SettingsChangeError) => e.code === 'POLICY_SETTING_LOCKED');
    await assert.rejects(settings.setLocal({ checkInIntervalMinutes: 0 }), (e: SettingsChangeError) => e.code === 'VALIDATION_FAILED');
    await assert.rejects(settings.setLocal({ nope: 1 }), (e: SettingsChangeError) => e.code === 'VALIDATION_FAILED');
    await settings.setLocal({ checkInIntervalMinutes: 30 });
    assert.equal(settings.current.checkInIntervalMinutes, 30);

    // The locked one edited by hand in the file:
    const onDisk = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...onDisk, localTasksAllowed: true }));
    await enforcer.enforce('enforcement');
    assert.equal(settings.current.localTasksAllowed, false);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).localTasksAllowed, false);
    assert.equal(settings.current.checkInIntervalMinutes, 30, 'the unlocked local change stands');
    assert.deepEqual(spool.pending().map((e) => [e.kind, e.data?.setting]), [['policy.restored', 'localTasksAllowed']]);
    const drift = enforcer.status('garrison')!.drift!;
    assert.deepEqual(drift.map((d) => [d.setting, d.action]).sort(), [['checkInIntervalMinutes', 'kept-local'], ['localTasksAllowed', 'restored']]);

    // The administrator changes the interval: the new value replaces the local one.
    await enforcer.setPolicies({ etag: 'g2', products: [{ product: 'garrison', revision: 'g2', settings: { ...wanted, checkInIntervalMinutes: 5 }, locked: ['localTasksAllowed'] }] });
    assert.equal(settings.current.checkInIntervalMinutes, 5);
    await enforcer.stop();
  }));

test("the event log follows the agent's policy: smaller keep drops rotated files, retention deletes old ones", () =>
  withDir(async (dir) => {
    const { utimes, readdir } = await import('node:fs/promises');
    const log = new LocalEventLog(join(dir, 'logs'), { maxBytes: 200, keep: 5 });
    for (let i = 0; i < 40; i++) await log.write({ time: new Date().toISOString(), severity: 'info', kind: 'x', message: `line ${i} ${'.'.repeat(40)}` });
    const rotated = async () => (await readdir(join(dir, 'logs'))).filter((f) => /\.log\.\d+$/.test(f)).sort();
    assert.equal((await rotated()).length, 5);
    await log.configure({ keep: 2, maxBytes: 65536 });
    assert.deepEqual(await rotated(), ['events.log.1', 'events.log.2']);
    const old = new Date(Date.now() - 10 * 86_400_000);
    await utimes(join(dir, 'logs', 'events.log.2'), old, old);
    assert.equal(await log.pruneRotated(new Date(Date.now() - 86_400_000)), 1);
    assert.deepEqual(await rotated(), ['events.log.1']);
  }));
