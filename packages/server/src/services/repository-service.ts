/**
 * The master repository: signed, versioned packages in branches current, previous and
 * evaluation. An archive is streamed to a temporary file while its SHA-256 is computed, its
 * manifest is read from inside it and validated, and the package is signed with the
 * server's key. Archives are stored by content hash in the database (`ArchiveStore`), so that
 * every instance on one database serves every package (issue 14), and under `DATA/repository/`
 * as this instance's cache of them.
 *
 * The cache: a reader (`localArchive`, `openArchive`) whose file is missing fetches it from the
 * database first, to a temporary file whose SHA-256 is checked before it is renamed into place;
 * concurrent readers of one archive share one fetch. An archive checked in before archives were
 * kept in the database (a file, no rows) is copied into the database by `syncLocalArchives` at
 * start, and lazily the first time this instance reads it, whichever comes first.
 *
 * Versions (docs/adr/0015-version-schemes.md): a package's version must parse under the
 * version scheme its manifest names (VERSION_INVALID otherwise), and all packages of a product
 * name the same scheme (VERSION_SCHEME_MISMATCH), because deployment orders the versions
 * devices report by that one scheme. Both are checked before anything is stored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import * as tar from 'tar';
import {
  MAX_PACKAGE_BYTES,
  PACKAGE_MANIFEST_FILE,
  PackageManifest,
  canonicalJson,
  checker,
  packageSigningPayload,
  type Branch,
  type RepositoryPackage,
} from '@garrison/protocol';
import { compareVersions, parseVersion, productVersionSchemes, versionSchemeOf } from '@garrison/core';
import { AppError } from '../errors.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import type { Page, PackageListQuery } from '@garrison/protocol';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { PackageStore } from '../storage/package-store.ts';
import type { ArchiveStore } from '../storage/archive-store.ts';
import { actorName, authorize, authorizeAnywhere, Permission, type Actor } from './actor.ts';
import type { GroupTree } from '@garrison/core';
import type { EventService } from './event-service.ts';
import type { SigningKey } from './signing.ts';
import type { DomainBus } from './domain-bus.ts';

const manifestChecker = checker(PackageManifest);
/**
 * Archives small enough are served from memory: when a new version reaches a fleet, every
 * device downloads the same bytes, and opening and reading the file per download cost the
 * server three times the CPU of sending it. Archives are stored by hash and never change, so
 * an entry is only dropped when its package is removed or the budget needs room.
 */
const CACHE_MAX_ARCHIVE_BYTES = 8 * 1024 * 1024;
const CACHE_BUDGET_BYTES = 64 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 256 * 1024;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Reads `garrison-package.json` from the root of a .tar.gz without extracting anything else. */
export async function readManifest(archive: string): Promise<unknown> {
  let text: string | null = null;
  let tooBig = false;
  try {
    await tar.t({
      file: archive,
      strict: true,
      filter: (p) => p.replace(/^\.\//, '') === PACKAGE_MANIFEST_FILE,
      onReadEntry: (entry) => {
        if (entry.size > MAX_MANIFEST_BYTES) {
          tooBig = true;
          entry.resume();
          return;
        }
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => (text = Buffer.concat(chunks).toString('utf8')));
      },
    });
  } catch (err) {
    throw new AppError('VALIDATION_FAILED', `the archive is not a readable .tar.gz: ${(err as Error).message}`);
  }
  if (tooBig) throw new AppError('VALIDATION_FAILED', `${PACKAGE_MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  if (text === null) throw new AppError('VALIDATION_FAILED', `the archive has no ${PACKAGE_MANIFEST_FILE} at its root`);
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('VALIDATION_FAILED', `${PACKAGE_MANIFEST_FILE} is not valid JSON`);
  }
}

export class RepositoryService {
  readonly #store: PackageStore;
  readonly #dir: string;
  readonly #key: SigningKey;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #tree: () => GroupTree;
  readonly #archives: ArchiveStore;
  readonly #cache = new Map<string, Buffer>();
  #cacheBytes = 0;
  /** Fetches from the database in progress, by SHA-256: concurrent readers share one. */
  readonly #fetching = new Map<string, Promise<string>>();
  /** Archives this instance knows are stored whole in the database (so a read checks once). */
  readonly #inDatabase = new Set<string>();
  /** Archives being checked in here: their file is in the cache before their package row exists. */
  readonly #adding = new Map<string, number>();
  /**
   * Called when a package enters a branch: deployments and "new content" triggers follow.
   * Awaited, so that once a check-in or promotion has answered, deployment plans know the
   * package. The other instances hear `repository.content` on the bus.
   */
  readonly #onContent: (pkg: RepositoryPackage) => Promise<void>;
  readonly #bus: DomainBus;

  constructor(deps: {
    store: PackageStore;
    archives?: ArchiveStore;
    dir: string;
    key: SigningKey;
    clock: Clock;
    events: EventService;
    tree: () => GroupTree;
    bus: DomainBus;
    onContent?: (pkg: RepositoryPackage) => Promise<void>;
  }) {
    this.#bus = deps.bus;
    this.#onContent = deps.onContent ?? (async () => {});
    this.#tree = deps.tree;
    this.#store = deps.store;
    this.#archives = deps.archives ?? deps.store.archives;
    this.#dir = deps.dir;
    this.#key = deps.key;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }
  get publicKeyPem(): string {
    return this.#key.publicKeyPem;
  }
  /** Where this instance caches an archive; the file may be missing: read through `localArchive`. */
  archivePath(sha256: string): string {
    return path.join(this.#dir, `${sha256}.tgz`);
  }
  /**
   * The path of an archive in this instance's cache, fetched from the database first when the
   * file is missing. NOT_FOUND when neither has it.
   */
  async localArchive(sha256: string): Promise<string> {
    const file = this.archivePath(sha256);
    if (await stat(file).catch(() => null)) {
      await this.#ensureInDatabase(sha256, file);
      return file;
    }
    let p = this.#fetching.get(sha256);
    if (!p) {
      p = this.#fetch(sha256, file).finally(() => this.#fetching.delete(sha256));
      this.#fetching.set(sha256, p);
    }
    return p;
  }
  async #fetch(sha256: string, file: string): Promise<string> {
    const found = await this.#archives.open(sha256);
    if (!found) throw new AppError('NOT_FOUND', `the archive ${sha256} is missing from the repository (neither in the database nor in ${this.#dir})`);
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.#dir, `.fetch-${newId()}`);
    try {
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        found.stream,
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            size += chunk.length;
            hash.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(tmp, { mode: 0o600 }),
      );
      const got = hash.digest('hex');
      if (got !== sha256 || size !== found.size) throw new AppError('INTERNAL', `the archive ${sha256} read from the database has SHA-256 ${got} (${size} bytes, not ${found.size}): refused; check the package in again`);
      await rename(tmp, file);
      this.#inDatabase.add(sha256);
      return file;
    } finally {
      await rm(tmp, { force: true });
    }
  }
  /**
   * An archive checked in before archives were kept in the database has a file and no rows:
   * the first read here copies it. A failure is reported and the read goes on from the file
   * (this instance can still serve it; the next read tries again).
   */
  async #ensureInDatabase(sha256: string, file: string): Promise<void> {
    if (this.#inDatabase.has(sha256)) return;
    try {
      if (await this.#archives.put(sha256, file)) {
        this.#events.record({ severity: 'info', kind: 'repository.archive-shared', message: `the archive ${sha256} (checked in before archives were kept in the database) was copied into the database`, data: { sha256 } });
      }
      this.#inDatabase.add(sha256);
    } catch (err) {
      this.#events.record({ severity: 'warning', kind: 'repository.archive-share-failed', message: `the archive ${sha256} could not be copied into the database: ${(err as Error).message}`, data: { sha256 } });
    }
  }
  /**
   * At start: copies into the database every archive this instance has as a file that the
   * database does not hold yet (checked in before archives were kept there), and removes the
   * cached files of archives no package names any more (removed through another instance).
   * Meant to run before the server listens; safe later too (check-ins in progress here are
   * left alone).
   */
  async syncLocalArchives(): Promise<{ copied: number; removed: number; failed: number }> {
    const wanted = new Set(await this.#store.shas());
    const stored = await this.#archives.stored();
    const files = (await readdir(this.#dir).catch(() => [] as string[])).filter((f) => /^[0-9a-f]{64}\.tgz$/.test(f));
    let copied = 0;
    let removed = 0;
    let failed = 0;
    for (const f of files) {
      const sha256 = f.slice(0, 64);
      if (this.#adding.has(sha256)) continue;
      if (!wanted.has(sha256)) {
        // Checked again right before: a package with these bytes may have arrived meanwhile.
        if ((await this.#store.countBySha(sha256)) === 0 && !this.#adding.has(sha256)) {
          await rm(path.join(this.#dir, f), { force: true });
          this.#uncache(sha256);
          removed++;
        }
        continue;
      }
      if (stored.has(sha256)) {
        this.#inDatabase.add(sha256);
        continue;
      }
      try {
        await this.#archives.put(sha256, path.join(this.#dir, f));
        this.#inDatabase.add(sha256);
        copied++;
      } catch (err) {
        failed++;
        this.#events.record({ severity: 'warning', kind: 'repository.archive-share-failed', message: `the archive ${sha256} could not be copied into the database: ${(err as Error).message}`, data: { sha256 } });
      }
    }
    if (copied) this.#events.record({ severity: 'info', kind: 'repository.archive-shared', message: `${copied} archive${copied === 1 ? '' : 's'} checked in before archives were kept in the database copied into it`, data: { copied } });
    return { copied, removed, failed };
  }
  async list(actor: Actor, filter: { product?: string; branch?: Branch | 'none' } = {}): Promise<RepositoryPackage[]> {
    authorizeAnywhere(actor, Permission.read, this.#tree());
    const list = await this.#store.list(filter);
    const schemes = productVersionSchemes(list);
    return list.sort((a, b) => (a.product === b.product ? compareVersions(b.version, a.version, schemes.get(a.product)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.product < b.product ? -1 : 1));
  }
  /**
   * A page of the list (by product, newest version first). The versions are ordered by each
   * product's scheme, which SQL cannot do, so the page is cut from the sorted list: the cursor
   * holds the last package's product, version and id, and the page goes on after it by the same
   * order even when that package was removed meanwhile.
   */
  async page(actor: Actor, q: PackageListQuery = {}): Promise<Page<RepositoryPackage>> {
    const list = await this.list(actor, { ...(q.product ? { product: q.product } : {}), ...(q.branch ? { branch: q.branch } : {}) });
    const after = decodeCursor(q.cursor, 3);
    if (after && !after.every((k) => typeof k === 'string')) {
      throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    }
    const limit = pageLimit(q);
    let start = 0;
    if (after) {
      const [product, version, id] = after as [string, string, string];
      const schemes = productVersionSchemes(list);
      // The first package that sorts after the cursor's: a later product, or an older version of it (then a greater id at an equal version).
      const firstAfter = list.findIndex((p) => {
        if (p.product !== product) return p.product > product;
        const c = compareVersions(p.version, version, schemes.get(p.product));
        return c < 0 || (c === 0 && p.id > id);
      });
      start = firstAfter < 0 ? list.length : firstAfter;
    }
    const items = list.slice(start, start + limit);
    const last = items[items.length - 1];
    return { items, nextCursor: start + limit < list.length && last ? encodeCursor([last.product, last.version, last.id]) : null, total: list.length };
  }
  async get(actor: Actor, id: string): Promise<RepositoryPackage> {
    authorizeAnywhere(actor, Permission.read, this.#tree());
    const p = await this.#store.get(id);
    if (!p) throw new AppError('NOT_FOUND', `package ${id} does not exist`);
    return p;
  }
  /** The newest package of a product in a branch: what a deployment installs. */
  async inBranch(product: string, branch: Branch): Promise<RepositoryPackage | undefined> {
    return (await this.#store.list({ product, branch }))[0];
  }

  async add(actor: Actor, body: Readable, branch: Branch | null): Promise<RepositoryPackage> {
    authorize(actor, Permission.manageRepository, this.#tree());
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.#dir, `.upload-${newId()}`);
    const hash = createHash('sha256');
    let size = 0;
    let adding: string | null = null;
    try {
      await pipeline(
        body,
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            size += chunk.length;
            if (size > MAX_PACKAGE_BYTES) return done(new AppError('PAYLOAD_TOO_LARGE', `a package is at most ${MAX_PACKAGE_BYTES} bytes`));
            hash.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(tmp, { mode: 0o600 }),
      );
      if (size === 0) throw new AppError('VALIDATION_FAILED', 'the body is empty: send the package archive (.tar.gz)');
      const manifest = await readManifest(tmp);
      if (!manifestChecker.check(manifest)) throw new AppError('VALIDATION_FAILED', `${PACKAGE_MANIFEST_FILE} does not match the package manifest schema`, { issues: manifestChecker.issues(manifest) });
      if (manifest.kind === 'definitions' && !manifest.contentFor) throw new AppError('VALIDATION_FAILED', 'a definitions package names the product it is for in "contentFor"');
      await this.#checkVersion(manifest);
      if (await this.#store.find(manifest.product, manifest.version)) throw new AppError('CONFLICT', `${manifest.product} ${manifest.version} is already in the repository`);
      const sha256 = hash.digest('hex');
      const signature = this.#key.sign(packageSigningPayload({ product: manifest.product, version: manifest.version, sha256, manifestSha256: sha256Hex(canonicalJson(manifest)) }));
      this.#adding.set(sha256, (this.#adding.get(sha256) ?? 0) + 1);
      adding = sha256;
      await rename(tmp, this.archivePath(sha256));
      // In the database before the package row: another instance may serve it as soon as the row is there.
      await this.#archives.put(sha256, this.archivePath(sha256)).catch(async (err: unknown) => {
        await this.#dropArchiveIfUnused(sha256, true);
        throw err;
      });
      this.#inDatabase.add(sha256);
      const pkg: RepositoryPackage = {
        id: newId(),
        product: manifest.product,
        version: manifest.version,
        kind: manifest.kind,
        platforms: manifest.platforms,
        branch,
        sha256,
        signature,
        size,
        manifest,
        createdAt: this.#clock.now().toISOString(),
        createdBy: actorName(actor),
      };
      const placed = await this.#store.placeInBranch(pkg, branch, true, versionSchemeOf(manifest)).catch(async (err: unknown) => {
        await this.#dropArchiveIfUnused(sha256, true);
        throw err;
      });
      if (placed.schemeMismatch) {
        // Another check-in of this product, with another scheme, got in first.
        await this.#dropArchiveIfUnused(sha256, true);
        throw schemeMismatch(manifest, versionSchemeOf(manifest), placed.schemeMismatch);
      }
      // Another instance removing the last package with these bytes between our store and our
      // row would have taken the rows with it (its delete checks for a package in the same
      // statement, but may have run just before our insert): store them again.
      if (!(await this.#archives.has(sha256))) await this.#archives.put(sha256, this.archivePath(sha256));
      await this.#events.audit(actor, 'repository.added', `${pkg.product} ${pkg.version} checked into ${branch ?? 'the repository (no branch)'}`, { product: pkg.product, data: { packageId: pkg.id, sha256, size } });
      if (branch) await this.#announce(pkg);
      return pkg;
    } finally {
      await rm(tmp, { force: true });
      if (adding) {
        const n = this.#adding.get(adding)! - 1;
        if (n) this.#adding.set(adding, n);
        else this.#adding.delete(adding);
      }
    }
  }
  /** The version parses under the manifest's scheme, and the scheme is the product's. */
  async #checkVersion(manifest: PackageManifest): Promise<void> {
    const scheme = versionSchemeOf(manifest);
    const parsed = parseVersion(manifest.version, scheme);
    if (!parsed.ok) {
      const hint = scheme === 'semver' && /[:~^]/.test(manifest.version) ? ' (a dpkg or rpm version? name it in "versionScheme")' : '';
      throw new AppError('VERSION_INVALID', `${manifest.product} ${manifest.version} is not a valid ${scheme} version: ${parsed.error}${hint}`, {
        product: manifest.product,
        version: manifest.version,
        versionScheme: scheme,
        reason: parsed.error,
      });
    }
    const stored = await this.#store.list({ product: manifest.product });
    // "1.2", "1.2.0" and "v1.2" are one version to deployment: a second spelling would make
    // "the newest" and a pin ambiguous.
    const same = stored.find((p) => p.version !== manifest.version && versionSchemeOf(p.manifest) === scheme && compareVersions(p.version, manifest.version, scheme) === 0);
    if (same) throw new AppError('CONFLICT', `${manifest.product} ${manifest.version} is the same version as ${same.version}, already in the repository`, { product: manifest.product, version: manifest.version, existing: same.version });
    const other = stored.find((p) => versionSchemeOf(p.manifest) !== scheme);
    if (other) throw schemeMismatch(manifest, scheme, versionSchemeOf(other.manifest), other.version);
  }
  /**
   * An archive no package names goes, from the database and this instance's cache, unless
   * another package has the same bytes. Other instances' cached copies are removed by their
   * `syncLocalArchives` (they never serve them: a read starts from the package row).
   */
  async #dropArchiveIfUnused(sha256: string, checkingIn = false): Promise<void> {
    if ((await this.#store.countBySha(sha256)) !== 0) return;
    // Another check-in of the same bytes on this instance has stored them and not yet its row.
    if ((this.#adding.get(sha256) ?? 0) > (checkingIn ? 1 : 0)) return;
    this.#uncache(sha256);
    if (await this.#archives.deleteUnlessUsed(sha256)) this.#inDatabase.delete(sha256);
    await rm(this.archivePath(sha256), { force: true });
  }
  async promote(actor: Actor, id: string, branch: Branch | null): Promise<RepositoryPackage> {
    authorize(actor, Permission.manageRepository, this.#tree());
    const pkg = await this.get(actor, id);
    await this.#store.placeInBranch(pkg, branch, false);
    await this.#events.audit(actor, 'repository.promoted', `${pkg.product} ${pkg.version} moved to ${branch ?? 'no branch'}`, { product: pkg.product, data: { packageId: id, from: pkg.branch, to: branch } });
    const moved = (await this.#store.get(id))!;
    if (branch) await this.#announce(moved);
    return moved;
  }
  async #announce(pkg: RepositoryPackage): Promise<void> {
    this.#bus.publish({ type: 'repository.content', product: pkg.product, version: pkg.version });
    await this.#onContent(pkg);
  }
  async remove(actor: Actor, id: string): Promise<void> {
    authorize(actor, Permission.manageRepository, this.#tree());
    const pkg = await this.get(actor, id);
    await this.#store.remove(id);
    this.#uncache(pkg.sha256);
    await this.#dropArchiveIfUnused(pkg.sha256);
    await this.#events.audit(actor, 'repository.removed', `${pkg.product} ${pkg.version} removed from the repository`, { product: pkg.product, data: { packageId: id } });
  }
  #uncache(sha256: string): void {
    const b = this.#cache.get(sha256);
    if (b) {
      this.#cacheBytes -= b.length;
      this.#cache.delete(sha256);
    }
  }
  /** The archive of a package for an agent's download: bytes from memory, or a file stream for large ones. */
  async openArchive(id: string): Promise<{ pkg: RepositoryPackage; body: Buffer | Readable; size: number }> {
    const pkg = await this.#store.get(id);
    if (!pkg) throw new AppError('NOT_FOUND', `package ${id} does not exist`);
    const cached = this.#cache.get(pkg.sha256);
    if (cached) return { pkg, body: cached, size: cached.length };
    const file = await this.localArchive(pkg.sha256).catch((err: unknown) => {
      if (err instanceof AppError && err.code === 'NOT_FOUND') throw new AppError('NOT_FOUND', `the archive of package ${id} is missing from the repository`);
      throw err;
    });
    const st = await stat(file).catch(() => null);
    if (!st) throw new AppError('NOT_FOUND', `the archive of package ${id} is missing from the repository`);
    if (st.size > CACHE_MAX_ARCHIVE_BYTES) return { pkg, body: createReadStream(file, { highWaterMark: 1024 * 1024 }), size: st.size };
    const bytes = await readFile(file);
    while (this.#cacheBytes + bytes.length > CACHE_BUDGET_BYTES && this.#cache.size) this.#uncache(this.#cache.keys().next().value!);
    this.#cache.set(pkg.sha256, bytes);
    this.#cacheBytes += bytes.length;
    return { pkg, body: bytes, size: bytes.length };
  }
}

function schemeMismatch(manifest: PackageManifest, scheme: string, theirs: string, theirVersion?: string): AppError {
  const where = theirVersion ? `${manifest.product} ${theirVersion} in the repository uses ${theirs}` : `${manifest.product} uses ${theirs} in the repository`;
  return new AppError('VERSION_SCHEME_MISMATCH', `${manifest.product} ${manifest.version} names version scheme ${scheme}, but ${where}: all packages of a product use one scheme`, {
    product: manifest.product,
    version: manifest.version,
    versionScheme: scheme,
    productVersionScheme: theirs,
  });
}
