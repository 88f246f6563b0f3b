/**
 * Server task "installation-package" (issue 6): an offline installer bundle for a group, as
 * Kaspersky's stand-alone installation packages and ePO's agent packages are. One .tar.gz
 * holds, in one folder:
 *
 *   install.sh | install.ps1   the installer link's script (same service, same flags and
 *                              environment) with the agent and token taken from this folder
 *   garrison-agent[.exe]       the single-executable agent, checked against its SHA-256
 *   enrolment-token            a token made for this bundle (0600; its value is nowhere else)
 *   ca.crt, ca.fingerprint     the server's CA, which the agent pins
 *   bundle.json                server URL, group, fingerprints, the signing public key, the
 *                              agent and the packages with their SHA-256 and signatures
 *   packages/<sha256>.tgz|json the archives a new device of the group would install now,
 *                              with their signed references
 *
 * Installing enrols with the server (a token's use is counted there) and hands the packages to
 * the agent's offline folder; the server still plans what the device installs, and the agent
 * takes a planned package from that folder instead of downloading it, verified exactly like a
 * download (SHA-256 and the server's Ed25519 signature). A package the repository no longer
 * plans (a newer version arrived) is simply downloaded: the bundle is a cache, never an
 * authority.
 *
 * The bundle carries a live credential (the token): it expires (30 days by default), may be
 * limited in uses, and is revoked when the bundle is deleted (over the API or by `keep`).
 * Several instances on one database (issue 14): bundles are indexed in the database
 * (`installation_packages`, InstallationPackageStore) and their bytes are stored with the
 * repository's archives by SHA-256, so that any instance lists, serves and deletes a bundle
 * whichever instance made it. The file in the task's folder stays, on the disk of the instance
 * that made it, and is served from there when it is there; elsewhere the bytes come from the
 * database. The name is reserved in the index before the file is written, so two instances
 * never give two bundles one name. Bundles indexed before, as JSON files in
 * `<dataDir>/installation-packages`, are imported on the instance that has them the first time
 * it lists or looks one up (syncLocalInstallationPackages), their bytes with them.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, link, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { Type, type Static } from 'typebox';
import { BUILTIN_PRODUCT, INSTALL_PLATFORMS, type InstallPlatform, type RepositoryPackage } from '@garrison/protocol';
import { planDeployment } from '@garrison/core';
import { systemActor } from '../services/actor.ts';
import { offlineInstallScript } from '../services/installer-service.ts';
import type { InstallationPackageInfo } from '../storage/installation-package-store.ts';
import { defineServerTaskType, throwIfStopped, type ServerTaskEnvironment } from './server-task.ts';

export type { InstallationPackageInfo } from '../storage/installation-package-store.ts';

export const INSTALLATION_PACKAGES_DIR = 'installation-packages';
export const BUNDLE_FORMAT = 'garrison.installation-package';
/** A bundle's file name: `garrison-agent-<group>-<platform>-<yyyymmdd>-<hhmmss>[-n].tar.gz`. */
export const BUNDLE_NAME = /^garrison-agent-[a-z0-9][a-z0-9-]{0,100}-\d{8}-\d{6}(-\d{1,3})?\.tar\.gz$/;
/**
 * gzip level 1: the agent executable (about 125 MB, mostly the Node binary) packs to 46.8 MB
 * in 2.6 s of a core; level 4 gives 44.1 MB in 5.3 s, level 6 43.0 MB in 9 s (node:zlib on
 * the 2-core test machine). 8% more bytes to copy is cheaper than three times the CPU taken
 * from a server that also serves its agents.
 */
const GZIP_LEVEL = 1;
const HOST_PREFIX: Record<InstallPlatform, string> = { linux: 'linux-', macos: 'darwin-', windows: 'win32-' };

const Settings = Type.Object(
  {
    groupId: Type.String({ minLength: 1, maxLength: 100, description: 'The group the devices enrol into' }),
    platform: Type.Union(
      INSTALL_PLATFORMS.map((p) => Type.Literal(p)),
      { description: 'The server builds the agent for its own platform only' },
    ),
    includeProducts: Type.Optional(Type.Boolean({ default: true, description: "The packages the group's deployments would install on a new device now" })),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, default: 30, description: "Days the bundle's enrolment token enrols devices" })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Devices the bundle may enrol (default: unlimited until it expires)' })),
    folder: Type.Optional(Type.String({ minLength: 2, maxLength: 1024, description: `An absolute folder on the server (default: <data folder>/${INSTALLATION_PACKAGES_DIR})` })),
    keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "Bundles of this task kept; older ones are deleted and their tokens revoked (default: all kept)" })),
    serverUrl: Type.Optional(Type.String({ pattern: '^https://[A-Za-z0-9.\\-\\[\\]:]+$', description: 'The address devices reach this server at (default: its public URL)' })),
  },
  { additionalProperties: false },
);
export type InstallationPackageSettings = Static<typeof Settings>;

/** What listing, serving and deleting bundles needs: the shared index, the shared bytes, and this instance's folder (JSON index of old). */
export type InstallationPackageIndex = Pick<ServerTaskEnvironment, 'installationPackages' | 'archives' | 'dataDir'>;

/** The folder of the JSON index of old, and the default folder of the bundles themselves. */
const indexDir = (dataDir: string) => path.join(dataDir, INSTALLATION_PACKAGES_DIR);
/** Reservations older than this were left by a run that crashed (no run packs for a day). */
const RESERVATION_MS = 24 * 3600_000;

/**
 * What this instance's data folder holds that the shared index does not know yet, or no longer:
 * - a bundle indexed as `<name>.json` before the index moved into the database: its bytes
 *   are stored in the database (when its file is still here), then its row (insert-if-absent:
 *   two requests importing at once are harmless), then the JSON file goes. Bytes first, so
 *   that no row is listed that another instance cannot serve; a file that is gone is imported
 *   all the same (listed as not available) so that its token can still be revoked by deleting.
 * - a bundle file in the default folder whose name has no row: its bundle was deleted through
 *   another instance, which could not reach this disk. A name is reserved before its file is
 *   written and its row is deleted before its file, so a file without a row is never one
 *   being made.
 * Called before each list and look-up: a directory read when there is nothing to do.
 */
export async function syncLocalInstallationPackages(env: InstallationPackageIndex): Promise<{ imported: number; removed: number }> {
  const dir = indexDir(env.dataDir);
  const entries = await readdir(dir).catch(() => [] as string[]);
  let imported = 0;
  let removed = 0;
  for (const n of entries.filter((e) => e.endsWith('.json') && BUNDLE_NAME.test(e.slice(0, -5)))) {
    const info = await readFile(path.join(dir, n), 'utf8').then((t) => JSON.parse(t) as InstallationPackageInfo, () => null);
    if (!info || info.name !== n.slice(0, -5)) continue;
    if (await stat(info.file).then((st) => st.isFile(), () => false)) await env.archives.put(info.sha256, info.file);
    if (await env.installationPackages.putIfAbsent(info)) imported++;
    await rm(path.join(dir, n), { force: true });
  }
  const bundles = entries.filter((e) => BUNDLE_NAME.test(e));
  if (bundles.length) {
    const taken = await env.installationPackages.names();
    for (const f of bundles) {
      if (taken.has(f)) continue;
      await rm(path.join(dir, f), { force: true });
      removed++;
    }
  }
  return { imported, removed };
}

/** The bundles the index knows, newest first. */
export async function listInstallationPackages(env: InstallationPackageIndex): Promise<InstallationPackageInfo[]> {
  await syncLocalInstallationPackages(env);
  return env.installationPackages.list();
}

/** One bundle by file name; null for a name that is not a bundle's (so no path ever comes from the caller). */
export async function findInstallationPackage(env: InstallationPackageIndex, name: string): Promise<InstallationPackageInfo | null> {
  if (!BUNDLE_NAME.test(name)) return null;
  await syncLocalInstallationPackages(env);
  return env.installationPackages.find(name);
}

/** Whether this instance can serve the bundle: its file here, or its bytes in the database. */
export async function installationPackageAvailable(env: InstallationPackageIndex, info: InstallationPackageInfo): Promise<boolean> {
  return (await localCopy(info)) || env.archives.has(info.sha256);
}

const localCopy = (info: InstallationPackageInfo) => stat(info.file).then((st) => st.isFile() && st.size === info.size, () => false);

/**
 * The bundle's bytes: the file when this instance has it (the instance that made it), else
 * from the database, checked against the bundle's SHA-256 as they stream (a damaged row fails
 * the download rather than serving other bytes). Null when neither is there.
 */
export async function openInstallationPackage(env: InstallationPackageIndex, info: InstallationPackageInfo): Promise<{ size: number; stream: Readable } | null> {
  if (await localCopy(info)) return { size: info.size, stream: createReadStream(info.file) };
  const stored = await env.archives.open(info.sha256);
  if (!stored) return null;
  const h = createHash('sha256');
  const check = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const got = h.digest('hex');
      done(got === info.sha256 ? null : new Error(`the stored bytes of installation package ${info.name} have SHA-256 ${got}, not ${info.sha256}`));
    },
  });
  stored.stream.on('error', (err) => check.destroy(err));
  return { size: stored.size, stream: stored.stream.pipe(check) };
}

/**
 * Deletes a bundle and revokes its token (a bundle gone is a credential no one should still
 * hold): the token first, so that a failure after it leaves a listed bundle whose token is
 * already revoked, and deleting again finishes. Then the row, the bytes in the database
 * (unless another bundle or a repository package has the same SHA-256), and the file when it
 * is on this instance's disk; a file on another instance's disk goes at that instance's next
 * sync (syncLocalInstallationPackages), when it is in that instance's default folder.
 */
export async function removeInstallationPackage(env: InstallationPackageIndex & Pick<ServerTaskEnvironment, 'enrolment'>, info: InstallationPackageInfo): Promise<void> {
  await env.enrolment.revokeToken(systemActor, info.tokenId).catch((err: unknown) => {
    if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
  });
  await env.installationPackages.delete(info.name);
  if ((await env.installationPackages.countBySha(info.sha256)) === 0) await env.archives.deleteUnlessUsed(info.sha256);
  await rm(info.file, { force: true });
  // An index file of old that a sync has not imported yet would bring the bundle back.
  await rm(path.join(indexDir(env.dataDir), `${info.name}.json`), { force: true });
}

function withDefaults(s: InstallationPackageSettings, dataDir: string) {
  return {
    ...s,
    includeProducts: s.includeProducts ?? true,
    expiresInDays: s.expiresInDays ?? 30,
    maxUses: s.maxUses ?? null,
    folder: s.folder ?? path.join(dataDir, INSTALLATION_PACKAGES_DIR),
    keep: s.keep ?? null,
  };
}

function problems(s: InstallationPackageSettings, env: Pick<ServerTaskEnvironment, 'catalog'>): string[] {
  const out: string[] = [];
  if (!env.catalog.group(s.groupId)) out.push(`group ${s.groupId} does not exist: choose the group the devices should enrol into`);
  if (s.folder !== undefined && (!path.isAbsolute(s.folder) || path.resolve(s.folder) === path.parse(path.resolve(s.folder)).root)) {
    out.push(`folder "${s.folder}" must be an absolute path below the file system's root`);
  }
  return out;
}

const slug = (text: string) =>
  text
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

/** Copies a file while hashing it; the copy is refused unless its SHA-256 is the expected one. */
async function copyVerified(from: string, to: string, sha256: string): Promise<number> {
  const h = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(from),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        h.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    }),
    createWriteStream(to, { mode: 0o644 }),
  );
  const got = h.digest('hex');
  if (got !== sha256) throw new Error(`${from} has SHA-256 ${got}, not the signed ${sha256}: the repository's copy is damaged; check the package in again`);
  return size;
}

export const installationPackageTaskType = defineServerTaskType<InstallationPackageSettings>({
  type: 'installation-package',
  name: 'Create installation package',
  description:
    "An offline agent bundle for a group: the agent, a new enrolment token, the server's CA and the group's products, with an install script that installs and enrols without downloading anything.",
  settingsSchema: Settings,
  validate: (settings, env) => problems(settings, env),

  async run(input, ctx) {
    const s = withDefaults(input, ctx.dataDir);
    const bad = problems(input, ctx);
    if (bad.length) throw new Error(bad.join('; '));
    const tls = ctx.trust;
    if (!tls) throw new Error('installation packages need the server to serve TLS itself (the agent pins its CA); this server runs with --http behind a proxy');
    const serverUrl = (s.serverUrl ?? ctx.publicUrl()).replace(/\/+$/, '');
    if (!serverUrl.startsWith('https://')) throw new Error(`the server URL ${serverUrl} is not https://: set "serverUrl" to the address devices reach this server at`);
    const groupPath = ctx.catalog.tree.path(s.groupId);

    // 1. The agent: only the server's own platform can be built.
    const host = (await ctx.agentBuilds.platforms())[0]!;
    if (!host.startsWith(HOST_PREFIX[s.platform])) {
      throw new Error(`AGENT_BUILD_UNAVAILABLE: this server builds the agent for ${host} only (it runs there); a ${s.platform} installation package needs a server running on ${s.platform}`);
    }
    ctx.progress(5, `building the ${host} agent`);
    const build = await ctx.agentBuilds.get(host);
    ctx.output(`agent ${build.version} for ${host} (${mb(build.size)}, SHA-256 ${build.sha256})`);
    throwIfStopped(ctx.signal);

    // 2. What a new device of the group would install now (the agent itself counts as installed).
    const warnings: string[] = [];
    let packages: RepositoryPackage[] = [];
    if (s.includeProducts) {
      const [os, arch] = host.split('-') as [string, string];
      const assignments = ctx.deployments.effective(systemActor, s.groupId);
      const byId = new Map((await ctx.repository.list(systemActor)).map((p) => [p.id, p]));
      const plan = planDeployment({
        assignments: assignments.map((a) => ({ groupId: a.groupId, product: a.product, branch: a.branch, pinnedVersion: a.pinnedVersion, action: a.action, removeConflicts: a.removeConflicts, inheritedFrom: a.inheritedFrom })),
        installed: [{ id: BUILTIN_PRODUCT, version: build.version }],
        packages: [...byId.values()],
        platform: os,
        arch,
      });
      for (const p of plan.products) if (p.state === 'unavailable') warnings.push(`${p.product} is not included: ${p.detail ?? `no package for ${host}`}`);
      packages = plan.steps.flatMap((step) => (step.action === 'install' && byId.has(step.package.id) ? [byId.get(step.package.id)!] : []));
      if (!assignments.length) ctx.output(`no products are assigned to "${groupPath}" or above it: the bundle holds the agent only`);
    }

    // 3. Stage the bundle's folder next to where the bundle goes (same file system for the rename).
    await mkdir(s.folder, { recursive: true, mode: 0o700 });
    const group = s.groupId === ctx.catalog.tree.roots()[0]?.id ? groupPath : groupPath.split('/').slice(1).join('/');
    const now = ctx.clock.now();
    const base = `garrison-agent-${slug(group) || s.groupId.slice(0, 8).toLowerCase()}-${host}-${stamp(now)}`;
    // The name is taken in the shared index (insert-if-absent), so that another instance making a
    // bundle for the group in the same second takes the next one; a file of that name in the folder
    // (another server's, or one of old) is skipped too.
    await ctx.installationPackages.deleteReservationsBefore(new Date(now.getTime() - RESERVATION_MS).toISOString());
    let name = '';
    for (let n = 1; !name; n++) {
      if (n > 999) throw new Error(`no free name for a bundle ${base}[-n].tar.gz: delete some of this group's bundles`);
      const candidate = n === 1 ? `${base}.tar.gz` : `${base}-${n}.tar.gz`;
      if (await stat(path.join(s.folder, candidate)).catch(() => null)) continue;
      if (await ctx.installationPackages.reserve(candidate, s.groupId, now.toISOString())) name = candidate;
    }
    const folderName = name.slice(0, -'.tar.gz'.length);
    const staging = path.join(s.folder, `.staging-${ctx.runId}`);
    const dir = path.join(staging, folderName);
    const part = path.join(s.folder, `.${name}.part`);
    const file = path.join(s.folder, name);
    let token: { id: string; expiresAt: string | null } | null = null;
    let listed = false;
    let storedSha: string | null = null;
    try {
      await rm(staging, { recursive: true, force: true });
      await mkdir(path.join(dir, 'packages'), { recursive: true, mode: 0o755 });
      const exe = path.join(dir, s.platform === 'windows' ? 'garrison-agent.exe' : 'garrison-agent');
      // A hard link when the build folder shares the file system: no 125 MB copy.
      await link(build.file, exe).catch(() => copyFile(build.file, exe));
      await chmod(exe, 0o755);

      const products: InstallationPackageInfo['products'] = [];
      for (const [i, p] of packages.entries()) {
        throwIfStopped(ctx.signal);
        ctx.progress(40 + Math.floor((30 * i) / packages.length), `copying ${p.product} ${p.version}`);
        // From this instance's cache, fetched from the database when another instance checked it in.
        const from = await ctx.repository.localArchive(p.sha256).catch((err: unknown) => {
          throw new Error(`the archive of ${p.product} ${p.version} is missing from the repository (${(err as Error).message}): check the package in again`);
        });
        // Read from the file, not through the repository's download cache.
        const size = await copyVerified(from, path.join(dir, 'packages', `${p.sha256}.tgz`), p.sha256);
        const ref = { id: p.id, product: p.product, version: p.version, sha256: p.sha256, signature: p.signature, manifest: p.manifest };
        await writeFile(path.join(dir, 'packages', `${p.sha256}.json`), JSON.stringify(ref, null, 2) + '\n', { mode: 0o644 });
        products.push({ product: p.product, version: p.version, sha256: p.sha256, size });
        ctx.output(`product ${p.product} ${p.version} (${mb(size)}, SHA-256 ${p.sha256})`);
      }
      throwIfStopped(ctx.signal);

      // 4. The token last, once nothing expensive can fail: a failed run revokes it below.
      ctx.progress(70, 'creating the enrolment token');
      const t = await ctx.enrolment.createToken(systemActor, {
        groupId: s.groupId,
        name: `installation package "${ctx.taskName}" (${name})`,
        expiresInMinutes: s.expiresInDays * 24 * 60,
        ...(s.maxUses ? { maxUses: s.maxUses } : {}),
      });
      token = { id: t.id, expiresAt: t.expiresAt };
      await writeFile(path.join(dir, 'enrolment-token'), `${t.token}\n`, { mode: 0o600 });
      await chmod(path.join(dir, 'enrolment-token'), 0o600);
      ctx.output(`enrolment token ${t.id} created for "${groupPath}": expires ${t.expiresAt}, ${s.maxUses ? `at most ${s.maxUses} devices` : 'no use limit'}`);

      const script = s.platform === 'windows' ? 'install.ps1' : 'install.sh';
      await writeFile(path.join(dir, script), offlineInstallScript(s.platform, { serverUrl, groupPath, tls, build }), { mode: 0o755 });
      await writeFile(path.join(dir, 'ca.crt'), tls.caPem.trim() + '\n', { mode: 0o644 });
      await writeFile(path.join(dir, 'ca.fingerprint'), tls.caFingerprint + '\n', { mode: 0o644 });
      const manifest = {
        format: BUNDLE_FORMAT,
        version: 1,
        createdAt: ctx.clock.now().toISOString(),
        serverUrl,
        group: { id: s.groupId, path: groupPath },
        platform: host,
        caFingerprint: tls.caFingerprint,
        certFingerprint: tls.certFingerprint,
        signingPublicKey: ctx.repository.publicKeyPem,
        agent: { version: build.version, file: path.basename(exe), sha256: build.sha256, size: build.size },
        enrolmentToken: { id: t.id, file: 'enrolment-token', expiresAt: t.expiresAt, maxUses: s.maxUses },
        installScript: script,
        packages: packages.map((p) => ({ id: p.id, product: p.product, version: p.version, file: `packages/${p.sha256}.tgz`, sha256: p.sha256, size: p.size, signature: p.signature, manifest: p.manifest })),
      };
      await writeFile(path.join(dir, 'bundle.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o644 });
      const run = s.platform === 'windows' ? 'powershell -ExecutionPolicy Bypass -File install.ps1 (as Administrator)' : 'sudo sh install.sh';
      await writeFile(
        path.join(dir, 'README.txt'),
        `Garrison agent for "${groupPath}" (${host}), server ${serverUrl}\n\n` +
          `Install: extract this folder on the machine, then run ${run} in it.\n` +
          `It installs the agent as a service, enrols the machine into the group and hands the\n` +
          `group's products to the agent, which verifies each before installing it. Nothing is\n` +
          `downloaded; the server must be reachable to enrol.\n\n` +
          `The file enrolment-token enrols devices until ${t.expiresAt}${s.maxUses ? ` (at most ${s.maxUses})` : ''}: keep this bundle private.\n`,
        { mode: 0o644 },
      );

      // 5. Pack (to a .part file renamed when complete) while hashing what is written.
      ctx.progress(75, 'compressing');
      const h = createHash('sha256');
      let size = 0;
      await pipeline(
        tar.c({ gzip: { level: GZIP_LEVEL }, cwd: staging, portable: true }, [folderName]),
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            h.update(chunk);
            size += chunk.length;
            done(null, chunk);
          },
        }),
        createWriteStream(part, { mode: 0o600 }),
        { signal: ctx.signal },
      );
      await rename(part, file);
      const info: InstallationPackageInfo = {
        name,
        file,
        size,
        sha256: h.digest('hex'),
        createdAt: manifest.createdAt,
        taskId: ctx.taskId,
        runId: ctx.runId,
        groupId: s.groupId,
        groupPath,
        platform: host,
        serverUrl,
        agentVersion: build.version,
        tokenId: t.id,
        tokenExpiresAt: t.expiresAt,
        maxUses: s.maxUses,
        products,
      };
      ctx.output(`wrote ${file} (${mb(size)}, SHA-256 ${info.sha256})`);
      // The bytes before the row, so that a bundle listed anywhere can be downloaded anywhere.
      ctx.progress(85, 'storing the bundle in the database');
      storedSha = info.sha256;
      await ctx.archives.put(info.sha256, file);
      throwIfStopped(ctx.signal);
      await ctx.installationPackages.put(info);
      // From here the bundle exists: nothing below undoes it.
      listed = true;

      // 6. Older bundles of this task beyond `keep`.
      const removed: string[] = [];
      if (s.keep) {
        ctx.progress(95, 'removing older bundles');
        const older = await listInstallationPackages(ctx).then(
          (all) => all.filter((b) => b.taskId === ctx.taskId).slice(s.keep!),
          (err: unknown) => {
            warnings.push(`could not list the older bundles to remove: ${(err as Error).message}`);
            return [];
          },
        );
        for (const b of older) {
          try {
            await removeInstallationPackage(ctx, b);
            removed.push(b.name);
            ctx.output(`removed ${b.name} and revoked its enrolment token ${b.tokenId}`);
          } catch (err) {
            warnings.push(`could not remove ${b.name}: ${(err as Error).message}`);
          }
        }
      }
      ctx.progress(100);
      return {
        summary: `${name} (${mb(size)}) for "${groupPath}" on ${host}: the agent ${build.version} and ${products.length} product package${products.length === 1 ? '' : 's'}; its token expires ${t.expiresAt}`,
        ...(warnings.length ? { warnings } : {}),
        data: {
          file,
          name,
          size,
          sha256: info.sha256,
          download: `/api/v1/installation-packages/${name}`,
          groupId: s.groupId,
          groupPath,
          platform: host,
          agentVersion: build.version,
          tokenId: t.id,
          tokenExpiresAt: t.expiresAt,
          maxUses: s.maxUses,
          products: products.map((p) => ({ product: p.product, version: p.version, size: p.size })),
          removed,
        },
      };
    } catch (err) {
      if (listed) throw err;
      await rm(part, { force: true });
      await rm(file, { force: true });
      // The name's reservation, and the bytes when they were stored (a bundle's SHA-256 is its own: it holds a new token).
      await ctx.installationPackages.delete(name).catch((e: unknown) => ctx.log.error({ err: e }, 'releasing the name of a failed installation package failed'));
      if (storedSha) await ctx.archives.deleteUnlessUsed(storedSha).catch((e: unknown) => ctx.log.error({ err: e }, 'deleting the stored bytes of a failed installation package failed'));
      if (token) await ctx.enrolment.revokeToken(systemActor, token.id).catch((e: unknown) => ctx.log.error({ err: e }, 'revoking the token of a failed installation package failed'));
      // A stop while packing surfaces as the packer's own error ("write after destroyed"): say why instead.
      if (ctx.signal.aborted) throwIfStopped(ctx.signal);
      throw err;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  },
});
