/**
 * `garrison restore`: brings a server back from a backup archive into a data folder (and a
 * PostgreSQL database when given). Everything that can be checked is checked before anything
 * is written: the passphrase (GCM tag over the whole archive), the manifest, every file's size
 * and SHA-256, the migrations against this version's, the secret-store key, and that the
 * target is empty. Then the database is loaded, the files are moved into place (mode 0600),
 * and the restored database's row counts are compared with the manifest's.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { sql } from 'kysely';
import { decryptArchive, isEncryptedArchive } from './encryption.ts';
import { MANIFEST_FILE, RestoreError, envSecretKey, keyFingerprint, keyOpens, manifestChecker, readSecretKeyFile, sha256File, type BackupManifest } from './manifest.ts';
import { codeMigrations, loadDatabase, openTarget, pgSchemaTables, type RestoreTarget } from './load.ts';
import { displayUrl } from './pg-tools.ts';

export interface RestoreOptions {
  archive: string;
  dataDir: string;
  /** PostgreSQL target; default: SQLite in `<dataDir>/garrison.db`. */
  database?: { url: string; schema?: string };
  passphrase?: string;
  /** Restore into a non-empty data folder, replacing its garrison.db. */
  force?: boolean;
  /** The secret-store key for a backup whose key came from the environment; default GARRISON_SECRET_KEY. */
  secretKey?: Buffer;
  /** Progress lines for a person. */
  log?(line: string): void;
}

export interface RestoreOutcome {
  manifest: BackupManifest;
  dataDir: string;
  database: string;
  files: string[];
  tables: Record<string, number>;
  warnings: string[];
}

export { RestoreError };

const SQLITE_FILES = ['garrison.db', 'garrison.db-wal', 'garrison.db-shm', 'garrison.db-journal'];

export async function restoreBackup(o: RestoreOptions): Promise<RestoreOutcome> {
  const log = o.log ?? (() => {});
  const warnings: string[] = [];
  const archive = path.resolve(o.archive);
  const dataDir = path.resolve(o.dataDir);
  const st = await stat(archive).catch(() => null);
  if (!st?.isFile()) throw new RestoreError(`${archive} is not a file`);
  const encrypted = await isEncryptedArchive(archive);
  if (encrypted && !o.passphrase) throw new RestoreError('the archive is encrypted: give its passphrase (--passphrase-file FILE or GARRISON_BACKUP_PASSPHRASE)');
  if (!encrypted && o.passphrase) warnings.push('the archive is not encrypted: the passphrase was not needed');

  const existing = existsSync(dataDir) ? (await readdir(dataDir)).filter((n) => !n.startsWith('.restore-')) : [];
  if (existing.length > 0 && !o.force) throw new RestoreError(`${dataDir} is not empty (${existing.slice(0, 5).join(', ')}${existing.length > 5 ? ', …' : ''}): restore into an empty folder, or give --force to restore over it`);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const work = path.join(dataDir, `.restore-${randomBytes(4).toString('hex')}`);
  await mkdir(work, { mode: 0o700 });
  try {
    let plain = archive;
    if (encrypted) {
      log('decrypting and verifying the archive');
      plain = path.join(work, 'archive.tar.gz');
      await decryptArchive(archive, plain, o.passphrase!).catch((err: Error) => {
        throw new RestoreError(err.message);
      });
    }
    const x = path.join(work, 'x');
    await mkdir(x, { mode: 0o700 });
    const refused: string[] = [];
    try {
      await tar.x({
        file: plain,
        cwd: x,
        strict: true,
        // Only plain files and folders under the archive's three roots; node-tar already refuses absolute paths and "..".
        filter: (p, entry) => {
          const type = (entry as { type?: string }).type;
          const ok = (type === 'File' || type === 'OldFile' || type === 'Directory') && (p === MANIFEST_FILE || /^(database|data)\//.test(p));
          if (!ok) refused.push(`${p} (${type})`);
          return ok;
        },
      });
    } catch (err) {
      throw new RestoreError(`${archive} is not a readable Garrison backup: ${(err as Error).message}`);
    }
    if (refused.length) throw new RestoreError(`the archive holds entries a Garrison backup never has: ${refused.slice(0, 5).join(', ')}`);

    const manifest = await readManifest(x);
    const { database: dbInfo } = manifest;
    log(`backup of ${manifest.createdAt} by Garrison ${manifest.serverVersion}: ${dbInfo.dialect} database (${dbInfo.method}), ${manifest.files.length} files`);
    await verifyFiles(x, manifest);

    const ours = await codeMigrations();
    const unknown = dbInfo.migrations.filter((m) => !ours.includes(m));
    if (unknown.length) throw new RestoreError(`the backup was made by a newer Garrison (migrations ${unknown.join(', ')} are unknown here): restore it with Garrison ${manifest.serverVersion} or newer`);
    const copiesRows = dbInfo.method === 'logical' || (dbInfo.method === 'sqlite-backup' && o.database);
    if (copiesRows && dbInfo.migrations.join() !== ours.join()) {
      throw new RestoreError(`this restore copies rows, which needs the database at this version's migrations (${ours.at(-1)}), but the backup is at ${dbInfo.migrations.at(-1) ?? 'none'}: restore it with Garrison ${manifest.serverVersion}, which made it, then start this version on the restored database (it migrates it)`);
    }

    // The secret-store key: in the archive, or from the environment (checked by fingerprint).
    let key: Buffer;
    const envKey = o.secretKey ?? envSecretKey();
    if (manifest.secretKey.source === 'environment') {
      if (!envKey) throw new RestoreError('the backed-up server took its secret-store key from GARRISON_SECRET_KEY, which the archive does not hold: set GARRISON_SECRET_KEY to that key');
      if (keyFingerprint(envKey) !== manifest.secretKey.fingerprint) throw new RestoreError('GARRISON_SECRET_KEY is not the key of the backed-up server (its fingerprint differs): the restored secrets could not be read');
      key = envKey;
    } else {
      key = await readSecretKeyFile(path.join(x, 'data', 'secret.key'));
      if (envKey && keyFingerprint(envKey) !== manifest.secretKey.fingerprint) warnings.push('GARRISON_SECRET_KEY is set and differs from the restored secret.key; the server prefers the environment: unset it before starting the server');
    }

    // The target database must be empty: a restore never merges into, or silently replaces, data.
    let target: RestoreTarget;
    if (o.database) {
      const schema = o.database.schema ?? (dbInfo.method === 'pg_dump' ? (dbInfo.schema ?? 'public') : 'public');
      const { tables } = await pgSchemaTables(o.database.url, schema).catch((err: Error) => {
        throw new RestoreError(`cannot reach the PostgreSQL database ${displayUrl(o.database!.url)}: ${err.message}`);
      });
      if (tables > 0) throw new RestoreError(`schema "${schema}" of ${displayUrl(o.database.url)} holds ${tables} tables: restore into an empty database (drop them first if they are to go)`);
      target = { kind: 'postgres', url: o.database.url, schema };
    } else {
      if (dbInfo.method === 'pg_dump') throw new RestoreError('this backup holds a pg_dump of PostgreSQL: restore it into PostgreSQL with --database-url');
      // Only reached with --force when the folder held a database (it was not empty); its WAL
      // would be replayed into the restored file, so it goes too.
      for (const f of SQLITE_FILES) await rm(path.join(dataDir, f), { force: true });
      target = { kind: 'sqlite', file: path.join(dataDir, 'garrison.db') };
    }

    log(`loading the database into ${target.kind === 'sqlite' ? target.file : `${displayUrl(target.url)} (schema ${target.schema})`}`);
    await loadDatabase(manifest, path.join(x, 'database'), work, target, log);
    if (target.kind === 'sqlite' && dbInfo.method === 'sqlite-backup') {
      await rename(path.join(x, 'database', 'garrison.db'), target.file);
      await chmod(target.file, 0o600);
    }

    const placed: string[] = [];
    for (const f of manifest.files) {
      if (!f.path.startsWith('data/')) continue;
      const rel = f.path.slice('data/'.length);
      const to = path.join(dataDir, rel);
      await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
      await rename(path.join(x, f.path), to);
      await chmod(to, 0o600);
      placed.push(rel);
    }

    const tables = await verifyDatabase(target, manifest, key, warnings);
    if (!manifest.includesRepository && (tables.packages ?? 0) > 0) warnings.push(`the backup was made without the repository: the packages its database lists (${tables.packages}) have no archive until they are checked in again`);
    log(`restored ${Object.values(tables).reduce((a, b) => a + b, 0)} rows in ${Object.keys(tables).length} tables and ${placed.length} files`);
    return { manifest, dataDir, database: target.kind === 'sqlite' ? target.file : `${displayUrl(target.url)} schema ${target.schema}`, files: placed, tables, warnings };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readManifest(dir: string): Promise<BackupManifest> {
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch {
    throw new RestoreError(`the archive has no readable ${MANIFEST_FILE}: it is not a Garrison backup`);
  }
  const m = manifest as { format?: unknown; version?: unknown };
  if (m?.format !== 'garrison.backup') throw new RestoreError('the archive is not a Garrison backup (its manifest has another format)');
  if (m.version !== 1) throw new RestoreError(`the backup's format version ${String(m.version)} is not one this Garrison reads (1): use a newer Garrison`);
  if (!manifestChecker.check(manifest)) throw new RestoreError(`the backup's manifest is malformed: ${manifestChecker.issues(manifest, 3).map((i) => `${i.path} ${i.message}`).join('; ')}`);
  for (const f of manifest.files) {
    if (!/^(database|data)\//.test(f.path) || f.path.split('/').includes('..')) throw new RestoreError(`the manifest names a file outside the archive's folders: ${f.path}`);
  }
  return manifest;
}

/** Every file of the manifest is there with its size and hash, and nothing else is. */
async function verifyFiles(dir: string, manifest: BackupManifest): Promise<void> {
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const f of manifest.files) {
    const abs = path.join(dir, f.path);
    const st = await stat(abs).catch(() => null);
    if (!st?.isFile()) throw new RestoreError(`the archive lacks ${f.path}, which its manifest lists: it is incomplete`);
    if (st.size !== f.size || (await sha256File(abs)) !== f.sha256) throw new RestoreError(`${f.path} does not match its SHA-256 in the manifest: the archive is damaged or altered`);
  }
  const extra: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (r !== MANIFEST_FILE && !listed.has(r)) extra.push(r);
    }
  };
  await walk('');
  if (extra.length) throw new RestoreError(`the archive holds files its manifest does not list (${extra.slice(0, 3).join(', ')}): it was altered`);
}

/** Row counts of the restored database against the manifest, and the key against a restored secret. */
async function verifyDatabase(target: RestoreTarget, manifest: BackupManifest, key: Buffer, warnings: string[]): Promise<Record<string, number>> {
  const db = await openTarget(target);
  try {
    const counts: Record<string, number> = {};
    const wrong: string[] = [];
    for (const [t, expected] of Object.entries(manifest.database.tables)) {
      counts[t] = Number((await sql<{ c: number | string }>`select count(*) as c from ${sql.id(t)}`.execute(db.kysely)).rows[0]!.c);
      if (counts[t] !== expected) wrong.push(`${t}: ${counts[t]} rows, the backup had ${expected}`);
    }
    if (wrong.length) throw new Error(`the restored database differs from the backup: ${wrong.join('; ')}`);
    // The run that made this archive is "running" in its own snapshot; the restored server would
    // resume it and back up at once (and prune that task's archives). It did finish: the archive exists.
    if ('server_task_runs' in manifest.database.tables) {
      await db.kysely
        .updateTable('server_task_runs')
        .set({ state: 'succeeded', ended_at: manifest.createdAt, percent: 100, owner: null, lease_until: null, summary: 'made the archive this server was restored from', message: null })
        .where('id', '=', manifest.madeBy.runId)
        .where('state', 'in', ['pending', 'running'])
        .execute();
    }
    if ('secrets' in manifest.database.tables) {
      const sample = (await sql<{ c: string }>`select ciphertext as c from secrets limit 1`.execute(db.kysely)).rows[0]?.c;
      if (sample && !keyOpens(key, sample)) warnings.push('the restored secret-store key does not decrypt the restored secrets: the server was given its key another way when backed up; give the server that key');
    }
    return counts;
  } finally {
    await db.close();
  }
}
