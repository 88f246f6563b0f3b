/**
 * Landed migrations are never edited (issue 13). A database runs each migration once, so an
 * edit reaches only databases made after it, and nothing else notices: 0008 gained an index
 * after it had shipped, and the databases that ran it before went without until 0010. Each
 * landed file's SHA-256 is recorded: for 0001 to 0011 in `storage/migrations/landed.sha256`
 * (a list that is itself never edited again), and for each later migration in a file of its
 * own beside it, `<migration>.ts.sha256`, added in the commit that adds the migration, so that
 * recording a new one changes nothing that already landed. This test fails when a file no
 * longer matches, when a recorded file is gone, and when a migration is registered without a
 * recorded hash.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { migrationNames } from '../src/storage/migrate.ts';
import { ROOT } from './helpers.ts';

const MIGRATIONS = path.join(ROOT, 'packages/server/src/storage/migrations');
const LIST = path.join(MIGRATIONS, 'landed.sha256');
const LIST_NAME = path.relative(ROOT, LIST);

/** `sha256sum` lines (`<hash>  <file>`) of the list and of every `<migration>.ts.sha256`; `#` lines are comments. */
async function landed(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const sources = [LIST, ...(await readdir(MIGRATIONS)).filter((f) => f.endsWith('.ts.sha256')).map((f) => path.join(MIGRATIONS, f))];
  for (const source of sources) {
    const name = path.relative(ROOT, source);
    for (const line of (await readFile(source, 'utf8')).split(/\r?\n/)) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      const m = /^([0-9a-f]{64}) [ *](\S+)$/.exec(line);
      assert.ok(m, `${name}: not a "<sha256>  <file>" line: ${line}`);
      assert.ok(!out.has(m[2]!), `${name}: ${m[2]} is recorded twice`);
      if (source !== LIST) assert.equal(path.basename(source), `${m[2]}.sha256`, `${name} records another file (${m[2]})`);
      out.set(m[2]!, m[1]!);
    }
  }
  return out;
}

/** Over the text with LF line endings, so that a checkout that converts them to CRLF hashes the same. */
async function sha256Of(file: string): Promise<string> {
  const text = (await readFile(path.join(MIGRATIONS, file))).toString('utf8').replaceAll('\r\n', '\n');
  return createHash('sha256').update(text).digest('hex');
}

describe('landed migrations', () => {
  it('are never edited; a new one is added instead', async () => {
    const edited: string[] = [];
    for (const [file, hash] of await landed()) {
      const now = await sha256Of(file).catch(() => null);
      if (now === null) edited.push(`${file} is gone (a landed migration is never removed or renamed)`);
      else if (now !== hash) edited.push(`${file} changed: sha256 ${hash} when it landed, ${now} now`);
    }
    assert.deepEqual(edited, [], `landed migrations are never edited; add a new one (databases that already ran a migration never run it again). Restore:\n  ${edited.join('\n  ')}`);
  });

  it('are all listed with their hash, and every migration file is registered', async () => {
    const list = await landed();
    const files = (await readdir(MIGRATIONS)).filter((f) => f.endsWith('.ts')).sort();
    assert.deepEqual(
      files.map((f) => f.replace(/\.ts$/, '')),
      [...migrationNames],
      'every file in storage/migrations is registered in storage/migrate.ts, and only those',
    );
    const unlisted = files.filter((f) => !list.has(f));
    const lines = await Promise.all(unlisted.map(async (f) => `${await sha256Of(f)}  ${f}`));
    assert.deepEqual(
      unlisted,
      [],
      `migrations without a recorded hash: a new migration comes with <migration>.ts.sha256 beside it, holding its line (from then on the file is never edited; ${LIST_NAME} is not edited either):\n  ${lines.join('\n  ')}`,
    );
  });
});
