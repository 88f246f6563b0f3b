/**
 * Backup of server data (issue 6): a consistent online snapshot of the database (SQLite online
 * backup, pg_dump, or a logical dump), the repository, the signing and TLS keys and the
 * secret-store key, in one .tar.gz, encrypted when a passphrase (a secret) is set; the newest
 * `keep` archives of the task are kept. `garrison restore ARCHIVE` brings a server back
 * (backup/restore.ts; docs in the command's usage).
 */
import path from 'node:path';
import { Type, type Static } from 'typebox';
import { SecretRefSchema } from '@garrison/protocol';
import { pruneBackups, REPOSITORY_DIR, DATA_FILES } from '../backup/create.ts';
import { MIN_PASSPHRASE_LENGTH } from '../backup/encryption.ts';
import { defineServerTaskType, type ServerTaskEnvironment } from './server-task.ts';

const Settings = Type.Object(
  {
    folder: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: 'Absolute path of the folder the archives are written to (default: <data folder>/backups)' })),
    keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: "How many of this task's archives to keep; older ones are deleted after a successful backup (default 7)" })),
    /** A secret holding the passphrase that encrypts the archive (recommended: the archive holds every key of the server). */
    passphrase: Type.Optional(SecretRefSchema),
    includeRepository: Type.Optional(Type.Boolean({ description: 'Include the master repository (package archives); default true' })),
  },
  { additionalProperties: false },
);
/** As run() receives them: the passphrase reference resolved to its value. */
type Settings = Omit<Static<typeof Settings>, 'passphrase'> & { passphrase?: string };

export const DEFAULT_KEEP = 7;

/** Where the archives go: inside a folder that is itself backed up, every backup would grow by the previous ones. */
export function backupFolder(settings: Settings, dataDir: string): string {
  return settings.folder ?? path.join(dataDir, 'backups');
}

function folderProblems(settings: Settings, env: Pick<ServerTaskEnvironment, 'dataDir'>): string[] {
  if (settings.folder === undefined) return [];
  if (!path.isAbsolute(settings.folder)) return [`folder must be an absolute path (got "${settings.folder}")`];
  const folder = path.resolve(settings.folder);
  const inside = (dir: string) => folder === dir || folder.startsWith(dir + path.sep);
  const backedUp = [REPOSITORY_DIR, ...DATA_FILES].map((d) => path.join(path.resolve(env.dataDir), d));
  const hit = backedUp.find(inside);
  return hit ? [`folder must not be inside ${hit}, which the backup itself holds`] : [];
}

const human = (bytes: number) => (bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

export const backupTaskType = defineServerTaskType<Settings>({
  type: 'backup',
  name: 'Backup of server data',
  description:
    'A consistent online backup of the database, the repository, the signing, TLS and secret-store keys into one archive (encrypted with a passphrase secret when set), keeping the newest N. Restore with "garrison restore ARCHIVE --data-dir DIR".',
  settingsSchema: Settings,
  validate: (settings, env) => folderProblems(settings, env),
  async run(settings, ctx) {
    const problems = folderProblems(settings, ctx);
    if (problems.length) throw new Error(problems.join('; '));
    if (settings.passphrase !== undefined && (typeof settings.passphrase !== 'string' || settings.passphrase.length < MIN_PASSPHRASE_LENGTH)) {
      throw new Error(`the passphrase secret must hold at least ${MIN_PASSPHRASE_LENGTH} characters`);
    }
    const folder = backupFolder(settings, ctx.dataDir);
    const keep = settings.keep ?? DEFAULT_KEEP;
    const out = await ctx.backup.create({
      dataDir: ctx.dataDir,
      folder,
      ...(settings.passphrase !== undefined ? { passphrase: settings.passphrase } : {}),
      includeRepository: settings.includeRepository ?? true,
      runId: ctx.runId,
      taskId: ctx.taskId,
      clock: ctx.clock,
      signal: ctx.signal,
      progress: ctx.progress,
      output: ctx.output,
    });
    ctx.progress(95, 'removing older archives');
    // Pruning only after the new archive is complete: a failed backup never costs an old one.
    const removed = await pruneBackups(folder, ctx.taskId, keep);
    for (const r of removed) ctx.output(`removed ${r} (keeping ${keep})`);
    ctx.progress(100);
    const rows = Object.values(out.tables).reduce((a, b) => a + b, 0);
    return {
      summary: `backed up ${rows} rows and ${out.files} files to ${path.basename(out.file)} (${human(out.size)}, ${out.method}${out.encrypted ? ', encrypted' : ''})${removed.length ? `; removed ${removed.length} older` : ''}`,
      ...(out.warnings.length ? { warnings: out.warnings } : {}),
      data: { file: out.file, size: out.size, encrypted: out.encrypted, method: out.method, tables: out.tables, files: out.files, durationMs: out.durationMs, removed },
    };
  },
});
