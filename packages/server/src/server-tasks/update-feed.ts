/**
 * The signed update feed: how packages reach a Garrison server from outside it without a
 * server-to-server link (a folder on a share or removable disk, or any static HTTP(S) host).
 *
 * A feed is a folder holding:
 *
 *   index.json      { "format": "garrison.feed", "version": 1, "createdAt": ISO-8601,
 *                     "packages": [ { "product", "version", "file", "sha256", "size",
 *                                     "manifestSha256"? }, … ] }
 *   index.json.sig  the base64 Ed25519 signature over the exact bytes of index.json
 *   <file>…         the package archives (.tar.gz with garrison-package.json at the root)
 *
 * `file` is a name relative to the feed folder (sub-folders allowed, "." and ".." segments
 * not), `sha256` and `size` are the archive's, and `manifestSha256` (optional) is the SHA-256
 * of the canonical JSON of the manifest inside the archive, the same hash the repository's
 * package signature covers. Signing the bytes rather than a canonical form keeps the check
 * trivial to reproduce with any tool (`openssl pkeyutl -verify -rawin`); the cost is that the
 * index must be served byte for byte (no re-encoding proxies). One signature over the index
 * covers every archive through its hash, so archives need no signature of their own.
 *
 * What the signature does not cover is freshness: a replayed older index only offers older
 * packages, which the download skips as already present or lands outside the branches.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Type, type Static } from 'typebox';
import { MAX_PACKAGE_BYTES, PACKAGE_MANIFEST_FILE, PackageManifest, canonicalJson, checker } from '@garrison/protocol';
import { readManifest } from '../services/repository-service.ts';

export const FEED_FORMAT = 'garrison.feed';
export const FEED_VERSION = 1;
export const FEED_INDEX_FILE = 'index.json';
export const FEED_SIGNATURE_FILE = 'index.json.sig';
/** An index of 10 000 packages is about 2 MB; anything much larger is not a feed. */
export const MAX_FEED_INDEX_BYTES = 8 * 1024 * 1024;
export const MAX_FEED_PACKAGES = 10_000;

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
/**
 * Relative names only: every segment starts with a letter, digit or underscore, so "..",
 * ".", absolute paths, drive letters and backslashes cannot be written at all.
 */
export const FEED_FILE_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}){0,7}$';

export const FeedEntry = Type.Object(
  {
    product: PackageManifest.properties.product,
    version: PackageManifest.properties.version,
    file: Type.String({ pattern: FEED_FILE_PATTERN, maxLength: 1024 }),
    sha256: Sha256,
    size: Type.Integer({ minimum: 1, maximum: MAX_PACKAGE_BYTES }),
    manifestSha256: Type.Optional(Sha256),
  },
  { additionalProperties: false },
);
export type FeedEntry = Static<typeof FeedEntry>;
export const FeedIndex = Type.Object(
  {
    format: Type.Literal(FEED_FORMAT),
    version: Type.Literal(FEED_VERSION),
    createdAt: Type.String({ maxLength: 64 }),
    packages: Type.Array(FeedEntry, { maxItems: MAX_FEED_PACKAGES }),
  },
  // Unknown top-level fields are allowed so a later minor addition does not break older servers.
  { additionalProperties: true },
);
export type FeedIndex = Static<typeof FeedIndex>;
const indexChecker = checker(FeedIndex);
const manifestChecker = checker(PackageManifest);

export function manifestSha256(manifest: unknown): string {
  return createHash('sha256').update(canonicalJson(manifest)).digest('hex');
}

/** An Ed25519 public key from PEM, or an error that says what is wrong with it. */
export function ed25519PublicKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new Error(`${what} is not a readable public key (expected an Ed25519 public key in PEM, "-----BEGIN PUBLIC KEY-----")`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

/** Short form of a public key for output lines: the first 16 hex digits of the SHA-256 of its DER. */
export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/**
 * Checks the signature over the exact index bytes first, and only then parses them: nothing
 * of an unsigned index is looked at. Throws with a message that says what to fix.
 */
export function verifyFeedIndex(indexBytes: Buffer, signatureText: string, signer: KeyObject): FeedIndex {
  const sig = signatureText.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) throw new Error(`${FEED_SIGNATURE_FILE} is not a base64 signature`);
  let ok = false;
  try {
    ok = verify(null, indexBytes, signer, Buffer.from(sig, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`the signature in ${FEED_SIGNATURE_FILE} does not verify with the configured public key: the index was altered or signed with another key`);
  let index: unknown;
  try {
    index = JSON.parse(indexBytes.toString('utf8'));
  } catch {
    throw new Error(`${FEED_INDEX_FILE} is signed but is not valid JSON`);
  }
  if (!indexChecker.check(index)) {
    const issues = indexChecker.issues(index, 3).map((i) => `${i.path}: ${i.message}`).join('; ');
    throw new Error(`${FEED_INDEX_FILE} is not a ${FEED_FORMAT} version ${FEED_VERSION} index (${issues})`);
  }
  const seen = new Set<string>();
  for (const e of index.packages) {
    const k = `${e.product} ${e.version}`;
    if (seen.has(k)) throw new Error(`${FEED_INDEX_FILE} lists ${k} twice`);
    seen.add(k);
  }
  return index;
}

export function signFeedIndex(indexBytes: Buffer, privateKeyPem: string): string {
  return sign(null, indexBytes, privateKeyPem).toString('base64');
}

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/**
 * Writes a feed into `dir` (created if needed): each archive is copied in as
 * `<product>-<version>.tgz`, then index.json and its signature are written. The index lists
 * exactly the given archives; to grow a feed, build it again with all of them.
 */
export async function buildFeed(dir: string, privateKeyPem: string, archives: string[], opts: { createdAt?: Date } = {}): Promise<FeedIndex> {
  await mkdir(dir, { recursive: true });
  const packages: FeedEntry[] = [];
  for (const archive of archives) {
    const m = await readManifest(archive);
    if (!manifestChecker.check(m)) throw new Error(`${archive}: ${PACKAGE_MANIFEST_FILE} does not match the package manifest schema`);
    const { size } = await stat(archive);
    if (size > MAX_PACKAGE_BYTES) throw new Error(`${archive}: a package is at most ${MAX_PACKAGE_BYTES} bytes`);
    if (packages.some((p) => p.product === m.product && p.version === m.version)) throw new Error(`${m.product} ${m.version} is given twice`);
    // Versions may hold ":", "~" and "^" (dpkg, rpm), which file names in a feed do not: they
    // become "_", with a number added should two versions then share a name.
    const base = `${m.product}-${m.version.replace(/[^A-Za-z0-9._+-]/g, '_')}`;
    let file = `${base}.tgz`;
    for (let n = 2; packages.some((p) => p.file === file); n++) file = `${base}-${n}.tgz`;
    if (path.resolve(archive) !== path.resolve(dir, file)) await copyFile(archive, path.join(dir, file));
    packages.push({ product: m.product, version: m.version, file, sha256: await fileSha256(archive), size, manifestSha256: manifestSha256(m) });
  }
  const index: FeedIndex = { format: FEED_FORMAT, version: FEED_VERSION, createdAt: (opts.createdAt ?? new Date()).toISOString(), packages };
  const bytes = Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8');
  await writeFile(path.join(dir, FEED_INDEX_FILE), bytes);
  await writeFile(path.join(dir, FEED_SIGNATURE_FILE), signFeedIndex(bytes, privateKeyPem) + '\n');
  return index;
}
