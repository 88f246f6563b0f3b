/** login, whoami and server settings. */
import type { Command } from 'commander';
import { fetchPinnedCa, TrustError } from '@garrison/protocol/tls';
import { ApiError, Client, UsageError, configPath, normalizeServerUrl, readConfig, writeConfig } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { keyValues, parseIntOption } from '../format.ts';
import { getMe, getServerSettings, updateServerSettings } from '@garrison/protocol';

export function registerAdminCommands(program: Command, state: RunState): void {
  act(
    program
      .command('login')
      .description(`Check an API token and save it with the server URL and CA in ${configPath().replace(process.env.HOME ?? '\u0000', '~')} (mode 0600)`)
      .option('--ca-fingerprint <sha256>', "trust the server's CA if it has this fingerprint (printed by the server at start)"),
    state,
    async (io, opts) => {
      const g = io.globals;
      const server = g.server ?? state.streams.env.GARRISON_URL;
      if (!server) throw new UsageError('give the server: garrison login --server URL --token TOKEN');
      if (!g.token && !g.tokenFile && !state.streams.env.GARRISON_TOKEN) throw new UsageError('give the API token: garrison login --server URL --token TOKEN (or --token-file PATH)');
      const s = await io.settings();
      const url = normalizeServerUrl(server);
      let ca = s.ca;
      if (opts.caFingerprint) {
        try {
          ca = await fetchPinnedCa(url, String(opts.caFingerprint));
        } catch (err) {
          if (err instanceof TrustError) throw new ApiError(err.code, err.message);
          throw err;
        }
      }
      const me = await new Client(url, s.token, ca).api.call(getMe, {});
      const file = configPath(state.streams.env);
      const existing = await readConfig(file);
      await writeConfig({ ...existing, server: url, token: s.token, ...(ca ? { ca } : {}) }, file);
      io.print({ server: url, me, config: file }, () => `logged in to ${url} as ${me.name}; settings saved in ${file}\n`);
    },
  );

  act(program.command('whoami').description('The administrator the API token belongs to, and the server'), state, async (io) => {
    const s = await io.settings();
    const client = new Client(s.server, s.token, s.ca);
    const me = await client.api.call(getMe, {});
    if (io.json) return io.print({ server: s.server, ...me }, () => '');
    const roles = (me.grants ?? []).map((g) => `${g.roleName} on ${g.groupPath}`).join('; ') || (me.kind === 'admin' ? 'none' : me.kind);
    io.out(
      keyValues([
        ['Name', me.name],
        ...(me.displayName ? [['Display name', me.displayName] as const] : []),
        ['Roles', roles],
        // Held on some group (what applies there and below it) and on the root group (the whole tree and server-wide objects).
        ['Permissions', (me.permissions ?? []).join(', ') || 'none'],
        ...(me.kind === 'admin' ? [['On the root group', (me.rootPermissions ?? []).join(', ') || 'none'] as const] : []),
        ...(me.totpEnabled !== undefined ? [['Second factor', me.totpEnabled ? 'on' : 'off'] as const] : []),
        ['Signed in via', me.via ?? ''],
        ['Server', `${s.server} (from ${s.source.server})`],
        ['Token from', s.source.token],
      ]),
    );
  });

  const settings = program.command('settings').description('Server settings: retention of events and runs');
  act(settings.command('show').description('Server settings'), state, async (io) => {
    const v = await (await io.client()).api.call(getServerSettings, {});
    io.print(v, () => keyValues([['Event retention', `${v.eventRetentionDays} days`], ['Run retention', `${v.runRetentionDays} days`]]));
  });
  act(
    settings
      .command('set')
      .description('Change server settings (an unscoped administrator only)')
      .option('--event-retention <days>', 'keep events this many days')
      .option('--run-retention <days>', 'keep runs this many days'),
    state,
    async (io, opts) => {
      const body: { eventRetentionDays?: number; runRetentionDays?: number } = {};
      const ev = parseIntOption(opts.eventRetention, '--event-retention', 1, 3650);
      if (ev !== undefined) body.eventRetentionDays = ev;
      const runs = parseIntOption(opts.runRetention, '--run-retention', 1, 3650);
      if (runs !== undefined) body.runRetentionDays = runs;
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --event-retention DAYS and/or --run-retention DAYS');
      const v = await (await io.client()).api.call(updateServerSettings, { body });
      io.print(v, () => keyValues([['Event retention', `${v.eventRetentionDays} days`], ['Run retention', `${v.runRetentionDays} days`]]));
    },
  );
}
