import type { Command } from 'commander';
import { seg } from '../client.ts';
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
      const body: Record<string, unknown> = { groupId: await new Groups(client).id(opts.group) };
      const expires = parseIntOption(opts.expires, '--expires', 1, 5256000);
      if (expires !== undefined) body.expiresInMinutes = expires;
      const maxUses = parseIntOption(opts.maxUses, '--max-uses', 1, 1000000);
      if (maxUses !== undefined) body.maxUses = maxUses;
      if (opts.name !== undefined) body.name = opts.name;
      const t = await client.post<EnrolmentTokenView & { token: string }>('/enrolment-tokens', body);
      io.print(
        t,
        () =>
          `Enrolment token for ${t.groupPath} (id ${t.id}${t.expiresAt ? `, expires ${formatTime(t.expiresAt)}` : ''}${t.maxUses !== null ? `, ${t.maxUses} use${t.maxUses === 1 ? '' : 's'}` : ''}).\n` +
          `The value is shown only now:\n\n  ${t.token}\n\n` +
          `On each device, run:\n\n  garrison agent --server ${shellQuote(client.server)} --token ${shellQuote(t.token)}\n`,
      );
    },
  );

  act(token.command('list').description('Enrolment tokens (never their values)'), state, async (io) => {
    const client = await io.client();
    const tokens = await client.get<EnrolmentTokenView[]>('/enrolment-tokens');
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
    const t = await client.post<EnrolmentTokenView>(`/enrolment-tokens/${seg(id!)}/revoke`);
    io.print(t, () => `revoked enrolment token "${t.name}" (${t.id})\n`);
  });
}
