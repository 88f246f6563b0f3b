/**
 * The backup archive's manifest (`manifest.json`, the archive's first entry): what made it,
 * how the database was dumped, and every other file of the archive with its size and SHA-256,
 * so that a restore refuses a damaged or altered archive before it writes anything.
 *
 * Archive layout: `manifest.json`; `database/` (`garrison.db` for an SQLite online backup,
 * `garrison.pgdump` for pg_dump's custom format, `<table>.jsonl` for a logical dump: one JSON
 * array of column values per line, columns named in the manifest); `data/` (files of the data
 * folder, at their place relative to it: secret.key, signing-key.pem, tls/, repository/, …).
 */
import { createDecipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Type, type Static } from 'typebox';
import { checker } from '@garrison/protocol';

export const BACKUP_FORMAT = 'garrison.backup';
export const BACKUP_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export const BackupMethod = { sqliteBackup: 'sqlite-backup', pgDump: 'pg_dump', logical: 'logical' } as const;
export type BackupMethod = (typeof BackupMethod)[keyof typeof BackupMethod];

const FileEntry = Type.Object({ path: Type.String({ minLength: 1, maxLength: 4096 }), size: Type.Integer({ minimum: 0 }), sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, { additionalProperties: false });

export const BackupManifest = Type.Object(
  {
    format: Type.Literal(BACKUP_FORMAT),
    version: Type.Literal(BACKUP_VERSION),
    createdAt: Type.String(),
    serverVersion: Type.String(),
    database: Type.Object(
      {
        dialect: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')]),
        method: Type.Union([Type.Literal('sqlite-backup'), Type.Literal('pg_dump'), Type.Literal('logical')]),
        /** PostgreSQL: the schema dumped (pg_dump's archive names it in every object). */
        schema: Type.Optional(Type.String()),
        /** pg_dump: its version (a pg_restore at least as new reads the archive). */
        tool: Type.Optional(Type.String()),
        migrations: Type.Array(Type.String()),
        /** Rows per table in the snapshot (the restore checks them again). */
        tables: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
        /** Logical dumps: the column order of each table's JSON lines. */
        columns: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
      },
      { additionalProperties: false },
    ),
    /**
     * Where the secret-store key was: "file" (data/secret.key is in the archive) or
     * "environment" (GARRISON_SECRET_KEY; not in the archive, the restore needs it). The
     * fingerprint (a hash, not the key) lets the restore tell a wrong key before any use.
     */
    secretKey: Type.Object({ source: Type.Union([Type.Literal('file'), Type.Literal('environment')]), fingerprint: Type.String() }, { additionalProperties: false }),
    includesRepository: Type.Boolean(),
    /** The server task run that made the archive (its own run is "running" in the snapshot). */
    madeBy: Type.Object({ taskId: Type.String(), runId: Type.String() }, { additionalProperties: false }),
    files: Type.Array(FileEntry),
  },
  { additionalProperties: false },
);
export type BackupManifest = Static<typeof BackupManifest>;
export const manifestChecker = checker(BackupManifest);

/** A restore refused before anything was written, naming what to fix (the CLI exits 2, not 1). */
export class RestoreError extends Error {}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A short, non-reversible name for a secret-store key (never the key itself). */
export function keyFingerprint(key: Buffer): string {
  return createHash('sha256').update('garrison-secret-key:').update(key).digest('hex').slice(0, 16);
}

/**
 * Whether `key` decrypts a value of the secret store (SecretService's "v1:iv:tag:body"
 * AES-256-GCM format): the check that a backup holds the key its database needs.
 */
export function keyOpens(key: Buffer, ciphertext: string): boolean {
  const [v, iv, tag, body] = ciphertext.split(':');
  if (v !== 'v1' || !iv || !tag || body === undefined) return false;
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    d.setAuthTag(Buffer.from(tag, 'base64'));
    Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]);
    return true;
  } catch {
    return false;
  }
}

/** The key GARRISON_SECRET_KEY holds, or undefined; throws on a malformed value (as the server does). */
export function envSecretKey(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  if (!env.GARRISON_SECRET_KEY) return undefined;
  const key = Buffer.from(env.GARRISON_SECRET_KEY, 'base64');
  if (key.length !== 32) throw new Error('GARRISON_SECRET_KEY must be 32 bytes, base64-encoded');
  return key;
}

export async function readSecretKeyFile(file: string): Promise<Buffer> {
  const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
  return key;
}

let serverVersion: string | undefined;
export async function getServerVersion(): Promise<string> {
  serverVersion ??= (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return serverVersion;
}
