/**
 * Making a backup archive of a running server: the database dump, and the files of the data
 * folder a server cannot be rebuilt without (secret-store key, signing key, tls/, repository/,
 * plugins/, the first administrator's token and password files). Never agent-builds/ (a
 * cache), backups/ or anything else: an allow-list, so that a backup never swallows itself.
 *
 * The files are hard-linked into a staging folder inside the data folder, which is cheap even
 * for a large repository and freezes each file as it was (the server replaces files by rename,
 * and a link keeps the old content even after the server removes the original). Repository
 * files are linked before the database snapshot and again after it: a package checked in
 * meanwhile is in the second pass, one removed meanwhile is kept from the first, so every
 * package row in the snapshot has its archive. Orphan archives are harmless.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { create as tarCreate } from 'tar';
import type { Db } from '../storage/database.ts';
import type { Clock } from '../clock.ts';
import { dumpDatabase } from './dump.ts';
import { encryptingStream } from './encryption.ts';
import { BACKUP_FORMAT, BACKUP_VERSION, MANIFEST_FILE, envSecretKey, getServerVersion, keyFingerprint, keyOpens, readSecretKeyFile, sha256File, type BackupManifest } from './manifest.ts';

/** Data-folder entries a backup holds (files, or folders taken whole), relative to the data folder. */
export const DATA_FILES = ['secret.key', 'signing-key.pem', 'admin-token', 'initial-admin-password', 'tls', 'plugins'] as const;
export const REPOSITORY_DIR = 'repository';
const STAGING_PREFIX = '.backup-staging-';
const DAY = 86400_000;

export interface BackupOptions {
  db: Db;
  dataDir: string;
  folder: string;
  /** When set, the archive is encrypted (encryption.ts). */
  passphrase?: string;
  includeRepository: boolean;
  /** Names the archive (its last 8 characters) and the staging folder. */
  runId: string;
  /** Archives are pruned per task: `keep` of one task never removes another task's archives. */
  taskId: string;
  clock: Clock;
  signal: AbortSignal;
  progress(percent: number, message?: string): void;
  output(line: string): void;
  /** Internal (tests): the pg_dump binary, or false to force the logical dump. */
  pgDump?: string | false;
  /** Where GARRISON_SECRET_KEY is read (default process.env, as the server reads it). */
  env?: NodeJS.ProcessEnv;
}

export interface BackupOutcome {
  file: string;
  size: number;
  encrypted: boolean;
  method: string;
  tables: Record<string, number>;
  files: number;
  durationMs: number;
  warnings: string[];
}

const ARCHIVE_NAME = /^garrison-backup-(\d{8}-\d{6})-([0-9a-f]{8})-([0-9a-z]{8})\.tar\.gz(\.enc)?$/;

/** The 8-character tag of a task in its archives' names (a hash: task ids are not file-name material). */
export function taskTag(taskId: string): string {
  return createHash('sha256').update(taskId).digest('hex').slice(0, 8);
}

export function archiveName(now: Date, taskId: string, runId: string, encrypted: boolean): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const run = (runId.toLowerCase().replace(/[^0-9a-z]/g, '') + '00000000').slice(0, 8);
  return `garrison-backup-${stamp}-${taskTag(taskId)}-${run}.tar.gz${encrypted ? '.enc' : ''}`;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('stopped');
}

/** Regular files under `rel` (a file or a folder), skipping hidden and temporary files; symbolic links are reported, not followed. */
async function walk(root: string, rel: string, skipped: string[]): Promise<string[]> {
  const abs = path.join(root, rel);
  let st;
  try {
    st = await lstat(abs);
  } catch {
    return [];
  }
  if (st.isSymbolicLink()) {
    skipped.push(rel);
    return [];
  }
  if (st.isFile()) return [rel];
  if (!st.isDirectory()) return [];
  const out: string[] = [];
  for (const name of (await readdir(abs)).sort()) {
    if (name.startsWith('.') || name.endsWith('.tmp')) continue;
    out.push(...(await walk(root, path.join(rel, name), skipped)));
  }
  return out;
}

/** Links (or, across file systems, copies) data-folder files into the staging folder. */
async function stage(dataDir: string, staging: string, rels: string[], done: Set<string>): Promise<void> {
  for (const rel of rels) {
    if (done.has(rel)) continue;
    const to = path.join(staging, 'data', rel);
    await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
    try {
      await link(path.join(dataDir, rel), to);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Removed since it was listed (a package deleted meanwhile): nothing to keep.
      if (code === 'ENOENT') continue;
      await copyFile(path.join(dataDir, rel), to);
    }
    done.add(rel);
  }
}

/** Staging folders of backups that crashed are removed at the next backup, once a day old. */
async function removeStaleStaging(dataDir: string, now: number): Promise<void> {
  for (const name of await readdir(dataDir).catch(() => [] as string[])) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const dir = path.join(dataDir, name);
    if (now - (await stat(dir)).mtimeMs > DAY) await rm(dir, { recursive: true, force: true });
  }
}

export async function createBackup(o: BackupOptions): Promise<BackupOutcome> {
  const started = Date.now();
  const warnings: string[] = [];
  const now = o.clock.now();
  const encrypted = o.passphrase !== undefined;
  await removeStaleStaging(o.dataDir, Date.now());
  const staging = path.join(o.dataDir, `${STAGING_PREFIX}${o.runId.replace(/[^0-9A-Za-z-]/g, '')}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(path.join(staging, 'database'), { recursive: true, mode: 0o700 });
  await mkdir(o.folder, { recursive: true, mode: 0o700 });
  const name = archiveName(now, o.taskId, o.runId, encrypted);
  const final = path.join(o.folder, name);
  const partial = path.join(o.folder, `.${name}.partial`);
  try {
    // The secret-store key: where the server took it from (app.ts loadSecretKey: the environment first).
    const envKey = envSecretKey(o.env);
    const keyFile = path.join(o.dataDir, 'secret.key');
    const key = envKey ?? (existsSync(keyFile) ? await readSecretKeyFile(keyFile) : undefined);
    if (!key) throw new Error(`there is no secret-store key: neither GARRISON_SECRET_KEY nor ${keyFile}`);
    if (envKey) warnings.push('the secret-store key comes from GARRISON_SECRET_KEY and is not in the archive: keep it safe, the restore needs it');

    o.progress(2, 'listing files');
    const skipped: string[] = [];
    const rels: string[] = [];
    for (const entry of DATA_FILES) {
      if (entry === 'secret.key' && envKey) continue;
      rels.push(...(await walk(o.dataDir, entry, skipped)));
    }
    const staged = new Set<string>();
    await stage(o.dataDir, staging, rels, staged);
    if (o.includeRepository) await stage(o.dataDir, staging, await walk(o.dataDir, REPOSITORY_DIR, skipped), staged);
    throwIfAborted(o.signal);

    o.progress(10, 'database snapshot');
    const dump = await dumpDatabase(o.db, path.join(staging, 'database'), { signal: o.signal, ...(o.pgDump !== undefined ? { pgDump: o.pgDump } : {}), note: o.output });
    o.output(`database: ${dump.dialect}, ${dump.method}, ${Object.values(dump.tables).reduce((a, b) => a + b, 0)} rows in ${Object.keys(dump.tables).length} tables`);
    if (dump.secretSample && !keyOpens(key, dump.secretSample)) {
      warnings.push(`the secret-store key found (${envKey ? 'GARRISON_SECRET_KEY' : 'secret.key'}) does not decrypt the stored secrets: the server was given its key another way; keep that key, the restored secrets need it`);
    }
    throwIfAborted(o.signal);
    if (o.includeRepository) await stage(o.dataDir, staging, await walk(o.dataDir, REPOSITORY_DIR, skipped), staged);
    for (const s of skipped) warnings.push(`${s} is a symbolic link: not backed up`);

    o.progress(50, 'hashing files');
    const files: BackupManifest['files'] = [];
    const entries = [...dump.files.map((f) => path.join('database', f)), ...[...staged].sort().map((r) => path.join('data', r))];
    for (const [i, rel] of entries.entries()) {
      throwIfAborted(o.signal);
      o.progress(50 + Math.floor((10 * i) / entries.length), 'hashing files');
      const abs = path.join(staging, rel);
      files.push({ path: rel.split(path.sep).join('/'), size: (await stat(abs)).size, sha256: await sha256File(abs) });
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      createdAt: now.toISOString(),
      serverVersion: await getServerVersion(),
      database: {
        dialect: dump.dialect,
        method: dump.method,
        ...(dump.schema !== undefined ? { schema: dump.schema } : {}),
        ...(dump.tool ? { tool: dump.tool } : {}),
        migrations: dump.migrations,
        tables: dump.tables,
        ...(dump.columns ? { columns: dump.columns } : {}),
      },
      secretKey: { source: envKey ? 'environment' : 'file', fingerprint: keyFingerprint(key) },
      includesRepository: o.includeRepository,
      madeBy: { taskId: o.taskId, runId: o.runId },
      files,
    };
    await writeFile(path.join(staging, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });

    o.progress(60, encrypted ? 'writing the encrypted archive' : 'writing the archive');
    // Progress by the bytes of the files entered so far (a large repository takes the time).
    const total = files.reduce((a, f) => a + f.size, 0) || 1;
    const sizes = new Map(files.map((f) => [f.path, f.size]));
    let packed = 0;
    const onWriteEntry = (e: { path: string }) => {
      packed += sizes.get(e.path) ?? 0;
      o.progress(60 + Math.floor((35 * packed) / total), encrypted ? 'writing the encrypted archive' : 'writing the archive');
    };
    // node-tar's own gzip compresses each read (16 MiB by default) synchronously on the event loop,
    // which stalls every agent for hundreds of milliseconds; node's zlib stream works in the thread pool.
    const tarball = tarCreate({ cwd: staging, portable: true, onWriteEntry, maxReadSize: 1 << 20 }, [MANIFEST_FILE, ...files.map((f) => f.path)]);
    const out = createWriteStream(partial, { mode: 0o600 });
    if (encrypted) await pipeline(tarball, createGzip(), await encryptingStream(o.passphrase!), out, { signal: o.signal });
    else await pipeline(tarball, createGzip(), out, { signal: o.signal });
    await chmod(partial, 0o600);
    await rename(partial, final);
    const size = (await stat(final)).size;
    o.output(`wrote ${final} (${size} bytes, ${files.length} files${encrypted ? ', encrypted' : ''})`);
    if (!encrypted) warnings.push('the archive is not encrypted and holds the secret-store key and private keys: set a passphrase, or keep the backup folder as private as the data folder');
    return { file: final, size, encrypted, method: dump.method, tables: dump.tables, files: files.length, durationMs: Date.now() - started, warnings };
  } catch (err) {
    // A stop tears streams down mid-write; their complaints ("write after destroy") are not the cause.
    if (o.signal.aborted) throwIfAborted(o.signal);
    throw err;
  } finally {
    await rm(partial, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Keeps the `keep` newest archives of one task in the folder and removes the older ones (and
 * that task's partial files left by a crash, once a day old). Returns the names removed.
 */
export async function pruneBackups(folder: string, taskId: string, keep: number, now = Date.now()): Promise<string[]> {
  const tag = taskTag(taskId);
  const names = await readdir(folder);
  // Newest first by the time in the name; two archives of the same second, by modification time.
  const ours = await Promise.all(names.filter((n) => ARCHIVE_NAME.exec(n)?.[2] === tag).map(async (n) => ({ n, stamp: ARCHIVE_NAME.exec(n)![1]!, mtime: (await stat(path.join(folder, n))).mtimeMs })));
  ours.sort((a, b) => (a.stamp !== b.stamp ? (a.stamp < b.stamp ? 1 : -1) : b.mtime - a.mtime));
  const removed: string[] = [];
  for (const { n } of ours.slice(keep)) {
    await rm(path.join(folder, n), { force: true });
    removed.push(n);
  }
  for (const n of names) {
    const m = /^\.(.+)\.partial$/.exec(n);
    if (m && ARCHIVE_NAME.exec(m[1]!)?.[2] === tag && now - (await stat(path.join(folder, n))).mtimeMs > DAY) await rm(path.join(folder, n), { force: true });
  }
  return removed;
}
