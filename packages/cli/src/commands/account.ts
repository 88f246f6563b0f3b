/**
 * The caller's own account: `garrison api-token …` (API tokens of the administrator the CLI
 * runs as; enrolment tokens are `garrison token …`) and `garrison 2fa …` (the second factor of
 * password sign-ins to the console).
 */
import type { Command } from 'commander';
import { ApiError, UsageError, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, parseIntOption, table } from '../format.ts';
import { beginTotp, confirmTotp, createApiToken, getMe, listApiTokens, PAGE_LIMIT_MAX, removeTotp, revokeApiToken } from '@garrison/protocol';
import type { ApiTokenView } from '../types.ts';

export function apiTokenState(t: ApiTokenView, now = Date.now()): 'active' | 'revoked' | 'expired' {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return 'expired';
  return 'active';
}

/** An API token by id, else by the name of one token that is still active. */
async function resolveApiToken(client: Client, ref: string): Promise<string> {
  const tokens = await client.api.all(listApiTokens, { query: { limit: PAGE_LIMIT_MAX } });
  if (tokens.some((t) => t.id === ref)) return ref;
  const named = tokens.filter((t) => t.name === ref && apiTokenState(t) === 'active');
  if (named.length > 1) throw new ApiError('CONFLICT', `${named.length} active API tokens are named "${ref}" (${named.map((t) => t.id).join(', ')}); give the id`);
  return named[0]?.id ?? ref;
}

function totpCode(code: string | undefined): string {
  const c = (code ?? '').replace(/\s+/g, '');
  if (!/^\d{6}$/.test(c)) throw new UsageError(`"${code ?? ''}" is not a code: give the 6 digits your authenticator app shows now`);
  return c;
}

export function registerAccountCommands(program: Command, state: RunState): void {
  const apiToken = program.command('api-token').description('Your API tokens: how the CLI and scripts authenticate as you (enrolment tokens are "garrison token")');

  act(apiToken.command('list').description('Your API tokens (never their values), with when each was last used'), state, async (io) => {
    const tokens = await (await io.client()).api.all(listApiTokens, { query: { limit: PAGE_LIMIT_MAX } });
    const now = Date.now();
    io.print(tokens, () =>
      tokens.length
        ? table(
            ['NAME', 'STATE', 'CREATED', 'LAST USED', 'EXPIRES', 'ID'],
            tokens.map((t) => [t.name, apiTokenState(t, now), formatTime(t.createdAt), t.lastUsedAt ? formatTime(t.lastUsedAt) : 'never', t.expiresAt ? formatTime(t.expiresAt) : 'never', t.id]),
          )
        : 'no API tokens\n',
    );
  });

  act(
    apiToken
      .command('create')
      .description('Create an API token for yourself; its value is shown once')
      .requiredOption('--name <name>', 'what the token is for')
      .option('--expires-days <days>', 'valid for this many days (default: until revoked)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const body: { name: string; expiresInDays?: number } = { name: opts.name };
      const days = parseIntOption(opts.expiresDays, '--expires-days', 1, 3650);
      if (days !== undefined) body.expiresInDays = days;
      const t = await client.api.call(createApiToken, { body });
      io.print(
        t,
        () =>
          `API token "${t.name}" (id ${t.id}${t.expiresAt ? `, expires ${formatTime(t.expiresAt)}` : ', no expiry'}).\n` +
          `The value is shown only now:\n\n  ${t.token}\n\n` +
          `Use it with GARRISON_TOKEN, --token-file FILE or "garrison login --token-file FILE"; revoke it with: garrison api-token revoke ${t.id}\n`,
      );
    },
  );

  act(apiToken.command('revoke').description('Revoke one of your API tokens').argument('<token>', 'id, or the name of an active token'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const id = await resolveApiToken(client, ref!);
    await client.api.call(revokeApiToken, { params: { id } });
    io.print({ id, revoked: true }, () => `revoked API token ${id}\n`);
  });

  const twoFa = program.command('2fa').description('Your second factor (TOTP) for password sign-ins to the console');

  act(twoFa.command('enable').description('Start setting a second factor: prints the otpauth:// URI and the secret for an authenticator app'), state, async (io) => {
    const client = await io.client();
    const me = await client.api.call(getMe, {});
    const setup = await client.api.call(beginTotp, {});
    io.print(
      setup,
      () =>
        `Add this second factor for ${me.name} to an authenticator app: open or scan (as a QR code) the URI\n\n  ${setup.uri}\n\n` +
        `or enter the secret by hand:\n\n  ${setup.secret}\n\n` +
        `It takes effect once you confirm a code the app shows: garrison 2fa confirm CODE\n`,
    );
  });

  act(twoFa.command('confirm').description('Put the second factor in force with a code the authenticator app shows').argument('<code>', 'the 6-digit code'), state, async (io, _opts, [code]) => {
    const body = { code: totpCode(code) };
    await (await io.client()).api.call(confirmTotp, { body });
    io.print({ totpEnabled: true }, () => 'second factor set: console sign-ins with your password now also ask for a code\n');
  });

  act(twoFa.command('disable').description('Remove your second factor (with a current code)').argument('<code>', 'the 6-digit code'), state, async (io, _opts, [code]) => {
    const body = { code: totpCode(code) };
    await (await io.client()).api.call(removeTotp, { body });
    io.print({ totpEnabled: false }, () => 'second factor removed\n');
  });
}
