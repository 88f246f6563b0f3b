/**
 * Before anything of a package runs on the device: its archive is downloaded over the
 * agent's authenticated channel, its SHA-256 must equal the one the server signed, the
 * Ed25519 signature must verify with the server's key received at enrolment, and the
 * manifest inside the archive must be the signed one. Extraction refuses absolute paths and
 * `..` (node-tar's defaults) and links pointing out of the folder.
 */
import type { FetchLike } from '@garrison/protocol/tls';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { limitStream } from './throttle.ts';
import { AGENT_PACKAGES_PATH, PACKAGE_MANIFEST_FILE, canonicalJson, packageSigningPayload, type DeploymentPackageRef } from '@garrison/protocol';

export class PackageVerificationError extends Error {
  readonly code: 'HASH_MISMATCH' | 'SIGNATURE_INVALID' | 'MANIFEST_MISMATCH' | 'DOWNLOAD_FAILED';
  constructor(code: PackageVerificationError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** What the server signed: the package reference a deployment instruction carries. */
export type SignedPackage = DeploymentPackageRef;

/** `bandwidthLimitKBps`: the server update source's limit (update-sources.ts), none by default. */
export async function downloadPackage(serverUrl: string, credential: string, id: string, dest: string, fetcher: FetchLike, bandwidthLimitKBps: number | null = null): Promise<void> {
  let res: Response;
  try {
    res = await fetcher(`${serverUrl.replace(/\/+$/, '')}${AGENT_PACKAGES_PATH}/${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${credential}` },
      signal: AbortSignal.timeout(30 * 60_000),
    });
  } catch (err) {
    throw new PackageVerificationError('DOWNLOAD_FAILED', `download of package ${id} failed: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) throw new PackageVerificationError('DOWNLOAD_FAILED', `download of package ${id} failed: HTTP ${res.status}`);
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  await pipeline([Readable.fromWeb(res.body as never), ...limitStream(bandwidthLimitKBps), createWriteStream(dest, { mode: 0o600 })]);
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** Throws PackageVerificationError unless the archive is exactly the package the server signed. */
export async function verifyPackage(archive: string, pkg: SignedPackage, publicKeyPem: string): Promise<void> {
  verifySignedHash(await fileSha256(archive), pkg, publicKeyPem);
}

/**
 * The checks on an archive's SHA-256, however it was computed (from a file, or from bytes as
 * they arrived): it must be the signed one, and the Ed25519 signature over the signing
 * payload must verify with the server's key.
 */
export function verifySignedHash(actual: string, pkg: SignedPackage, publicKeyPem: string): void {
  if (actual !== pkg.sha256) throw new PackageVerificationError('HASH_MISMATCH', `${pkg.product} ${pkg.version}: archive SHA-256 ${actual} is not the signed ${pkg.sha256}`);
  const manifestSha256 = createHash('sha256').update(canonicalJson(pkg.manifest)).digest('hex');
  const payload = packageSigningPayload({ product: pkg.product, version: pkg.version, sha256: pkg.sha256, manifestSha256 });
  let ok = false;
  try {
    ok = verify(null, Buffer.from(payload, 'utf8'), createPublicKey(publicKeyPem), Buffer.from(pkg.signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok || pkg.manifest.product !== pkg.product || pkg.manifest.version !== pkg.version) {
    throw new PackageVerificationError('SIGNATURE_INVALID', `${pkg.product} ${pkg.version}: the signature does not verify with this server's key`);
  }
}

/** Extracts a verified archive and checks that the manifest inside is the signed one. */
export async function extractPackage(archive: string, dir: string, pkg: SignedPackage): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await tar.x({
    file: archive,
    cwd: dir,
    strict: true,
    // Links may not point outside the folder; absolute paths and ".." are refused by node-tar.
    filter: (p, entry) => {
      const e = entry as { type?: string; linkpath?: string };
      if ((e.type === 'SymbolicLink' || e.type === 'Link') && e.linkpath) {
        const target = path.resolve(dir, path.dirname(p), e.linkpath);
        return target === dir || target.startsWith(dir + path.sep);
      }
      return true;
    },
  });
  const inside = JSON.parse(await readFile(path.join(dir, PACKAGE_MANIFEST_FILE), 'utf8')) as unknown;
  if (canonicalJson(inside) !== canonicalJson(pkg.manifest)) {
    throw new PackageVerificationError('MANIFEST_MISMATCH', `${pkg.product} ${pkg.version}: the manifest inside the archive is not the signed one`);
  }
}
