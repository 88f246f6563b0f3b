/**
 * Instances on one database share the secret-store key, the package signing key and the TLS
 * CA, key and certificate: joining needs only the database URL and the secret-store key (the
 * rest comes from the database, sealed with it), and one whose own keys differ refuses to start
 * with INSTANCE_KEY_MISMATCH and a sentence saying what to do, instead of failing every secret
 * (INTERNAL, "unable to authenticate data"), signing packages no agent accepts, or presenting a
 * certificate agents refuse.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { certificateFingerprint, pinnedFetch } from '@garrison/protocol/tls';
import { startServer } from '../src/app.ts';
import type { AppError } from '../src/errors.ts';
import { checkInstanceKeys, establishInstanceKeys, type InstanceKeys } from '../src/instance-keys.ts';
import { SecretService } from '../src/services/secret-service.ts';
import { SigningKey, SIGNING_KEY_FILE } from '../src/services/signing.ts';
import { openDatabase, type Db } from '../src/storage/database.ts';
import { SecretStore } from '../src/storage/secret-store.ts';
import { SettingsStore } from '../src/storage/settings-store.ts';
import { systemClock } from '../src/clock.ts';
import { completeTlsKeys, issueServerCertificate, loadOrCreateTls, type TlsOptions } from '../src/tls/pki.ts';
import { dbKinds, postgresKind, pgSkip, sqliteKind, startTestServer, tempDir, type DbKind } from './helpers.ts';

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
      // A signing key of its own in the data folder is refused (an empty folder would take the shared one).
      await rm(path.join(fresh, SIGNING_KEY_FILE), { force: true });
      await SigningKey.generate().writeTo(fresh);
      await assert.rejects(start(fresh, key), (err: AppError) => err.code === 'INSTANCE_KEY_MISMATCH' && /signing key/.test(err.message));
      await copyFile(path.join(a.dataDir, SIGNING_KEY_FILE), path.join(fresh, SIGNING_KEY_FILE));
      const b = await start(fresh, key);
      try {
        // It serves the same fleet: the first instance's administrator token reads the secret's name.
        const r = await pinnedFetch(b.tls!.caPem)(`${b.url}/api/v1/secrets`, { headers: { authorization: `Bearer ${a.token}` } });
        assert.equal(r.status, 200);
        assert.deepEqual(((await r.json()) as { items: { name: string }[] }).items.map((x) => x.name), ['smtp-password']);
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

describe('instance keys through startServer (postgres)', { skip: pgSkip }, () => {
  it('two instances on their own data folders, with the same secret-store key and database, present the same CA, key and certificate', async () => {
    const a = await startTestServer(postgresKind);
    try {
      const secretKey = Buffer.from((await readFile(path.join(a.dataDir, 'secret.key'), 'utf8')).trim(), 'base64');
      const b = await startServer({ dataDir: await tempDir(), database: a.database, port: 0, logger: quiet, secretKey });
      try {
        assert.equal(b.tls!.caFingerprint, a.server.tls!.caFingerprint);
        assert.equal(b.tls!.publicKeyPin, a.server.tls!.publicKeyPin);
        // Agents enrolled through the first instance trust the second.
        const r = await pinnedFetch(a.server.tls!.caPem)(`${b.url}/api/v1/secrets`, { headers: { authorization: `Bearer ${a.token}` } });
        assert.equal(r.status, 200);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  });
});

/** One "instance" as far as its keys go: its own data folder and connection, the shared database and a secret-store key. */
interface Instance {
  dataDir: string;
  db: Db;
  lines: string[];
  start(tls?: TlsOptions | false): Promise<InstanceKeys>;
}

async function sharedDatabase(kind: DbKind) {
  const home = await tempDir();
  const made = await kind.make(home, { migrated: true });
  const dbs: Db[] = [];
  const open = async () => {
    const db = await openDatabase(made.config);
    dbs.push(db);
    return db;
  };
  return {
    async instance(key: Buffer, dataDir?: string): Promise<Instance> {
      const db = await open();
      const dir = dataDir ?? (await tempDir());
      const lines: string[] = [];
      // Only encrypt/decrypt are used: the secret-store key's cipher, the real one.
      const secrets = new SecretService({ store: new SecretStore(db), key, clock: systemClock, events: null as never, tree: () => null as never });
      const log = { info: (m: string) => lines.push(`info: ${m}`), warn: (m: string) => lines.push(`warn: ${m}`) };
      return {
        dataDir: dir,
        db,
        lines,
        start: (tls: TlsOptions | false = { names: ['garrison.test'] }) =>
          establishInstanceKeys({ settings: new SettingsStore(db), secrets, anyStoredSecret: () => new SecretStore(db).anyCiphertext(), dataDir: dir, tls, log }),
      };
    },
    async close() {
      for (const db of dbs) await db.close();
      await made.cleanup();
    },
  };
}

const mode = async (file: string) => (await stat(file)).mode & 0o777;
const refused = (pattern: RegExp) => (err: AppError) => {
  assert.equal(err.code, 'INSTANCE_KEY_MISMATCH', err.message);
  assert.match(err.message, pattern);
  assert.match(err.message, /Running several instances/);
  return true;
};

for (const kind of dbKinds) {
  describe(`establishInstanceKeys (${kind.name})`, () => {
    it('the first instance stores its keys; a second with an empty data folder and the same secret-store key takes the same ones, into the usual files', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        const first = await a.start();
        assert.ok(a.lines.some((l) => /created the package signing key in DATA\/signing-key.pem and stored it in the database/.test(l)), a.lines.join("\n"));
        assert.ok(a.lines.some((l) => /stored the server's certificate authority/.test(l)));
        const b = await shared.instance(key);
        const second = await b.start();
        assert.equal(second.tls!.caFingerprint, first.tls!.caFingerprint);
        assert.equal(second.tls!.publicKeyPin, first.tls!.publicKeyPin);
        assert.equal(second.tls!.certFingerprint, first.tls!.certFingerprint, 'the same names: the same certificate (the Windows pin)');
        assert.equal(second.signingKey.publicKeyPem, first.signingKey.publicKeyPem);
        assert.ok(b.lines.some((l) => /took the package signing key/.test(l)) && b.lines.some((l) => /took the certificate authority/.test(l)), b.lines.join('\n'));
        // What the rest of the server, backups and restore read: the same files, the same modes.
        for (const f of ['tls/ca.key', 'tls/ca.crt', 'tls/server.key', 'tls/server.crt', SIGNING_KEY_FILE]) {
          assert.equal(await readFile(path.join(b.dataDir, f), 'utf8'), await readFile(path.join(a.dataDir, f), 'utf8'), f);
        }
        assert.equal(await mode(path.join(b.dataDir, 'tls')), 0o700);
        for (const f of ['tls/ca.key', 'tls/server.key', SIGNING_KEY_FILE]) assert.equal(await mode(path.join(b.dataDir, f)), 0o600, f);
        assert.equal(second.tls!.caFile, path.join(b.dataDir, 'tls', 'ca.crt'));
        // Started again on its now full folder, it agrees with itself, writing nothing new.
        b.lines.length = 0;
        const again = await b.start();
        assert.equal(again.tls!.certFingerprint, first.tls!.certFingerprint);
        assert.deepEqual(b.lines, []);
        // Signatures made by one verify with the other's public key.
        assert.equal(second.signingKey.sign('payload'), first.signingKey.sign('payload'), 'Ed25519 is deterministic: the same key');
        // The shared keys are sealed: the database never holds a private key in the clear.
        const rows = await a.db.kysely.selectFrom('server_settings').select(['key', 'value']).execute();
        assert.ok(!rows.some((r) => r.value.includes('PRIVATE KEY')), rows.map((r) => r.key).join(', '));
      } finally {
        await shared.close();
      }
    });

    it('a single server upgraded keeps its keys and certificate (the pins it gave out) and shares them', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        // What the previous version left: files in the data folder, and the check of the signing public key.
        const oldTls = await loadOrCreateTls(a.dataDir, { names: ['garrison.test'] });
        const oldSigning = await SigningKey.loadOrCreate(a.dataDir);
        const secrets = new SecretService({ store: new SecretStore(a.db), key, clock: systemClock, events: null as never, tree: () => null as never });
        await checkInstanceKeys({ settings: new SettingsStore(a.db), secrets, anyStoredSecret: async () => undefined, signingPublicKeyPem: oldSigning.publicKeyPem });
        const upgraded = await a.start();
        assert.equal(upgraded.tls!.caFingerprint, oldTls.caFingerprint);
        assert.equal(upgraded.tls!.certFingerprint, oldTls.certFingerprint);
        assert.equal(upgraded.tls!.publicKeyPin, oldTls.publicKeyPin);
        assert.equal(upgraded.signingKey.publicKeyPem, oldSigning.publicKeyPem);
        const joined = await (await shared.instance(key)).start();
        assert.equal(joined.tls!.certFingerprint, oldTls.certFingerprint);
        assert.equal(joined.signingKey.publicKeyPem, oldSigning.publicKeyPem);
      } finally {
        await shared.close();
      }
    });

    it('an instance with its own tls/ or signing key is refused with what differs and what to do; emptied, it takes the shared ones', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const first = await (await shared.instance(key)).start();
        const b = await shared.instance(key);
        await loadOrCreateTls(b.dataDir, { names: ['garrison.test'] });
        await assert.rejects(b.start(), refused(/certificate authority \(DATA\/tls\/ca\.crt, SHA-256 [0-9a-f]{64}\) is not the one the database knows.*Remove DATA\/tls/));
        // The refusal wrote nothing of its own: the database still holds the first one's.
        assert.equal((await (await shared.instance(key)).start()).tls!.caFingerprint, first.tls!.caFingerprint);
        // The shared CA copied by hand, but a server key of its own.
        await rm(path.join(b.dataDir, 'tls'), { recursive: true });
        await b.start();
        await rm(path.join(b.dataDir, 'tls', 'server.key'));
        await rm(path.join(b.dataDir, 'tls', 'server.crt'));
        await writeFile(path.join(b.dataDir, 'tls', 'server.key'), (await completeTlsKeys({})).serverKeyPem, { mode: 0o600 });
        await assert.rejects(b.start(), refused(/TLS key \(DATA\/tls\/server\.key\) is not the one the database knows.*Remove DATA\/tls/));
        await rm(path.join(b.dataDir, 'tls'), { recursive: true });
        // A signing key of its own.
        await rm(path.join(b.dataDir, SIGNING_KEY_FILE));
        await SigningKey.generate().writeTo(b.dataDir);
        await assert.rejects(b.start(), refused(/package signing key \(DATA\/signing-key\.pem\) is not the one the database knows.*Remove DATA\/signing-key\.pem/));
        await rm(path.join(b.dataDir, SIGNING_KEY_FILE));
        const joined = await b.start();
        assert.equal(joined.tls!.caFingerprint, first.tls!.caFingerprint);
        assert.equal(joined.signingKey.publicKeyPem, first.signingKey.publicKeyPem);
        // Another secret-store key cannot open what is sealed, and says so before anything else.
        await assert.rejects((await shared.instance(randomBytes(32))).start(), refused(/secret-store key is not the one the database was set up with.*GARRISON_SECRET_KEY/));
      } finally {
        await shared.close();
      }
    });

    it('two (and three) first instances starting at once agree on one set of keys', async () => {
      for (const n of [2, 3]) {
        const shared = await sharedDatabase(kind);
        try {
          const key = randomBytes(32);
          const instances = await Promise.all(Array.from({ length: n }, () => shared.instance(key)));
          const started = await Promise.all(instances.map((i) => i.start()));
          for (const s of started.slice(1)) {
            assert.equal(s.tls!.caFingerprint, started[0]!.tls!.caFingerprint);
            assert.equal(s.tls!.publicKeyPin, started[0]!.tls!.publicKeyPin);
            assert.equal(s.tls!.certFingerprint, started[0]!.tls!.certFingerprint);
            assert.equal(s.signingKey.publicKeyPem, started[0]!.signingKey.publicKeyPem);
          }
          // And each data folder holds the agreed ones, not the ones it made and lost.
          for (const i of instances) assert.equal(certificateFingerprint(await readFile(path.join(i.dataDir, 'tls', 'ca.crt'))), started[0]!.tls!.caFingerprint);
          for (const i of instances) assert.equal(SigningKey.fromPem(await readFile(path.join(i.dataDir, SIGNING_KEY_FILE), 'utf8')).publicKeyPem, started[0]!.signingKey.publicKeyPem);
        } finally {
          await shared.close();
        }
      }
    });

    it('an instance with names the shared certificate does not cover issues one for all names, which the next instance takes as is', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        const first = await a.start({ names: ['a.garrison.test'] });
        const b = await shared.instance(key);
        const second = await b.start({ names: ['b.garrison.test'] });
        assert.notEqual(second.tls!.certFingerprint, first.tls!.certFingerprint);
        assert.equal(second.tls!.publicKeyPin, first.tls!.publicKeyPin, 'the same key: the public-key pin holds');
        assert.ok(second.tls!.names.includes('a.garrison.test') && second.tls!.names.includes('b.garrison.test'));
        assert.ok(b.lines.some((l) => /^warn: issued a new server certificate shared by the instances.*restart them once/.test(l)), b.lines.join('\n'));
        // Covered by now: a third instance (or the first, restarted) presents the same certificate.
        const c = await (await shared.instance(key)).start({ names: ['a.garrison.test'] });
        assert.equal(c.tls!.certFingerprint, second.tls!.certFingerprint);
        assert.equal((await a.start({ names: ['a.garrison.test'] })).tls!.certFingerprint, second.tls!.certFingerprint);
        assert.equal(await readFile(path.join(a.dataDir, 'tls', 'server.crt'), 'utf8'), await readFile(path.join(b.dataDir, 'tls', 'server.crt'), 'utf8'));
        // Near expiry, the next start renews it for everyone's names.
        const later = new Date(Date.now() + 380 * 86400_000);
        const d = await shared.instance(key);
        const renewed = await establishInstanceKeys({ settings: new SettingsStore(d.db), secrets: new SecretService({ store: new SecretStore(d.db), key, clock: systemClock, events: null as never, tree: () => null as never }), anyStoredSecret: async () => undefined, dataDir: d.dataDir, tls: { names: ['a.garrison.test'] }, log: { info() {}, warn() {} }, now: later });
        assert.notEqual(renewed.tls!.certFingerprint, second.tls!.certFingerprint);
        assert.ok(renewed.tls!.names.includes('b.garrison.test'));
      } finally {
        await shared.close();
      }
    });

    it('certificates given by the administrator must come from the CA the database knows', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        const first = await a.start();
        const given = async (dir: string, ca: { caKeyPem: string; caCertPem: string }): Promise<TlsOptions> => {
          const keys = await completeTlsKeys({ ca: { keyPem: ca.caKeyPem, certPem: ca.caCertPem } });
          await mkdir(dir, { recursive: true });
          await writeFile(path.join(dir, 'cert.pem'), await issueServerCertificate(keys, ['garrison.test']));
          await writeFile(path.join(dir, 'key.pem'), keys.serverKeyPem);
          await writeFile(path.join(dir, 'ca.pem'), keys.caCertPem);
          return { certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem'), caFile: path.join(dir, 'ca.pem') };
        };
        const b = await shared.instance(key);
        const foreign = await completeTlsKeys({});
        await assert.rejects(b.start(await given(path.join(b.dataDir, 'foreign'), foreign)), refused(/certificate authority \(--tls-ca .*ca\.pem, SHA-256 [0-9a-f]{64}\) is not the one the database knows.*issued by that CA/));
        const sharedCa = { caKeyPem: await readFile(path.join(a.dataDir, 'tls', 'ca.key'), 'utf8'), caCertPem: await readFile(path.join(a.dataDir, 'tls', 'ca.crt'), 'utf8') };
        const own = await b.start(await given(path.join(b.dataDir, 'own'), sharedCa));
        assert.equal(own.tls!.generated, false);
        assert.equal(own.tls!.caFingerprint, first.tls!.caFingerprint);
        assert.notEqual(own.tls!.publicKeyPin, first.tls!.publicKeyPin, 'given certificates stay per instance');
      } finally {
        await shared.close();
      }
    });

    it('a database whose first instance gave its own certificates refuses an instance that would make its own CA', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        const ca = await completeTlsKeys({});
        await writeFile(path.join(a.dataDir, 'cert.pem'), await issueServerCertificate(ca, ['garrison.test']));
        await writeFile(path.join(a.dataDir, 'key.pem'), ca.serverKeyPem);
        await writeFile(path.join(a.dataDir, 'ca.pem'), ca.caCertPem);
        await a.start({ certFile: path.join(a.dataDir, 'cert.pem'), keyFile: path.join(a.dataDir, 'key.pem'), caFile: path.join(a.dataDir, 'ca.pem') });
        await assert.rejects((await shared.instance(key)).start(), refused(/CA given by the administrator .* give it --tls-cert, --tls-key and --tls-ca issued by that CA/));
        // Plain HTTP behind a proxy needs no TLS material, and shares the signing key all the same.
        const plain = await (await shared.instance(key)).start(false);
        assert.equal(plain.tls, null);
      } finally {
        await shared.close();
      }
    });

    it('a database from the previous version knows only the signing public key: a new instance says to start the first once', async () => {
      const shared = await sharedDatabase(kind);
      try {
        const key = randomBytes(32);
        const a = await shared.instance(key);
        const secrets = new SecretService({ store: new SecretStore(a.db), key, clock: systemClock, events: null as never, tree: () => null as never });
        const old = await SigningKey.loadOrCreate(a.dataDir);
        await checkInstanceKeys({ settings: new SettingsStore(a.db), secrets, anyStoredSecret: async () => undefined, signingPublicKeyPem: old.publicKeyPem });
        const b = await shared.instance(key);
        await assert.rejects(b.start(), refused(/only by its public key .* Start an instance that has it/));
        await a.start();
        assert.equal((await b.start()).signingKey.publicKeyPem, old.publicKeyPem);
      } finally {
        await shared.close();
      }
    });
  });
}
