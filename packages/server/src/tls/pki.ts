/**
 * The server's own certificate authority and server certificate (ADR 0009). On first start
 * the server creates, in `<data>/tls/`, an ECDSA P-256 CA (20 years) and a server key and
 * certificate issued by it; agents pin the CA. The server certificate is re-issued, with the
 * same key, when it nears expiry or no longer covers the server's names, so neither the CA
 * pin of agents nor the public-key pin of installer one-liners changes. An administrator may
 * give a certificate, key and CA instead (`--tls-cert --tls-key --tls-ca`).
 */
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate as NodeX509, randomBytes } from 'node:crypto';
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

/** Loads the server's TLS material from `<dataDir>/tls`, creating or renewing what is missing. */
export async function loadOrCreateTls(dataDir: string, opts: TlsOptions = {}, log?: (msg: string) => void, now = new Date()): Promise<ServerTls> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile || !opts.caFile) throw new Error('--tls-cert, --tls-key and --tls-ca go together: agents pin the CA that issued the certificate');
    const [cert, key, caPem] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8'), readFile(opts.caFile, 'utf8')]);
    const leaf = new NodeX509(cert);
    if (!leaf.checkIssued(new NodeX509(caPem)) && leaf.fingerprint256 !== new NodeX509(caPem).fingerprint256) throw new Error(`${opts.certFile} was not issued by the CA in ${opts.caFile}`);
    if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error(`${opts.keyFile} is not the key of ${opts.certFile}`);
    return { key, cert, caPem, caFingerprint: certificateFingerprint(caPem), certFingerprint: certificateFingerprint(cert), publicKeyPin: publicKeyPin(cert), caFile: opts.caFile, names: opts.names ?? [], generated: false };
  }
  const dir = path.join(dataDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { caKey: path.join(dir, 'ca.key'), caCert: path.join(dir, 'ca.crt'), key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.crt') };
  const names = defaultNames(opts.names);

  let caKeys: CryptoKeyPair;
  let caCert: x509.X509Certificate;
  if (existsSync(files.caKey) && existsSync(files.caCert)) {
    caKeys = await keyPairFromPem(await readFile(files.caKey, 'utf8'));
    caCert = new x509.X509Certificate(await readFile(files.caCert, 'utf8'));
  } else {
    const k = await newKeyPair();
    caKeys = k.keys;
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      name: `CN=Garrison CA ${randomBytes(4).toString('hex')}, O=Garrison`,
      notBefore: new Date(now.getTime() - DAY),
      notAfter: new Date(now.getTime() + 20 * 365 * DAY),
      signingAlgorithm: SIGN,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    await writeAtomic(files.caKey, k.pem, 0o600);
    await writeAtomic(files.caCert, caCert.toString('pem') + '\n', 0o644);
    log?.(`created the server's certificate authority in ${dir}`);
  }
  const caPem = caCert.toString('pem') + '\n';

  let keyPem: string;
  let serverKeys: CryptoKeyPair;
  if (existsSync(files.key)) {
    keyPem = await readFile(files.key, 'utf8');
    serverKeys = await keyPairFromPem(keyPem);
  } else {
    const k = await newKeyPair();
    keyPem = k.pem;
    serverKeys = k.keys;
    await writeAtomic(files.key, keyPem, 0o600);
  }

  let certPem = existsSync(files.cert) ? await readFile(files.cert, 'utf8') : null;
  let reason = certPem ? null : 'none yet';
  if (certPem) {
    const c = new NodeX509(certPem);
    if (!c.checkIssued(new NodeX509(caPem))) reason = 'not issued by the current CA';
    else if (!c.checkPrivateKey(createPrivateKey(keyPem))) reason = 'not for the current key';
    else if (new Date(c.validTo).getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY) reason = `expires on ${c.validTo}`;
    else if (!covers(certPem, names)) reason = 'does not cover every server name';
  }
  if (reason) {
    certPem = await issueServerCert({ cert: caCert, keys: caKeys }, serverKeys, names, now);
    await writeAtomic(files.cert, certPem, 0o644);
    log?.(`issued the server certificate (${reason}) for ${names.join(', ')}`);
  }
  return {
    key: keyPem,
    cert: certPem! + caPem,
    caPem,
    caFingerprint: certificateFingerprint(caPem),
    certFingerprint: certificateFingerprint(certPem!),
    publicKeyPin: publicKeyPin(certPem!),
    caFile: files.caCert,
    names,
    generated: true,
  };
}
