/**
 * Where package archives come from: the update sources of the agent's policy
 * (AgentPolicySettings.updateSources), tried in order, each with its own bandwidth limit.
 *
 *   server  this server's AGENT_PACKAGES_PATH, over the agent's authenticated, pinned channel
 *   url     an HTTP(S) mirror: `${url}/${packageId}` (a plain fetch: a mirror is not the server
 *           and gets no credential; the archive's integrity comes from the signature)
 *   folder  a folder, local or a mounted share: `${path}/${packageId}.tgz`
 *
 * A source that fails — cannot be reached, has no such archive, or hands over an archive that
 * does not verify — gives way to the next. Every archive, whatever its source, passes the same
 * verification (verifyPackage: the SHA-256 the server signed, the Ed25519 signature) before it
 * is used: a mirror cannot make the agent run anything the server did not sign.
 *
 * The bandwidth limit (KB/s, 1 KB = 1024 bytes) is applied by a throttling stream between the
 * source and the file: bytes pass at most at that rate, averaged from the start of the
 * download, in slices of a tenth of a second's worth so the rate stays even.
 */
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { FetchLike } from '@garrison/protocol/tls';
import { MAX_PACKAGE_BYTES, type UpdateSource } from '@garrison/protocol';
import { downloadPackage, PackageVerificationError } from './package-verify.ts';
import { limitStream } from './throttle.ts';

/** Package ids become URL paths and file names: nothing that could leave the folder or path. */
export function safePackageId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(id) && !id.includes('..');
}

export interface ServerChannel {
  url: string;
  credential: string;
  fetch: FetchLike;
}

/** Copies one source's archive to `dest`; throws PackageVerificationError('DOWNLOAD_FAILED') when it cannot. */
export async function fetchFromSource(source: UpdateSource, packageId: string, dest: string, server: ServerChannel, fetcher: FetchLike = fetch): Promise<void> {
  if (!safePackageId(packageId)) throw new PackageVerificationError('DOWNLOAD_FAILED', `package id ${JSON.stringify(packageId)} cannot name a file`);
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  // No archive the repository accepts is larger: a mirror streaming past it is stopped before it fills the disk.
  const limit = [...limitStream(source.bandwidthLimitKBps), capBytes(MAX_PACKAGE_BYTES)];
  if (source.kind === 'server') {
    await downloadPackage(server.url, server.credential, packageId, dest, server.fetch, source.bandwidthLimitKBps ?? null);
    return;
  }
  try {
    if (source.kind === 'url') {
      const url = `${source.url.replace(/\/+$/, '')}/${encodeURIComponent(packageId)}`;
      let res: Response;
      try {
        res = await fetcher(url, { signal: AbortSignal.timeout(30 * 60_000), redirect: 'follow' });
      } catch (err) {
        throw new PackageVerificationError('DOWNLOAD_FAILED', `mirror ${source.url}: ${(err as Error).message}`);
      }
      if (!res.ok || !res.body) throw new PackageVerificationError('DOWNLOAD_FAILED', `mirror ${source.url}: HTTP ${res.status} for package ${packageId}`);
      await pipeline([Readable.fromWeb(res.body as never), ...limit, createWriteStream(dest, { mode: 0o600 })]);
      return;
    }
    const file = path.join(source.path, `${packageId}.tgz`);
    await pipeline([createReadStream(file), ...limit, createWriteStream(dest, { mode: 0o600 })]).catch((err: Error) => {
      throw new PackageVerificationError('DOWNLOAD_FAILED', `folder ${source.path}: ${err.message}`);
    });
  } catch (err) {
    await rm(dest, { force: true });
    if (err instanceof PackageVerificationError) throw err;
    throw new PackageVerificationError('DOWNLOAD_FAILED', `${describeSource(source)}: ${(err as Error).message}`);
  }
}

/** A stream that fails once more than `max` bytes went through. */
function capBytes(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > max) done(new Error(`the archive is larger than ${max} bytes, the largest package the repository takes`));
      else done(null, chunk);
    },
  });
}

export function describeSource(s: UpdateSource): string {
  return s.kind === 'server' ? 'the server' : s.kind === 'url' ? `mirror ${s.url}` : `folder ${s.path}`;
}

/**
 * Tries each source in order until one's archive passes `verify`; throws when none did, with
 * every source's failure in the message, as a verification error when at least one source
 * handed over an archive that did not verify (tampering is what the report must show).
 */
export async function fetchVerified(
  sources: readonly UpdateSource[],
  packageId: string,
  dest: string,
  server: ServerChannel,
  verify: (file: string) => Promise<void>,
  opts: { fetcher?: FetchLike; onFailure?(source: UpdateSource, err: Error): void } = {},
): Promise<UpdateSource> {
  const list = sources.length ? sources : [{ kind: 'server' } as UpdateSource];
  const failures: string[] = [];
  let only = '';
  let refused: PackageVerificationError | null = null;
  for (const source of list) {
    try {
      await fetchFromSource(source, packageId, dest, server, opts.fetcher);
      await verify(dest);
      return source;
    } catch (err) {
      await rm(dest, { force: true });
      const e = err as Error;
      failures.push(`${describeSource(source)}: ${e.message}`);
      only = e.message;
      if (e instanceof PackageVerificationError && e.code !== 'DOWNLOAD_FAILED') refused ??= e;
      opts.onFailure?.(source, e);
    }
  }
  const message = list.length === 1 ? only : `no update source had a valid archive of package ${packageId}: ${failures.join('; ')}`;
  throw new PackageVerificationError(refused?.code ?? 'DOWNLOAD_FAILED', message);
}
