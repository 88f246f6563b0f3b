/**
 * `garrison restore ARCHIVE --data-dir DIR`: brings a server back from a backup archive (made
 * by the "backup" server task) into a new data folder, then `garrison server --data DIR` runs it.
 * Exit codes: 0 restored, 2 refused (arguments, passphrase, archive, non-empty target; nothing
 * written), 1 failed while writing.
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { displayUrl } from './backup/pg-tools.ts';

const USAGE = `usage: garrison restore ARCHIVE --data-dir DIR [--database-url postgres://…] [--passphrase-file FILE] [--force]
  ARCHIVE              a garrison-backup-….tar.gz or ….tar.gz.enc made by a "backup" server task
  --data-dir DIR       the data folder to restore into (empty, or give --force); also --data
  --database-url URL   restore the database into this PostgreSQL database (its schema must be empty);
                       default: SQLite in DIR/garrison.db
  --passphrase-file F  the passphrase of an encrypted archive (first line); or GARRISON_BACKUP_PASSPHRASE
  --force              restore into a non-empty data folder, replacing its garrison.db
A backup whose server took its secret-store key from GARRISON_SECRET_KEY needs that variable set.`;

export async function restoreMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        data: { type: 'string' },
        'database-url': { type: 'string' },
        'passphrase-file': { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`garrison restore: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const fail = (msg: string) => {
    console.error(`garrison restore: ${msg}`);
    return 2;
  };
  if (positionals.length !== 1) return fail(`give exactly one archive (got ${positionals.length})\n${USAGE}`);
  const dataDir = values['data-dir'] ?? values.data;
  if (!dataDir) return fail(`--data-dir DIR is required: the folder to restore into\n${USAGE}`);
  const url = values['database-url'];
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) return fail('--database-url must be a postgres:// URL');
  let passphrase = process.env.GARRISON_BACKUP_PASSPHRASE;
  if (values['passphrase-file']) {
    try {
      passphrase = (await readFile(values['passphrase-file'], 'utf8')).split(/\r?\n/)[0];
    } catch (err) {
      return fail(`cannot read --passphrase-file: ${(err as Error).message}`);
    }
    if (!passphrase) return fail(`${values['passphrase-file']} is empty`);
  }
  // Loaded once the arguments are valid: a usage error answers at once, without the database drivers.
  const { restoreBackup, RestoreError } = await import('./backup/restore.ts');
  try {
    const out = await restoreBackup({
      archive: positionals[0]!,
      dataDir,
      ...(url ? { database: { url } } : {}),
      ...(passphrase ? { passphrase } : {}),
      force: values.force ?? false,
      log: (line) => console.log(`  ${line}`),
    });
    const rows = Object.values(out.tables).reduce((a, b) => a + b, 0);
    const lines = [
      `Restored the backup of ${out.manifest.createdAt} into ${out.dataDir}:`,
      `  database: ${out.database} (${rows} rows in ${Object.keys(out.tables).length} tables; ${out.manifest.database.method})`,
      `  files: ${out.files.length} (${['secret.key', 'signing-key.pem'].filter((f) => out.files.includes(f)).concat(out.files.some((f) => f.startsWith('tls/')) ? ['tls/'] : [], out.files.some((f) => f.startsWith('repository/')) ? [`repository/ (${out.files.filter((f) => f.startsWith('repository/')).length})`] : []).join(', ') || 'none'})`,
      ...out.warnings.map((w) => `  warning: ${w}`),
      ...(out.manifest.secretKey.source === 'environment' ? ['The secret-store key is not in the data folder: start the server with the same GARRISON_SECRET_KEY.'] : []),
      'Start the server with:',
      `  garrison server --data ${JSON.stringify(path.resolve(dataDir))}${url ? ` --database-url '${displayUrl(url)}'` : ''}`,
    ];
    console.log(lines.join('\n'));
    return 0;
  } catch (err) {
    console.error(`garrison restore: ${(err as Error).message}`);
    return err instanceof RestoreError ? 2 : 1;
  }
}
