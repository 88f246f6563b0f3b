import type { Command } from 'commander';
import { openAsBlob } from 'node:fs';
import { addPackage, deletePackage, getPackage, getSigningKey, listPackages, operationPath, PAGE_LIMIT_MAX, promotePackage, type Branch, type RepositoryPackage } from '@garrison/protocol';
import { UsageError, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, keyValues, table } from '../format.ts';

const BRANCHES = ['current', 'previous', 'evaluation'];

/** A package named by id or as PRODUCT@VERSION. */
async function packageId(client: Client, ref: string): Promise<string> {
  const at = ref.lastIndexOf('@');
  if (at <= 0) return ref;
  const product = ref.slice(0, at);
  const version = ref.slice(at + 1);
  let found: RepositoryPackage | undefined;
  for await (const p of client.api.each(listPackages, { query: { product, limit: PAGE_LIMIT_MAX } })) {
    if (p.version === version) {
      found = p;
      break;
    }
  }
  if (!found) throw new UsageError(`no package ${product} ${version} in the repository`);
  return found.id;
}
function branchOption(text: string | undefined, allowNone: boolean): Branch | 'none' | undefined {
  if (text === undefined) return undefined;
  if (BRANCHES.includes(text) || (allowNone && text === 'none')) return text as Branch | 'none';
  throw new UsageError(`--branch must be one of ${[...BRANCHES, ...(allowNone ? ['none'] : [])].join(', ')}`);
}
function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function registerRepoCommands(program: Command, state: RunState): void {
  const repo = program.command('repo').description('The master repository: signed product packages in branches current, previous, evaluation');

  act(
    repo
      .command('add')
      .description('Check a package archive (.tar.gz with garrison-package.json) into a branch; the server signs it')
      .argument('<file>', 'the package archive')
      .option('--branch <branch>', 'current (default), previous, evaluation, or none'),
    state,
    async (io, opts, [file]) => {
      const client = await io.client();
      const branch = branchOption(opts.branch, true) ?? 'current';
      let data: Blob;
      try {
        data = await openAsBlob(file!);
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      // The archive is the body itself (no JSON schema): sent with request() on the operation's path.
      const res = await client.api.request(addPackage.method, operationPath(addPackage), { query: { branch }, body: data, contentType: 'application/gzip', timeoutMs: 30 * 60_000 });
      const p = (await res.json()) as RepositoryPackage;
      io.print(p, () => `${p.product} ${p.version} checked into ${p.branch ?? 'the repository (no branch)'} (${size(p.size)}, sha256 ${p.sha256.slice(0, 16)}…, id ${p.id})\n`);
    },
  );

  act(
    repo.command('list').description('Packages, newest version first').option('--product <id>', 'one product').option('--branch <branch>', 'one branch'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const branch = branchOption(opts.branch, false) as Branch | undefined;
      const list = await client.api.all(listPackages, { query: { limit: PAGE_LIMIT_MAX, ...(opts.product ? { product: opts.product } : {}), ...(branch ? { branch } : {}) } });
      io.print(list, () =>
        list.length
          ? table(
              ['PRODUCT', 'VERSION', 'KIND', 'BRANCH', 'PLATFORMS', 'SIZE', 'ADDED', 'ID'],
              list.map((p) => [p.product, p.version, p.kind, p.branch ?? '-', p.platforms.join(','), size(p.size), formatTime(p.createdAt), p.id]),
            )
          : 'the repository is empty\n',
      );
    },
  );

  act(repo.command('show').description('One package with its manifest, hash and signature').argument('<package>', 'id or PRODUCT@VERSION'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const p = await client.api.call(getPackage, { params: { id: await packageId(client, ref!) } });
    io.print(p, () =>
      keyValues([
        ['product', `${p.product} (${p.manifest.name})`],
        ['version', p.version],
        ['version scheme', p.manifest.versionScheme ?? 'semver'],
        ['kind', p.kind],
        ['branch', p.branch ?? '-'],
        ['platforms', p.platforms.join(', ')],
        ['size', size(p.size)],
        ['sha256', p.sha256],
        ['signature', p.signature],
        ['dependencies', (p.manifest.dependencies ?? []).map((d) => `${d.product}${d.minVersion ? ` >= ${d.minVersion}` : ''}`).join(', ') || '-'],
        ['conflicts', (p.manifest.conflicts ?? []).join(', ') || '-'],
        ['added', `${formatTime(p.createdAt)} by ${p.createdBy}`],
        ['id', p.id],
      ]),
    );
  });

  act(
    repo.command('promote').description('Move a package to a branch (into current: the old current becomes previous)').argument('<package>', 'id or PRODUCT@VERSION').requiredOption('--branch <branch>', 'current, previous, evaluation, or none'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const branch = branchOption(opts.branch, true)!;
      const p = await client.api.call(promotePackage, { params: { id: await packageId(client, ref!) }, body: { branch: branch === 'none' ? null : branch } });
      io.print(p, () => `${p.product} ${p.version} is now in ${p.branch ?? 'no branch'}\n`);
    },
  );

  act(repo.command('remove').description('Remove a package from the repository').argument('<package>', 'id or PRODUCT@VERSION'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const id = await packageId(client, ref!);
    await client.api.call(deletePackage, { params: { id } });
    io.print({ removed: id }, () => `removed package ${ref}\n`);
  });

  act(repo.command('key').description("The server's package-signing public key (PEM)"), state, async (io) => {
    const client = await io.client();
    const k = await client.api.call(getSigningKey, {});
    io.print(k, () => k.publicKey);
  });
}
