/**
 * Instances on one database share the secret-store key and the package signing key: one that
 * has others refuses to start with INSTANCE_KEY_MISMATCH and a sentence saying what to give
 * it, instead of failing every secret (INTERNAL, "unable to authenticate data") and signing
 * packages no agent accepts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { pinnedFetch } from '@garrison/protocol/tls';
import { startServer } from '../src/app.ts';
import type { AppError } from '../src/errors.ts';
import { SIGNING_KEY_FILE } from '../src/services/signing.ts';
import { postgresKind, pgSkip, sqliteKind, startTestServer, tempDir } from './helpers.ts';

const quiet = pino({ level: 'silent' });

describe('instance keys (postgres)', { skip: pgSkip }, () => {
  it('a second instance with its own keys is refused; given the first one\'s keys it starts', async () => {
    const a = await startTestServer(postgresKind);
    try {
      // A secret in the database, as a real fleet has.
      assert.equal((await a.api('PUT', '/api/v1/secrets/smtp-password', { value: 'hunter2-hunter2' })).status, 204);
      const start = (dataDir: string, secretKey?: Buffer) => startServer({ dataDir, database: a.database, port: 0, logger: quiet, serverTaskTickMs: 200, ...(secretKey ? { secretKey } : {}) });
      const fresh = await tempDir();
      await assert.rejects(start(fresh), (err: AppError) => err.code === 'INSTANCE_KEY_MISMATCH' && /secret-store key cannot decrypt|is not the one the database was set up with/.test(err.message) && /GARRISON_SECRET_KEY/.test(err.message));
      const key = Buffer.from((await readFile(path.join(a.dataDir, 'secret.key'), 'utf8')).trim(), 'base64');
      await assert.rejects(start(fresh, key), (err: AppError) => err.code === 'INSTANCE_KEY_MISMATCH' && /signing key/.test(err.message));
      await copyFile(path.join(a.dataDir, SIGNING_KEY_FILE), path.join(fresh, SIGNING_KEY_FILE));
      const b = await start(fresh, key);
      try {
        // It serves the same fleet: the first instance's administrator token reads the secret's name.
        const r = await pinnedFetch(b.tls!.caPem)(`${b.url}/api/v1/secrets`, { headers: { authorization: `Bearer ${a.token}` } });
        assert.equal(r.status, 200);
        assert.deepEqual(((await r.json()) as { name: string }[]).map((x) => x.name), ['smtp-password']);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  });
});

describe('instance keys (sqlite)', () => {
  it('a data folder whose secret key was replaced is refused at start, and starts again with the right one', async () => {
    const a = await startTestServer(sqliteKind);
    const keyFile = path.join(a.dataDir, 'secret.key');
    const right = await readFile(keyFile, 'utf8');
    await a.server.close();
    try {
      await writeFile(keyFile, randomBytes(32).toString('base64') + '\n');
      const start = () => startServer({ dataDir: a.dataDir, database: a.database, port: 0, logger: quiet });
      await assert.rejects(start(), (err: AppError) => err.code === 'INSTANCE_KEY_MISMATCH');
      await writeFile(keyFile, right);
      const again = await start();
      await again.close();
    } finally {
      await a.cleanup();
    }
  });
});
