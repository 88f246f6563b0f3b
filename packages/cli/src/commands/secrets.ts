import type { Command } from 'commander';
import { deleteSecret, listSecrets, PAGE_LIMIT_MAX, putSecret } from '@garrison/protocol';
import { UsageError } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, table } from '../format.ts';
import { promptHidden, readStdin, readText } from '../files.ts';
import { Groups } from '../resolve.ts';

/** A secret value: --value, --from-file, a hidden prompt on a terminal, else all of standard input. */
async function secretValue(opts: { value?: string; fromFile?: string }, name: string, stderr: NodeJS.WritableStream): Promise<string> {
  if (opts.value !== undefined && opts.fromFile !== undefined) throw new UsageError('give --value or --from-file, not both');
  let value: string;
  if (opts.value !== undefined) value = opts.value;
  else if (opts.fromFile !== undefined) value = (await readText(opts.fromFile, '--from-file')).replace(/\r?\n$/, '');
  else if (process.stdin.isTTY) value = await promptHidden(`value of secret ${name}: `, (t) => void stderr.write(t));
  else value = (await readStdin()).replace(/\r?\n$/, '');
  if (!value) throw new UsageError('the secret value is empty');
  return value;
}

export function registerSecretCommands(program: Command, state: RunState): void {
  const secret = program.command('secret').description('Secrets: values tasks refer to by name; never shown again');

  act(secret.command('list').description('Secret names and descriptions (never values)'), state, async (io) => {
    const secrets = await (await io.client()).api.all(listSecrets, { query: { limit: PAGE_LIMIT_MAX } });
    io.print(secrets, () =>
      secrets.length ? table(['NAME', 'DESCRIPTION', 'UPDATED'], secrets.map((s) => [s.name, s.description, formatTime(s.updatedAt)])) : 'no secrets\n',
    );
  });

  act(
    secret
      .command('set')
      .description('Set a secret; the value comes from --value, --from-file, or standard input')
      .argument('<name>', 'the name tasks use: --env-secret VAR=NAME')
      .option('--value <value>', 'the value (visible in shell history: prefer standard input)')
      .option('--from-file <file>', 'read the value from a file (one trailing newline dropped)')
      .option('--description <text>', 'what the secret is for')
      .option('--group <group>', 'the group it belongs to (default: the root, or the one it has): only tasks of that subtree may use it'),
    state,
    async (io, opts, [name]) => {
      const client = await io.client();
      const value = await secretValue(opts, name!, state.streams.stderr);
      const groupId = opts.group !== undefined ? await new Groups(client).id(String(opts.group)) : undefined;
      await client.api.call(putSecret, { params: { name: name! }, body: { value, ...(opts.description !== undefined ? { description: String(opts.description) } : {}), ...(groupId ? { groupId } : {}) } });
      io.print({ name, set: true }, () => `secret ${name} set\n`);
    },
  );

  act(secret.command('delete').description('Delete a secret').argument('<name>', 'secret name'), state, async (io, _opts, [name]) => {
    await (await io.client()).api.call(deleteSecret, { params: { name: name! } });
    io.print({ name, deleted: true }, () => `secret ${name} deleted\n`);
  });
}
