/**
 * Database maintenance: purges what is past the retention settings (events, client task runs,
 * server task runs, expired console sessions) a batch at a time, so that agents' reports and
 * check-ins get in between batches, then vacuums and analyzes. Reports what was removed and
 * the database's size before and after.
 */
import { Type, type Static } from 'typebox';
import { defineServerTaskType, throwIfStopped, type ServerTaskEnvironment } from './server-task.ts';

const Settings = Type.Object(
  {
    eventRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500, description: "Default: the server's retention setting" })),
    runRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500, description: "Default: the server's retention setting" })),
    vacuum: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('always'), Type.Literal('never')], { description: 'Default auto: give free space back without blocking; always: also a full SQLite VACUUM on older files (blocks while it runs); never: analyze only' })),
    batchSize: Type.Optional(Type.Integer({ minimum: 100, maximum: 50000, description: 'Rows deleted per statement (default 5000)' })),
  },
  { additionalProperties: false },
);
type Settings = Static<typeof Settings>;

export interface PurgeResult {
  events: number;
  runs: number;
  serverTaskRuns: number;
  sessions: number;
}

/** The purge by retention, shared by this task and the server's hourly retention loop. */
export async function purgeByRetention(env: Pick<ServerTaskEnvironment, 'maintenance' | 'clock'>, opts: { eventRetentionDays?: number; runRetentionDays?: number; batchSize?: number } = {}, signal?: AbortSignal): Promise<PurgeResult> {
  const m = env.maintenance;
  const retention = await m.settings.serverSettings();
  const now = env.clock.now().getTime();
  const before = (days: number) => new Date(now - days * 86400_000).toISOString();
  const batch = opts.batchSize ?? 5000;
  const out: PurgeResult = { events: 0, runs: 0, serverTaskRuns: 0, sessions: 0 };
  out.sessions = await m.sessions.purgeExpiredSessions();
  if (signal) throwIfStopped(signal);
  out.events = await m.events.purgeBefore(before(opts.eventRetentionDays ?? retention.eventRetentionDays), batch);
  if (signal) throwIfStopped(signal);
  const runsBefore = before(opts.runRetentionDays ?? retention.runRetentionDays);
  out.runs = await m.runs.purgeRunsBefore(runsBefore, batch);
  if (signal) throwIfStopped(signal);
  out.serverTaskRuns = await m.serverTaskRuns.purgeRunsBefore(runsBefore, batch);
  return out;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

export const databaseMaintenanceTaskType = defineServerTaskType<Settings>({
  type: 'database-maintenance',
  name: 'Database maintenance',
  description: 'Purges events and runs past the retention settings in batches, then vacuums and analyzes the database; reports what was removed and the size before and after.',
  settingsSchema: Settings,
  async run(settings, ctx) {
    const sizeBefore = await ctx.maintenance.size();
    ctx.output(`database size before: ${mib(sizeBefore.bytes)} (${mib(sizeBefore.freeBytes)} free pages)`);
    ctx.progress(5, 'purging by retention');
    const removed = await purgeByRetention(ctx, settings, ctx.signal);
    ctx.output(`removed ${removed.events} events, ${removed.runs} runs, ${removed.serverTaskRuns} server task runs, ${removed.sessions} expired sessions`);
    ctx.progress(60, 'vacuum and analyze');
    throwIfStopped(ctx.signal);
    const done = await ctx.maintenance.vacuum(settings.vacuum ?? 'auto', ['events', 'runs', 'task_device_state', 'server_task_runs', 'api_tokens'], ctx.signal);
    const sizeAfter = await ctx.maintenance.size();
    ctx.output(`${done.join(', ')}; database size after: ${mib(sizeAfter.bytes)}`);
    return {
      summary: `removed ${removed.events} events and ${removed.runs + removed.serverTaskRuns} runs; ${done.join(', ')}; ${mib(sizeBefore.bytes)} → ${mib(sizeAfter.bytes)}`,
      data: { removed, maintenance: done, sizeBeforeBytes: sizeBefore.bytes, sizeAfterBytes: sizeAfter.bytes, freeBytesBefore: sizeBefore.freeBytes, freeBytesAfter: sizeAfter.freeBytes },
    };
  },
});
