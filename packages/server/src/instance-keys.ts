/**
 * The keys every server instance on one database must share, established at start.
 *
 * The secret-store key decrypts the secrets in the database; the package signing key signs
 * what agents verify; agents pin the TLS CA, Linux and macOS installer one-liners pin the
 * server key, and the Windows one-liner pins the server certificate itself. A second instance
 * started on its own data folder used to make its own of all of them without a word: every
 * check-in of a device with a secret-using task then failed, its packages carried signatures
 * no agent enrolled elsewhere accepts, and agents refused its certificate.
 *
 * Now joining needs only the database URL and the secret-store key. The secret-store key never
 * enters the database (a sealed check value does, to tell a wrong key at start). Everything
 * else lives there, sealed with it (AES-256-GCM by the secrets service):
 *
 * - the signing private key (and, plainly, its public key, which older versions checked);
 * - the CA's certificate and key and the server key, as one sealed record; the CA certificate
 *   also plainly, as the CA agents pin (it is the only record when the administrator gives
 *   certificates with --tls-cert/--tls-key/--tls-ca: those stay per instance, only their CA
 *   must be the recorded one);
 * - the server certificate, plainly (it is public), with the names it covers.
 *
 * The first instance (or a single server upgraded) stores what its data folder has, making
 * what is missing; a later one with an empty data folder takes them and writes them into its
 * data folder under the usual names and modes, so backups, restore and the rest keep working;
 * one whose own files differ refuses to start with INSTANCE_KEY_MISMATCH and a sentence saying
 * what differs and what to do. Two first instances starting at once agree through
 * insert-if-absent (SettingsStore.setIfAbsent): what each would store is made in memory, the
 * first insert wins, and the loser takes the winner's before writing any file.
 *
 * The trade-off: the CA key now sits in the database as well as in DATA/tls. Whoever reads the
 * database and holds the secret-store key can issue certificates agents trust; that same pair
 * already opens every secret (SSH passwords, SMTP credentials), so it adds little, and the
 * secret-store key is kept out of the database for exactly this reason.
 *
 * Why the server certificate is shared too, not only its key: the Windows one-liner pins the
 * certificate's fingerprint (PowerShell has no simple public-key pin), and behind a load
 * balancer the link made on one instance is fetched from whichever the balancer picks. So the
 * instances present one certificate, covering the union of their names (host names, addresses,
 * `--tls-name`). An instance whose names the shared certificate does not cover (or that finds
 * it near expiry) issues a new one for the union and records it as the next generation
 * (`instance.tls-certificate.N`, insert-if-absent: two doing so at once agree on one and the
 * loser re-checks). The instances already running present the previous certificate until they
 * restart: until then a Windows link made on one may be refused by another; the CA pin of
 * agents and the public-key pin of the other one-liners do not change. The new instance says
 * so in its log, and the README says to restart the others once, or to start the first with
 * every instance's `--tls-name`.
 */
import path from 'node:path';
import { certificateFingerprint } from '@garrison/protocol/tls';
import { AppError } from './errors.ts';
import { SigningKey, SIGNING_KEY_FILE } from './services/signing.ts';
import type { SettingsStore } from './storage/settings-store.ts';
import {
  completeTlsKeys,
  defaultNames,
  isGivenTls,
  issueServerCertificate,
  loadGivenTls,
  publicKeyId,
  readTlsFolder,
  serverCertificateProblem,
  serverTlsOf,
  TLS_FILES,
  tlsDir,
  writeTlsFolder,
  type ServerTls,
  type TlsKeys,
  type TlsOptions,
} from './tls/pki.ts';

const SECRET_CHECK = 'instance.secret-key-check';
const SIGNING_PUBLIC = 'instance.signing-public-key';
const SIGNING_SEALED = 'instance.signing-key.sealed';
const TLS_KEYS_SEALED = 'instance.tls-keys.sealed';
const TLS_CA = 'instance.tls-ca';
/** `{ generation }`: a hint; the records are `instance.tls-certificate.1`, `.2`, … and the highest present is current. */
const TLS_CERT = 'instance.tls-certificate';
const CHECK_PLAIN = 'garrison secret-store key check';
const README = 'see "Running several instances" in the README.';

interface CertificateRecord {
  certPem: string;
  /** Every name the certificate covers: the union of what the instances asked for. */
  names: string[];
}

export interface Sealer {
  encrypt(plain: string): string;
  decrypt(stored: string): string;
}

export interface InstanceKeysLog {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface InstanceKeysDeps {
  settings: Pick<SettingsStore, 'get' | 'set' | 'setIfAbsent'>;
  /** The secrets service (its encrypt/decrypt under the secret-store key). */
  secrets: Sealer;
  /** One secret's ciphertext from the database, if any (for databases from before the check value). */
  anyStoredSecret: () => Promise<string | undefined>;
  dataDir: string;
  /** As ServerConfig.tls: `false` for plain HTTP (no TLS material then). */
  tls: TlsOptions | false;
  log: InstanceKeysLog;
  now?: Date;
}

export interface InstanceKeys {
  signingKey: SigningKey;
  tls: ServerTls | null;
}

const mismatch = (message: string) => new AppError('INSTANCE_KEY_MISMATCH', message);

/**
 * Checks the secret-store key against the database, then takes (or, first, stores) the
 * signing key and TLS material shared by the instances on it, writing what the data folder
 * lacks. Refuses with INSTANCE_KEY_MISMATCH when this instance's own keys differ.
 */
export async function establishInstanceKeys(deps: InstanceKeysDeps): Promise<InstanceKeys> {
  await checkSecretKey(deps);
  const signingKey = await establishSigningKey(deps);
  const tls = deps.tls === false ? null : isGivenTls(deps.tls) ? await checkGivenTls(deps, deps.tls) : await establishGeneratedTls(deps, deps.tls);
  return { signingKey, tls };
}

/**
 * The check of the previous version (secret-store key and signing public key only), which
 * establishInstanceKeys supersedes. Kept for the tests, which make with it a database as that
 * version left it (an upgrade must then store the keys).
 */
export async function checkInstanceKeys(deps: Pick<InstanceKeysDeps, 'settings' | 'secrets' | 'anyStoredSecret'> & { signingPublicKeyPem: string }): Promise<void> {
  await checkSecretKey(deps);
  const signing = await deps.settings.setIfAbsent(SIGNING_PUBLIC, deps.signingPublicKeyPem);
  if (signing !== deps.signingPublicKeyPem) throw mismatch(signingDiffers());
}

async function checkSecretKey(deps: Pick<InstanceKeysDeps, 'settings' | 'secrets' | 'anyStoredSecret'>): Promise<void> {
  const opens = (stored: string, expect?: string): boolean => {
    try {
      const plain = deps.secrets.decrypt(stored);
      return expect === undefined || plain === expect;
    } catch {
      return false;
    }
  };
  const secretKeyHelp =
    'Give this instance the secret-store key of the others (GARRISON_SECRET_KEY, --secret-key-file, or DATA/secret.key copied from the first instance); ' + README;
  let check = await deps.settings.get<string>(SECRET_CHECK);
  if (check === undefined) {
    const existing = await deps.anyStoredSecret();
    if (existing !== undefined && !opens(existing)) {
      throw mismatch(`this server's secret-store key cannot decrypt the secrets already in the database. ${secretKeyHelp}`);
    }
    check = await deps.settings.setIfAbsent(SECRET_CHECK, deps.secrets.encrypt(CHECK_PLAIN));
  }
  if (!opens(check, CHECK_PLAIN)) {
    throw mismatch(`this server's secret-store key is not the one the database was set up with: it could not decrypt its secrets. ${secretKeyHelp}`);
  }
}

function unseal(deps: Pick<InstanceKeysDeps, 'secrets'>, sealed: string, what: string): string {
  try {
    return deps.secrets.decrypt(sealed);
  } catch {
    // The check value opened, so the key is right: the record itself is damaged.
    throw mismatch(`the ${what} stored in the database cannot be opened with this server's secret-store key, although the key's check value can: the record is damaged. Restore the database from a backup; ${README}`);
  }
}

function signingDiffers(): string {
  return `this server's package signing key (DATA/${SIGNING_KEY_FILE}) is not the one the database knows: agents would refuse the packages it signs. Remove DATA/${SIGNING_KEY_FILE} (or move it aside) and start again to take the shared one from the database; ${README}`;
}

async function establishSigningKey(deps: InstanceKeysDeps): Promise<SigningKey> {
  const local = await SigningKey.load(deps.dataDir);
  let sealed = await deps.settings.get<string>(SIGNING_SEALED);
  let stored = false;
  if (sealed === undefined) {
    const recordedPublic = await deps.settings.get<string>(SIGNING_PUBLIC);
    if (recordedPublic !== undefined && local?.publicKeyPem !== recordedPublic) {
      if (local) throw mismatch(signingDiffers());
      // An older version recorded only the public key: the private key is still only in the first instance's folder.
      throw mismatch(
        `the database knows the package signing key of its instances only by its public key (an older version recorded it), so this server cannot take it from there. Start an instance that has it (DATA/${SIGNING_KEY_FILE}) once with this version, which stores it in the database, or copy that file here; ${README}`,
      );
    }
    const candidate = local ?? SigningKey.generate();
    const mine = deps.secrets.encrypt(candidate.privateKeyPem());
    sealed = await deps.settings.setIfAbsent(SIGNING_SEALED, mine);
    stored = sealed === mine;
  }
  const shared = SigningKey.fromPem(unseal(deps, sealed, 'package signing key'));
  if (local && local.publicKeyPem !== shared.publicKeyPem) throw mismatch(signingDiffers());
  const recordedPublic = await deps.settings.setIfAbsent(SIGNING_PUBLIC, shared.publicKeyPem);
  if (recordedPublic !== shared.publicKeyPem) {
    throw mismatch(`the database holds two different package signing keys (a sealed one and another's public key): it was set up by two instances at once with an older version. Restore it from a backup, or keep one instance's key; ${README}`);
  }
  if (!local) {
    await shared.writeTo(deps.dataDir);
    deps.log.info(stored ? `created the package signing key in DATA/${SIGNING_KEY_FILE} and stored it in the database, sealed with the secret-store key` : `took the package signing key shared by the instances on this database into DATA/${SIGNING_KEY_FILE}`);
  } else if (stored) deps.log.info(`stored the package signing key in the database, sealed with the secret-store key, for the other instances on it`);
  return local ?? shared;
}

function caDiffers(mine: string, known: string, remedy: string): string {
  return `this server's certificate authority (${mine}) is not the one the database knows (SHA-256 ${certificateFingerprint(known)}): agents enrolled through the other instances pin that one and would refuse this server. ${remedy} ${README}`;
}

async function checkGivenTls(deps: InstanceKeysDeps, opts: TlsOptions): Promise<ServerTls> {
  const tls = await loadGivenTls(opts);
  const sealed = await deps.settings.get<string>(TLS_KEYS_SEALED);
  // The recorded CA is the one agents pin; the sealed keys only tell it when an instance stopped between the two records.
  const known =
    (await deps.settings.get<string>(TLS_CA)) ??
    (sealed !== undefined ? (JSON.parse(unseal(deps, sealed, 'TLS certificate authority')) as TlsKeys).caCertPem : await deps.settings.setIfAbsent(TLS_CA, tls.caPem));
  if (certificateFingerprint(known) !== tls.caFingerprint) {
    throw mismatch(
      caDiffers(
        `--tls-ca ${opts.caFile}, SHA-256 ${tls.caFingerprint}`,
        known,
        sealed !== undefined
          ? 'Give it a certificate issued by that CA (--tls-cert, --tls-key, --tls-ca), or start it without those options to take the shared certificate.'
          : 'Give it a certificate issued by that CA (--tls-cert, --tls-key, --tls-ca).',
      ),
    );
  }
  return tls;
}

async function establishGeneratedTls(deps: InstanceKeysDeps, opts: TlsOptions): Promise<ServerTls> {
  const now = deps.now ?? new Date();
  const names = defaultNames(opts.names);
  const local = await readTlsFolder(deps.dataDir);
  let sealed = await deps.settings.get<string>(TLS_KEYS_SEALED);
  let stored = false;
  if (sealed === undefined) {
    const recordedCa = await deps.settings.get<string>(TLS_CA);
    if (recordedCa !== undefined && (!local.ca || certificateFingerprint(local.ca.certPem) !== certificateFingerprint(recordedCa))) {
      // The others serve certificates the administrator gave; this one would make its own CA.
      throw mismatch(
        `the instances on this database serve certificates from a CA given by the administrator (SHA-256 ${certificateFingerprint(recordedCa)}), and this server has none from it: give it --tls-cert, --tls-key and --tls-ca issued by that CA; ${README}`,
      );
    }
    const made = await completeTlsKeys(local, now);
    const candidate: TlsKeys = { caKeyPem: made.caKeyPem, caCertPem: made.caCertPem, serverKeyPem: made.serverKeyPem };
    const mine = deps.secrets.encrypt(JSON.stringify(candidate));
    sealed = await deps.settings.setIfAbsent(TLS_KEYS_SEALED, mine);
    stored = sealed === mine;
  }
  const shared = JSON.parse(unseal(deps, sealed, 'TLS certificate authority and server key')) as TlsKeys;
  if (local.ca && (certificateFingerprint(local.ca.certPem) !== certificateFingerprint(shared.caCertPem) || publicKeyId(local.ca.keyPem) !== publicKeyId(shared.caKeyPem))) {
    throw mismatch(caDiffers(`DATA/tls/${TLS_FILES.caCert}, SHA-256 ${certificateFingerprint(local.ca.certPem)}`, shared.caCertPem, 'Remove DATA/tls (or move it aside) and start again to take the shared one from the database.'));
  }
  if (local.serverKeyPem !== undefined && publicKeyId(local.serverKeyPem) !== publicKeyId(shared.serverKeyPem)) {
    throw mismatch(
      `this server's TLS key (DATA/tls/${TLS_FILES.serverKey}) is not the one the database knows: installer one-liners made on the other instances pin that key and would refuse this server. Remove DATA/tls (or move it aside) and start again to take the shared one from the database; ${README}`,
    );
  }
  const recordedCa = await deps.settings.setIfAbsent(TLS_CA, shared.caCertPem);
  if (certificateFingerprint(recordedCa) !== certificateFingerprint(shared.caCertPem)) {
    throw mismatch(
      `the instances on this database serve certificates from a CA given by the administrator (SHA-256 ${certificateFingerprint(recordedCa)}), recorded while this server was starting: give it --tls-cert, --tls-key and --tls-ca issued by that CA; ${README}`,
    );
  }
  const cert = await establishServerCertificate(deps, shared, names, local.serverCertPem, now);
  await writeTlsFolder(deps.dataDir, shared, cert.certPem);
  const dir = tlsDir(deps.dataDir);
  if (stored) deps.log.info(`stored the server's certificate authority and TLS key in the database, sealed with the secret-store key, for the other instances on it (${dir})`);
  else if (!local.ca || local.serverKeyPem === undefined) deps.log.info(`took the certificate authority and TLS key shared by the instances on this database into ${dir}`);
  return serverTlsOf(shared, cert.certPem, cert.names, path.join(dir, TLS_FILES.caCert));
}

async function latestCertificate(settings: InstanceKeysDeps['settings']): Promise<{ generation: number; record: CertificateRecord | undefined }> {
  let generation = (await settings.get<{ generation: number }>(TLS_CERT))?.generation ?? 0;
  let record = generation > 0 ? await settings.get<CertificateRecord>(`${TLS_CERT}.${generation}`) : undefined;
  // The hint may lag behind an instance that recorded a generation and stopped before moving it.
  for (;;) {
    const next = await settings.get<CertificateRecord>(`${TLS_CERT}.${generation + 1}`);
    if (next === undefined) return { generation, record };
    generation += 1;
    record = next;
  }
}

/** The server certificate all instances present: the recorded one when it covers this instance's names and is not near expiry, else a new generation. */
async function establishServerCertificate(deps: InstanceKeysDeps, keys: TlsKeys, names: string[], localCertPem: string | undefined, now: Date): Promise<CertificateRecord> {
  let { generation, record } = await latestCertificate(deps.settings);
  // Each pass either uses the current record or tries to record the next generation; losing that race means another instance just did, so look again.
  for (let attempt = 0; attempt < 5; attempt++) {
    const problem = record ? serverCertificateProblem(keys, record.certPem, names, now) : 'none recorded yet';
    if (record && problem === null) return record;
    const union = [...new Set([...(record?.names ?? []), ...names])].sort();
    // A single server upgraded keeps its certificate, and so the pin of the Windows links it already gave out.
    const keepLocal = !record && localCertPem !== undefined && serverCertificateProblem(keys, localCertPem, union, now) === null;
    const certPem = keepLocal ? localCertPem : await issueServerCertificate(keys, union, now);
    const won = await deps.settings.setIfAbsent<CertificateRecord>(`${TLS_CERT}.${generation + 1}`, { certPem, names: union });
    generation += 1;
    record = won;
    if (won.certPem !== certPem) continue;
    await deps.settings.set(TLS_CERT, { generation });
    if (generation === 1) deps.log.info(keepLocal ? `stored the server certificate in the database for the other instances on it` : `issued the server certificate (${problem}) for ${union.join(', ')}`);
    else {
      deps.log.warn(
        `issued a new server certificate shared by the instances on this database (the previous one: ${problem}) for ${union.join(', ')}. The other instances present the previous one until they restart: restart them once, or Windows installer one-liners (which pin the certificate) made on one instance are refused by another.`,
      );
    }
    return won;
  }
  throw new Error('could not agree with the other instances on a shared server certificate: five generations were recorded while this server started');
}
