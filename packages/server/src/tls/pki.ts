/**
 * The server's own certificate authority and server certificate (ADR 0009). On first start
 * the server creates, in `<data>/tls/`, an ECDSA P-256 CA (20 years) and a server key and
 * certificate issued by it; agents pin the CA. The server certificate is re-issued, with the
 * same key, when it nears expiry or no longer covers the server's names, so neither the CA
 * pin of agents nor the public-key pin of installer one-liners changes. An administrator may
 * give a certificate, key and CA instead (`--tls-cert --tls-key --tls-ca`).
 *
 * Instances sharing a database share the CA, the server key and the certificate: the pieces
 * below (read, complete, check, issue, write) are composed by establishInstanceKeys
 * (instance-keys.ts), which takes them from the database; loadOrCreateTls composes them for a
 * server on its own data folder.
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, webcrypto, X509Certificate as NodeX509, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { certificateFingerprint, publicKeyPin } from '@garrison/protocol/tls';

x509.cryptoProvider.set(webcrypto as never);
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface TlsOptions {
  /** Extra DNS names or addresses the server certificate must cover (`--tls-name`). */
  names?: string[];
  /** A certificate (chain) and key given by the administrator, with the CA agents should pin. */
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /**
   * The key-exchange groups the server accepts, in OpenSSL's colon-separated form
   * (`--tls-groups`). Unset: Node's default, which puts the post-quantum hybrid
   * X25519MLKEM768 first. `X25519:P-256` saves about 8 KB of server memory per connected
   * agent (the client's ML-KEM key share is kept for the connection's life) at the price of
   * that protection against traffic recorded now and decrypted later (ADR 0019).
   */
  groups?: string;
}

export interface ServerTls {
  key: string;
  /** The server certificate followed by the CA: the chain the server presents. */
  cert: string;
  caPem: string;
  /** SHA-256 of the CA certificate: what agents and the CLI pin. */
  caFingerprint: string;
  /** SHA-256 of the server certificate: what the Windows installer one-liner checks. */
  certFingerprint: string;
  /** curl's --pinnedpubkey value for the server key. */
  publicKeyPin: string;
  caFile: string;
  names: string[];
  generated: boolean;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86400_000;
const RENEW_BEFORE_DAYS = 30;

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}

async function keyPairFromPem(pem: string): Promise<CryptoKeyPair> {
  const priv = createPrivateKey(pem);
  return {
    privateKey: priv.toCryptoKey(EC, true, ['sign']) as unknown as CryptoKey,
    publicKey: createPublicKey(priv).toCryptoKey(EC, true, ['verify']) as unknown as CryptoKey,
  };
}

async function newKeyPair(): Promise<{ keys: CryptoKeyPair; pem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey));
  return { keys, pem: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

/** The names a default server certificate covers: loopback, the host name, every interface address, and the extra names. */
export function defaultNames(extra: string[] = []): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1']);
  const host = os.hostname();
  if (host) names.add(host.toLowerCase());
  for (const list of Object.values(os.networkInterfaces())) {
    // Link-local addresses are only meaningful with an interface and change freely.
    for (const a of list ?? []) if (!a.internal && !a.address.toLowerCase().startsWith('fe80:')) names.add(a.address.split('%')[0]!);
  }
  for (const n of extra) if (n.trim()) names.add(n.trim().toLowerCase());
  return [...names].sort();
}

function sanOf(names: string[]): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n })));
}

function covers(certPem: string, names: string[]): boolean {
  const cert = new NodeX509(certPem);
  return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined));
}

async function issueServerCert(ca: { cert: x509.X509Certificate; keys: CryptoKeyPair }, serverKeys: CryptoKeyPair, names: string[], now: Date): Promise<string> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    subject: `CN=${names.find((n) => !isIP(n) && n !== 'localhost') ?? 'garrison-server'}, O=Garrison`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + 397 * DAY),
    signingAlgorithm: SIGN,
    publicKey: serverKeys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      sanOf(names),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return cert.toString('pem') + '\n';
}

/** The lasting part of the server's TLS material: the CA and the server key. The server certificate is issued from them. */
export interface TlsKeys {
  caKeyPem: string;
  caCertPem: string;
  serverKeyPem: string;
}

/** The files of `<dataDir>/tls/`, by role. */
export const TLS_FILES = { caKey: 'ca.key', caCert: 'ca.crt', serverKey: 'server.key', serverCert: 'server.crt' } as const;

export function tlsDir(dataDir: string): string {
  return path.join(dataDir, 'tls');
}

/** What `<dataDir>/tls/` holds today (a CA only counts with both its key and certificate, as it always did). */
export async function readTlsFolder(dataDir: string): Promise<{ ca?: { keyPem: string; certPem: string }; serverKeyPem?: string; serverCertPem?: string }> {
  const dir = tlsDir(dataDir);
  const read = async (name: string) => (existsSync(path.join(dir, name)) ? readFile(path.join(dir, name), 'utf8') : undefined);
  const [caKey, caCert, serverKey, serverCert] = await Promise.all([read(TLS_FILES.caKey), read(TLS_FILES.caCert), read(TLS_FILES.serverKey), read(TLS_FILES.serverCert)]);
  return {
    ...(caKey !== undefined && caCert !== undefined ? { ca: { keyPem: caKey, certPem: caCert } } : {}),
    ...(serverKey !== undefined ? { serverKeyPem: serverKey } : {}),
    ...(serverCert !== undefined ? { serverCertPem: serverCert } : {}),
  };
}

/** Makes whatever of the CA and server key is not given: a new CA (20 years) and a new server key. */
export async function completeTlsKeys(have: { ca?: { keyPem: string; certPem: string }; serverKeyPem?: string }, now = new Date()): Promise<TlsKeys & { created: { ca: boolean; serverKey: boolean } }> {
  let ca = have.ca;
  if (!ca) {
    const k = await newKeyPair();
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      name: `CN=Garrison CA ${randomBytes(4).toString('hex')}, O=Garrison`,
      notBefore: new Date(now.getTime() - DAY),
      notAfter: new Date(now.getTime() + 20 * 365 * DAY),
      signingAlgorithm: SIGN,
      keys: k.keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(k.keys.publicKey),
      ],
    });
    ca = { keyPem: k.pem, certPem: caCert.toString('pem') + '\n' };
  }
  const serverKeyPem = have.serverKeyPem ?? (await newKeyPair()).pem;
  return { caKeyPem: ca.keyPem, caCertPem: ca.certPem, serverKeyPem, created: { ca: !have.ca, serverKey: !have.serverKeyPem } };
}

/** Writes the CA and server key (and certificate, when given) into `<dataDir>/tls/` with the modes they always had; only files that differ are rewritten. */
export async function writeTlsFolder(dataDir: string, keys: TlsKeys, serverCertPem?: string): Promise<void> {
  const dir = tlsDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const put = async (name: string, data: string, mode: number) => {
    const file = path.join(dir, name);
    if (!existsSync(file) || (await readFile(file, 'utf8')) !== data) await writeAtomic(file, data, mode);
  };
  await put(TLS_FILES.caKey, keys.caKeyPem, 0o600);
  await put(TLS_FILES.caCert, keys.caCertPem, 0o644);
  await put(TLS_FILES.serverKey, keys.serverKeyPem, 0o600);
  if (serverCertPem !== undefined) await put(TLS_FILES.serverCert, serverCertPem, 0o644);
}

/** Why a server certificate must be issued anew for these keys and names, or null when it will do. */
export function serverCertificateProblem(keys: TlsKeys, certPem: string | null | undefined, names: string[], now = new Date()): string | null {
  if (!certPem) return 'none yet';
  let c: NodeX509;
  try {
    c = new NodeX509(certPem);
  } catch {
    return 'unreadable';
  }
  if (!c.checkIssued(new NodeX509(keys.caCertPem)) || !c.verify(new NodeX509(keys.caCertPem).publicKey)) return 'not issued by the current CA';
  if (!c.checkPrivateKey(createPrivateKey(keys.serverKeyPem))) return 'not for the current key';
  if (new Date(c.validTo).getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY) return `expires on ${c.validTo}`;
  if (!covers(certPem, names)) return 'does not cover every server name';
  return null;
}

/** A server certificate (397 days) for the server key, issued by the CA, covering the names. */
export async function issueServerCertificate(keys: TlsKeys, names: string[], now = new Date()): Promise<string> {
  const caKeys = await keyPairFromPem(keys.caKeyPem);
  return issueServerCert({ cert: new x509.X509Certificate(keys.caCertPem), keys: caKeys }, await keyPairFromPem(keys.serverKeyPem), names, now);
}

/** SHA-256 of the public key of a PEM private key or certificate (the same for a key and its certificate). */
export function publicKeyId(pem: string): string {
  const key = pem.includes('CERTIFICATE') ? new NodeX509(pem).publicKey : createPublicKey(createPrivateKey(pem));
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** The TLS material a server presents, from its keys and certificate. */
export function serverTlsOf(keys: TlsKeys, certPem: string, names: string[], caFile: string): ServerTls {
  return {
    key: keys.serverKeyPem,
    cert: certPem + keys.caCertPem,
    caPem: keys.caCertPem,
    caFingerprint: certificateFingerprint(keys.caCertPem),
    certFingerprint: certificateFingerprint(certPem),
    publicKeyPin: publicKeyPin(certPem),
    caFile,
    names,
    generated: true,
  };
}

/** Whether the options name a certificate given by the administrator (`--tls-cert --tls-key --tls-ca`). */
export function isGivenTls(opts: TlsOptions): boolean {
  return Boolean(opts.certFile || opts.keyFile);
}

/** Reads and checks a certificate, key and CA given by the administrator. */
export async function loadGivenTls(opts: TlsOptions): Promise<ServerTls> {
  if (!opts.certFile || !opts.keyFile || !opts.caFile) throw new Error('--tls-cert, --tls-key and --tls-ca go together: agents pin the CA that issued the certificate');
  const [cert, key, caPem] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8'), readFile(opts.caFile, 'utf8')]);
  const leaf = new NodeX509(cert);
  if (!leaf.checkIssued(new NodeX509(caPem)) && leaf.fingerprint256 !== new NodeX509(caPem).fingerprint256) throw new Error(`${opts.certFile} was not issued by the CA in ${opts.caFile}`);
  if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error(`${opts.keyFile} is not the key of ${opts.certFile}`);
  return { key, cert, caPem, caFingerprint: certificateFingerprint(caPem), certFingerprint: certificateFingerprint(cert), publicKeyPin: publicKeyPin(cert), caFile: opts.caFile, names: opts.names ?? [], generated: false };
}

/**
 * Loads the server's TLS material from `<dataDir>/tls`, creating or renewing what is missing.
 * A server on its own; instances sharing a database go through establishInstanceKeys
 * (instance-keys.ts), which takes the CA, key and certificate from the database instead.
 */
export async function loadOrCreateTls(dataDir: string, opts: TlsOptions = {}, log?: (msg: string) => void, now = new Date()): Promise<ServerTls> {
  if (isGivenTls(opts)) return loadGivenTls(opts);
  const names = defaultNames(opts.names);
  const local = await readTlsFolder(dataDir);
  const keys = await completeTlsKeys(local, now);
  let certPem = local.serverCertPem ?? null;
  const reason = serverCertificateProblem(keys, certPem, names, now);
  if (reason) certPem = await issueServerCertificate(keys, names, now);
  await writeTlsFolder(dataDir, keys, certPem!);
  if (keys.created.ca) log?.(`created the server's certificate authority in ${tlsDir(dataDir)}`);
  if (reason) log?.(`issued the server certificate (${reason}) for ${names.join(', ')}`);
  return serverTlsOf(keys, certPem!, names, path.join(tlsDir(dataDir), TLS_FILES.caCert));
}
