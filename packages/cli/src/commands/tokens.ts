import type { Command } from 'commander';
import { createEnrolmentToken, getHealth, listEnrolmentTokens, PAGE_LIMIT_MAX, revokeEnrolmentToken, type TokenCreate } from '@garrison/protocol';
import { createInstaller, type InstallerCreate } from '@garrison/protocol';
import { act, type RunState } from '../context.ts';
import { formatTime, parseIntOption, table } from '../format.ts';
import { Groups } from '../resolve.ts';
import type { EnrolmentTokenView } from '../types.ts';

/** Quotes an argument for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export function registerTokenCommands(program: Command, state: RunState): void {
  const token = program.command('token').description('Enrolment tokens: how agents join a group');

  act(
    token
      .command('create')
      .description('Create an enrolment token for a group; its value is shown once')
      .requiredOption('--group <group>', 'the group enrolled devices join (id or path)')
      .option('--expires <min>', 'valid for this many minutes (default: no expiry)')
      .option('--max-uses <n>', 'at most this many enrolments (default: unlimited)')
      .option('--name <name>', 'a name to recognise the token by'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const body: TokenCreate = { groupId: await new Groups(client).id(opts.group) };
      const expires = parseIntOption(opts.expires, '--expires', 1, 5256000);
      if (expires !== undefined) body.expiresInMinutes = expires;
      const maxUses = parseIntOption(opts.maxUses, '--max-uses', 1, 1000000);
      if (maxUses !== undefined) body.maxUses = maxUses;
      if (opts.name !== undefined) body.name = opts.name;
      const t = await client.api.call(createEnrolmentToken, { body });
      const fp = (await client.api.call(getHealth, {}).catch(() => ({ caFingerprint: null }))).caFingerprint;
      io.print(
        t,
        () =>
          `Enrolment token for ${t.groupPath} (id ${t.id}${t.expiresAt ? `, expires ${formatTime(t.expiresAt)}` : ''}${t.maxUses !== null ? `, ${t.maxUses} use${t.maxUses === 1 ? '' : 's'}` : ''}).\n` +
          `The value is shown only now:\n\n  ${t.token}\n\n` +
          // Never the token on the agent's command line: every user of the device could read it there.
          `On each device, run this and paste the token when asked (or pipe it in; or save it in a file\n` +
          `only root can read and give --token-file FILE instead of --token-stdin):\n\n` +
          `  garrison agent --server ${shellQuote(client.server)}${fp ? ` --ca-fingerprint ${fp}` : ''} --token-stdin\n` +
          `(or create an installer link: garrison installer create --group …)\n`,
      );
    },
  );

  const installer = program.command('installer').description('Installer links: a one-line command that installs the agent as a service and enrols the machine into a group');
  act(
    installer
      .command('create')
      .description('Create an installer link for a group (an enrolment token inside); its commands are shown once')
      .requiredOption('--group <group>', 'the group installed machines join (id or path)')
      .option('--expires <min>', 'valid for this many minutes (default: 7 days)')
      .option('--max-uses <n>', 'at most this many machines (default: unlimited)')
      .option('--name <name>', 'a name to recognise it by')
      .option('--server-url <url>', 'the https:// address machines reach the server at (default: the one this CLI uses)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const body: InstallerCreate = { groupId: await new Groups(client).id(opts.group), serverUrl: opts.serverUrl ?? client.server };
      const expires = parseIntOption(opts.expires, '--expires', 1, 525600);
      if (expires !== undefined) body.expiresInMinutes = expires;
      const maxUses = parseIntOption(opts.maxUses, '--max-uses', 1, 1000000);
      if (maxUses !== undefined) body.maxUses = maxUses;
      if (opts.name !== undefined) body.name = opts.name;
      const l = await client.api.call(createInstaller, { body });
      io.print(
        l,
        () =>
          `Installer link for ${l.token.groupPath} (token ${l.token.id}${l.token.expiresAt ? `, expires ${formatTime(l.token.expiresAt)}` : ''}${l.token.maxUses !== null ? `, ${l.token.maxUses} use${l.token.maxUses === 1 ? '' : 's'}` : ''}).\n` +
          `Server CA fingerprint (SHA-256): ${l.caFingerprint}\nAgent builds available: ${l.agentPlatforms.join(', ')}\n\n` +
          `Linux (as root):\n  ${l.commands.linux}\n\nmacOS (as root):\n  ${l.commands.macos}\n\nWindows (as Administrator):\n  ${l.commands.windows}\n\n` +
          `Revoke it with: garrison token revoke ${l.token.id}\n`,
      );
    },
  );

  act(token.command('list').description('Enrolment tokens (never their values)'), state, async (io) => {
    const client = await io.client();
    const tokens = await client.api.all(listEnrolmentTokens, { query: { limit: PAGE_LIMIT_MAX } });
    io.print(tokens, () =>
      tokens.length
        ? table(
            ['NAME', 'GROUP', 'STATE', 'USES', 'EXPIRES', 'CREATED', 'ID'],
            tokens.map((t) => [t.name, t.groupPath, t.state, `${t.uses}${t.maxUses !== null ? `/${t.maxUses}` : ''}`, t.expiresAt ? formatTime(t.expiresAt) : 'never', formatTime(t.createdAt), t.id]),
          )
        : 'no enrolment tokens\n',
    );
  });

  act(token.command('revoke').description('Revoke an enrolment token').argument('<id>', 'token id'), state, async (io, _opts, [id]) => {
    const client = await io.client();
    const t = await client.api.call(revokeEnrolmentToken, { params: { id: id! } });
    io.print(t, () => `revoked enrolment token "${t.name}" (${t.id})\n`);
  });
}
