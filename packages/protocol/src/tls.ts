/**
 * How agents, the CLI and installers trust a Garrison server: every server has its own
 * certificate authority (or one it was given), and clients pin that CA. The pin travels as
 * the SHA-256 fingerprint of the CA certificate (64 hex digits); a client that has only the
 * fingerprint fetches the CA from `AGENT_CA_PATH` over an unverified connection, checks the
 * fingerprint and that the server's certificate was issued by that CA, and from then on
 * verifies every connection against the CA alone (hostname included). See ADR 0009.
 */
import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import { Agent, fetch as undiciFetch } from 'undici';

/** Public: the server's CA certificate (PEM). Clients must check it against a fingerprint they already hold. */
export const AGENT_CA_PATH = '/agent/v1/ca';

const FINGERPRINT_RE = /^[0-9a-f]{64}$/;

/** Accepts `AB:CD:…`, `sha256:abcd…` or plain hex; returns 64 lowercase hex digits, or null. */
export function normalizeFingerprint(input: string): string | null {
  const s = input.trim().toLowerCase().replace(/^sha-?256[:/]*/, '').replace(/[:\s]/g, '');
  return FINGERPRINT_RE.test(s) ? s : null;
}

/** SHA-256 of the first certificate's DER encoding, as 64 lowercase hex digits. */
export function certificateFingerprint(pem: string | Buffer): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** curl's `--pinnedpubkey` form: `sha256//` and the base64 SHA-256 of the certificate's SubjectPublicKeyInfo. */
export function publicKeyPin(pem: string | Buffer): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(spki).digest('base64')}`;
}

export class TrustError extends Error {
  readonly code: 'TLS_REQUIRED' | 'CA_FINGERPRINT_MISMATCH' | 'CA_UNAVAILABLE' | 'CA_INVALID';
  constructor(code: TrustError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** Refuses a server address that is not https: agents and the CLI talk to servers over TLS only. */
export function requireHttps(serverUrl: string): string {
  let u: URL;
  try {
    u = new URL(serverUrl);
  } catch {
    throw new TrustError('TLS_REQUIRED', `"${serverUrl}" is not a valid server address (expected https://host:port)`);
  }
  if (u.protocol !== 'https:') throw new TrustError('TLS_REQUIRED', `"${serverUrl}" is not an https:// address: Garrison agents talk to servers over TLS only`);
  return serverUrl.replace(/\/+$/, '');
}

/**
 * Fetches the server's CA over an unverified TLS connection and accepts it only if its
 * fingerprint is the expected one and the certificate the server presented in that same
 * connection was issued by it: a server that does not hold the CA's key cannot pass.
 */
export async function fetchPinnedCa(serverUrl: string, expectedFingerprint: string): Promise<string> {
  const fp = normalizeFingerprint(expectedFingerprint);
  if (!fp) throw new TrustError('CA_INVALID', 'the CA fingerprint must be 64 hex digits (SHA-256)');
  const base = requireHttps(serverUrl);
  const { pem, peer } = await new Promise<{ pem: string; peer: Buffer | null }>((resolve, reject) => {
    const req = https.get(base + AGENT_CA_PATH, { rejectUnauthorized: false, timeout: 15_000 }, (res) => {
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
      const peerRaw = cert && cert.raw ? cert.raw : null;
      if (res.statusCode !== 200) {
        res.resume();
        reject(new TrustError('CA_UNAVAILABLE', `the server answered HTTP ${res.statusCode} for its CA certificate`));
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > 64 * 1024) req.destroy(new Error('CA certificate too large'));
      });
      res.on('end', () => resolve({ pem: body, peer: peerRaw }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(new TrustError('CA_UNAVAILABLE', `could not fetch the server's CA certificate: ${err.message}`)));
  });
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(pem);
  } catch {
    throw new TrustError('CA_INVALID', 'the server sent a CA certificate that cannot be read');
  }
  const got = createHash('sha256').update(ca.raw).digest('hex');
  if (got !== fp) throw new TrustError('CA_FINGERPRINT_MISMATCH', `the server's CA fingerprint is ${got}, not the expected ${fp}: refusing to trust this server`);
  if (!peer || !new X509Certificate(peer).verify(ca.publicKey)) {
    throw new TrustError('CA_FINGERPRINT_MISMATCH', "the server's certificate was not issued by the pinned CA: refusing to trust this server");
  }
  return pem;
}

/** An undici dispatcher that trusts only the given CA (hostname checked as usual). */
export function pinnedDispatcher(caPem: string): Agent {
  return new Agent({ connect: { ca: caPem }, keepAliveTimeout: 10_000 });
}

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/** fetch() that trusts only the given CA; without one, the platform's trust store. */
export function pinnedFetch(caPem: string | null | undefined): FetchLike {
  if (!caPem) return (url, init) => fetch(url, init);
  const dispatcher = pinnedDispatcher(caPem);
  return (url, init) => undiciFetch(url, { ...(init as object), dispatcher } as never) as unknown as Promise<Response>;
}
