/**
 * Server task "repository-download" (issue 6): pulls new packages into the master repository
 * from an upstream source, either another Garrison server (server to server: its CA pinned by
 * fingerprint as agents and the CLI pin it, an API token of the upstream, every package's
 * upstream Ed25519 signature checked) or a signed feed (update-feed.ts) in a folder or on an
 * HTTP(S) host.
 *
 * Only verified bytes land. Each archive is streamed to a temporary folder of its own in the
 * data folder (never the repository's), counted against the size the source vouches for and
 * hashed as it arrives; its SHA-256 must be the signed one and the manifest inside must name
 * the same product and version (and, where the source signed it, be the signed manifest).
 * Only then is it checked in through RepositoryService.add, the same path as an upload, so
 * the package is re-signed with this server's key, audited ("audit.repository.added") and
 * announced (RepositoryService onContent and the bus's repository.content): deployments replan and "repository-content" server tasks fire.
 *
 * A package that fails its checks is refused (a warning; it never lands) and the others still
 * land; when every package is refused the run fails; a source that cannot be trusted (CA pin, index signature) fails the run before any
 * archive is fetched. Versions already in the repository are skipped, so a scheduled run that
 * finds nothing new is cheap. An older version than the one the target branch holds lands
 * outside the branches (ready to promote) instead of demoting the newer one.
 */
import { createHash, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, realpath, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from 'typebox';
import { BranchSchema, MAX_PACKAGE_BYTES, PackageManifest, SecretRefSchema, checker, packageSigningPayload, type Branch, type VersionScheme } from '@garrison/protocol';
import { fetchPinnedCa, normalizeFingerprint, pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import { compareVersions, productVersionSchemes, versionSchemeOf } from '@garrison/core';
import { AppError } from '../errors.ts';
import { systemActor } from '../services/actor.ts';
import { readManifest } from '../services/repository-service.ts';
import { defineServerTaskType, throwIfStopped, type ServerTaskContext } from './server-task.ts';
import { FEED_INDEX_FILE, FEED_SIGNATURE_FILE, MAX_FEED_INDEX_BYTES, ed25519PublicKey, keyFingerprint, manifestSha256, verifyFeedIndex } from './update-feed.ts';

const Fingerprint = Type.String({ minLength: 64, maxLength: 200, description: "SHA-256 fingerprint of the CA certificate (64 hex digits; AB:CD:… or sha256: forms accepted), as agents and the CLI pin it" });
const PublicKeyPem = Type.String({ minLength: 40, maxLength: 8192, description: 'Ed25519 public key (PEM, "-----BEGIN PUBLIC KEY-----") whose signatures are trusted' });
const GarrisonSource = Type.Object(
  {
    kind: Type.Literal('garrison'),
    url: Type.String({ pattern: '^https://', maxLength: 2048, description: 'The upstream Garrison server, https://host:port' }),
    token: SecretRefSchema,
    caFingerprint: Fingerprint,
    signingPublicKey: Type.Optional({ ...PublicKeyPem, description: "The upstream's package-signing key (PEM); when absent it is fetched from the pinned, authenticated upstream" }),
    branch: Type.Optional({ ...BranchSchema, description: 'The upstream branch to pull (default current)' }),
  },
  { additionalProperties: false },
);
const FeedSource = Type.Object(
  {
    kind: Type.Literal('feed'),
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'The feed folder: https:// or http:// URL, file:// URL or absolute path (a trailing /index.json is allowed)' }),
    publicKey: { ...PublicKeyPem, description: 'The Ed25519 public key (PEM) that signs index.json' },
    caFingerprint: Type.Optional({ ...Fingerprint, description: 'For an https feed with a private CA: the SHA-256 fingerprint of a certificate of the chain the host presents (its CA)' }),
  },
  { additionalProperties: false },
);
export const RepositoryDownloadSettings = Type.Object(
  {
    source: Type.Union([GarrisonSource, FeedSource]),
    products: Type.Optional(Type.Array(PackageManifest.properties.product, { minItems: 1, maxItems: 500, description: 'Only these products (default all)' })),
    branch: Type.Optional(Type.Union([BranchSchema, Type.Null()], { description: 'The local branch new packages land in (default current; null: no branch)' })),
    maxPackages: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'At most this many downloads per run; the rest wait for the next run' })),
  },
  { additionalProperties: false },
);
export type RepositoryDownloadSettings = Static<typeof RepositoryDownloadSettings>;

type ParsedSource =
  | { kind: 'garrison'; base: string; caFingerprint: string; signer: KeyObject | null; branch: Branch }
  | { kind: 'feed'; label: string; folder: string; signer: KeyObject }
  | { kind: 'feed'; label: string; url: URL; caFingerprint: string | null; signer: KeyObject };

/** A package a source offers, with what must hold for its archive to land. */
interface Offer {
  product: string;
  version: string;
  sha256: string;
  size: number;
  /** Hash of the manifest the source vouches for; the manifest inside the archive must hash to it. */
  manifestSha256?: string;
  /** The version scheme the source's manifest names, where the source lists manifests (a Garrison upstream). */
  versionScheme?: VersionScheme;
  /** Checks made before any byte is fetched (the upstream signature); throws a reason. */
  precheck?(): void;
  open(signal: AbortSignal): Promise<Readable>;
}

function httpUrl(text: string, what: string, httpsOnly: boolean): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error(`${what} is not a valid URL`);
  }
  if (u.protocol !== 'https:' && (httpsOnly || u.protocol !== 'http:')) throw new Error(`${what} must be an ${httpsOnly ? 'https://' : 'https:// or http://'} URL`);
  // Not echoed: the text may hold the credentials this refuses.
  if (u.username || u.password) throw new Error(`${what} must not carry credentials${httpsOnly ? ': the API token goes in source.token, as a secret' : ''}`);
  if (u.search || u.hash) throw new Error(`${what} must not have a query or fragment`);
  return u;
}

function parseSource(src: RepositoryDownloadSettings['source']): ParsedSource {
  if (src.kind === 'garrison') {
    const u = httpUrl(src.url, 'source.url', true);
    const caFingerprint = normalizeFingerprint(src.caFingerprint);
    if (!caFingerprint) throw new Error('source.caFingerprint must be the SHA-256 fingerprint of the upstream CA (64 hex digits), as `garrison server` prints it at start');
    const signer = src.signingPublicKey ? ed25519PublicKey(src.signingPublicKey, 'source.signingPublicKey') : null;
    return { kind: 'garrison', base: `${u.origin}${u.pathname.replace(/\/+$/, '')}`, caFingerprint, signer, branch: src.branch ?? 'current' };
  }
  const signer = ed25519PublicKey(src.publicKey, 'source.publicKey');
  const text = src.url.trim();
  if (/^https?:\/\//i.test(text)) {
    const u = httpUrl(text, 'source.url', false);
    u.pathname = u.pathname.replace(/\/index\.json$/, '').replace(/\/*$/, '/');
    let caFingerprint: string | null = null;
    if (src.caFingerprint !== undefined) {
      if (u.protocol !== 'https:') throw new Error('source.caFingerprint applies to https:// feeds only');
      caFingerprint = normalizeFingerprint(src.caFingerprint);
      if (!caFingerprint) throw new Error('source.caFingerprint must be a SHA-256 fingerprint (64 hex digits)');
    }
    return { kind: 'feed', label: u.href, url: u, caFingerprint, signer };
  }
  if (src.caFingerprint !== undefined) throw new Error('source.caFingerprint applies to https:// feeds only');
  let folder: string;
  if (/^file:/i.test(text)) {
    try {
      folder = fileURLToPath(text);
    } catch (err) {
      throw new Error(`source.url is not a usable file:// URL: ${(err as Error).message}`);
    }
  } else if (path.isAbsolute(text)) folder = text;
  else throw new Error('source.url must be an https:// or http:// URL, a file:// URL or an absolute folder path');
  folder = path.resolve(folder.replace(/[\\/]index\.json$/, ''));
  return { kind: 'feed', label: folder, folder, signer };
}

/** Enough of an upstream list entry to verify it; the rest is ignored. */
const UpstreamPackage = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 100 }),
  product: Type.String({ maxLength: 64 }),
  version: Type.String({ maxLength: 64 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  signature: Type.String({ maxLength: 200 }),
  size: Type.Integer({ minimum: 1, maximum: MAX_PACKAGE_BYTES }),
  manifest: Type.Record(Type.String(), Type.Unknown()),
});
const upstreamChecker = checker(UpstreamPackage);

/** A package list entry is about 1 KB with its manifest: room for tens of thousands. */
const MAX_LIST_BYTES = 64 * 1024 * 1024;
const metaSignal = (signal: AbortSignal) => AbortSignal.any([signal, AbortSignal.timeout(60_000)]);

/** fetch() says only "fetch failed"; the reason (refused connection, untrusted certificate) is its cause. */
function networkError(err: unknown): string {
  const e = err as Error & { cause?: { message?: string } };
  return e.cause?.message ? `${e.message}: ${e.cause.message}` : e.message;
}

/** What a refusing HTTP server said, shortened, with a hint for the usual causes. */
async function httpProblem(res: Response, what: string): Promise<string> {
  let detail = '';
  try {
    const b = (await res.json()) as { error?: { code?: string; message?: string } };
    if (b?.error) detail = ` (${String(b.error.code)}: ${String(b.error.message).slice(0, 300)})`;
  } catch {
    /* not a Garrison error body */
  }
  const hint = res.status === 401 ? ': check the API token in the secret source.token names' : res.status === 403 ? ": the token's administrator may not read the repository" : '';
  return `${what} answered HTTP ${res.status}${detail}${hint}`;
}

/** A response body as bytes, refused beyond `limit` without reading the rest. */
async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  if (Number(res.headers.get('content-length') ?? 0) > limit) throw new Error(`${what} is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of Readable.fromWeb(res.body as never) as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new Error(`${what} is larger than ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

async function openHttp(fetcher: FetchLike, url: string, init: RequestInit, what: string): Promise<Readable> {
  let res: Response;
  try {
    res = await fetcher(url, init);
  } catch (err) {
    throw new Error(`${what} could not be reached: ${networkError(err)}`);
  }
  if (!res.ok || !res.body) throw new Error(await httpProblem(res, what));
  return Readable.fromWeb(res.body as never);
}

async function garrisonOffers(s: Extract<ParsedSource, { kind: 'garrison' }>, token: string, ctx: ServerTaskContext): Promise<Offer[]> {
  let caPem: string;
  try {
    caPem = await fetchPinnedCa(s.base, s.caFingerprint);
  } catch (err) {
    throw new Error(`the upstream server ${s.base} cannot be trusted: ${(err as Error).message} (check source.caFingerprint)`);
  }
  const f = pinnedFetch(caPem);
  const headers = { authorization: `Bearer ${token}` };
  const getJson = async (p: string, what: string): Promise<unknown> => {
    let res: Response;
    try {
      res = await f(s.base + p, { headers, signal: metaSignal(ctx.signal) });
    } catch (err) {
      throw new Error(`${what} could not be fetched from ${s.base}: ${networkError(err)}`);
    }
    if (!res.ok) throw new Error(await httpProblem(res, `the upstream server (${what})`));
    try {
      return JSON.parse((await readLimited(res, MAX_LIST_BYTES, what)).toString('utf8'));
    } catch (err) {
      throw new Error(`${what} from ${s.base} is unreadable: ${(err as Error).message}`);
    }
  };
  let signer = s.signer;
  if (!signer) {
    const k = (await getJson('/api/v1/repository/signing-key', 'its signing key')) as { publicKey?: unknown };
    signer = ed25519PublicKey(typeof k?.publicKey === 'string' ? k.publicKey : '', "the upstream's signing key");
  }
  ctx.output(`upstream ${s.base}: CA ${s.caFingerprint.slice(0, 16)}… pinned; signing key ${keyFingerprint(signer)} (${s.signer ? 'configured' : 'fetched from the upstream'})`);
  // The list pages (ADR 0021): follow nextCursor. An upstream older than the paging answers a bare array.
  const list: unknown[] = [];
  for (let cursor: string | null = null, pages = 0; ; pages++) {
    const answer = (await getJson(`/api/v1/repository/packages?branch=${s.branch}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, 'its package list')) as unknown;
    if (Array.isArray(answer)) {
      list.push(...answer);
      break;
    }
    const page = answer as { items?: unknown; nextCursor?: unknown } | null;
    if (!page || !Array.isArray(page.items)) throw new Error(`the upstream server's package list is not a list`);
    list.push(...page.items);
    if (typeof page.nextCursor !== 'string' || !page.nextCursor) break;
    if (pages >= 100) throw new Error(`the upstream server's package list goes on past 100 pages`);
    cursor = page.nextCursor;
  }
  const key = signer;
  return list.map((p: unknown, i): Offer => {
    if (!upstreamChecker.check(p)) {
      const name = typeof p === 'object' && p ? `${String((p as { product?: unknown }).product)} ${String((p as { version?: unknown }).version)}` : `#${i}`;
      return { product: name, version: '', sha256: '', size: 0, precheck: () => { throw new Error('the upstream listed it in an unreadable form'); }, open: () => Promise.reject(new Error('unreachable')) };
    }
    const mHash = manifestSha256(p.manifest);
    return {
      product: p.product,
      version: p.version,
      sha256: p.sha256,
      size: p.size,
      manifestSha256: mHash,
      versionScheme: versionSchemeOf(p.manifest),
      precheck() {
        const payload = packageSigningPayload({ product: p.product, version: p.version, sha256: p.sha256, manifestSha256: mHash });
        let ok = false;
        try {
          ok = verify(null, Buffer.from(payload, 'utf8'), key, Buffer.from(p.signature, 'base64'));
        } catch {
          ok = false;
        }
        if (!ok || p.manifest.product !== p.product || p.manifest.version !== p.version) throw new Error("the upstream signature does not verify with the upstream's signing key");
      },
      open: (signal) => openHttp(f, `${s.base}/api/v1/repository/packages/${encodeURIComponent(p.id)}/archive`, { headers, signal }, 'the upstream server (archive)'),
    };
  });
}

/**
 * The pin for an https feed on a private CA: the certificate with this fingerprint must be in
 * the chain the host presents. It is read over an unverified connection and then used as the
 * only trusted CA for every request, which verifies chain and host name as usual; a host that
 * merely sends someone's CA certificate without its key fails there.
 */
async function caFromPresentedChain(url: URL, fingerprint: string): Promise<string> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const peer = await new Promise<tls.DetailedPeerCertificate>((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(url.port || 443), rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) });
    socket.setTimeout(15_000, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate(true));
      socket.end();
    });
    socket.once('error', (err) => reject(new Error(`the feed host ${url.host} cannot be reached over TLS: ${err.message}`)));
  });
  for (let c: tls.DetailedPeerCertificate | undefined = peer, n = 0; c?.raw && n < 10; n++) {
    if (createHash('sha256').update(c.raw).digest('hex') === fingerprint) return new X509Certificate(c.raw).toString();
    if (c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  throw new Error(`the feed host ${url.host} presented no certificate with the SHA-256 fingerprint ${fingerprint} in its chain: check source.caFingerprint (the host must send its CA in the chain)`);
}

async function readFolderFile(folder: string, name: string, limit: number): Promise<Buffer> {
  const file = path.join(folder, name);
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`the feed folder ${folder} has no readable ${name} (${err.code ?? err.message})`);
  });
  if (st.size > limit) throw new Error(`${name} is larger than ${limit} bytes`);
  return readFile(file);
}

async function feedOffers(s: Extract<ParsedSource, { kind: 'feed' }>, ctx: ServerTaskContext): Promise<Offer[]> {
  let read: (name: string, limit: number) => Promise<Buffer>;
  let open: (file: string, signal: AbortSignal) => Promise<Readable>;
  if ('folder' in s) {
    const root = await realpath(s.folder).catch(() => {
      throw new Error(`the feed folder ${s.folder} does not exist or cannot be read`);
    });
    read = (name, limit) => readFolderFile(root, name, limit);
    open = async (file) => {
      // The name pattern already forbids "..": realpath catches links leading out of the folder.
      const full = await realpath(path.join(root, file)).catch(() => {
        throw new Error(`${file} is missing from the feed folder`);
      });
      if (!full.startsWith(root + path.sep)) throw new Error(`${file} leads outside the feed folder`);
      return createReadStream(full);
    };
  } else {
    const fetcher = pinnedFetch(s.caFingerprint ? await caFromPresentedChain(s.url, s.caFingerprint) : null);
    read = async (name, limit) => {
      let res: Response;
      try {
        res = await fetcher(new URL(name, s.url).href, { signal: metaSignal(ctx.signal) });
      } catch (err) {
        throw new Error(`${name} could not be fetched from ${s.label}: ${networkError(err)}`);
      }
      if (!res.ok) throw new Error(await httpProblem(res, `the feed host (${name})`));
      return readLimited(res, limit, name);
    };
    open = (file, signal) => {
      const u = new URL(file, s.url);
      if (u.origin !== s.url.origin || !u.pathname.startsWith(s.url.pathname)) return Promise.reject(new Error(`${file} leads outside the feed`));
      return openHttp(fetcher, u.href, { signal }, `the feed host (${file})`);
    };
  }
  const [indexBytes, sig] = await Promise.all([read(FEED_INDEX_FILE, MAX_FEED_INDEX_BYTES), read(FEED_SIGNATURE_FILE, 4096)]);
  let index;
  try {
    index = verifyFeedIndex(indexBytes, sig.toString('utf8'), s.signer);
  } catch (err) {
    throw new Error(`the feed ${s.label} is refused: ${(err as Error).message}`);
  }
  ctx.output(`feed ${s.label}: index of ${index.createdAt} lists ${index.packages.length} package(s); signature verified with key ${keyFingerprint(s.signer)}`);
  return index.packages.map((e) => ({ product: e.product, version: e.version, sha256: e.sha256, size: e.size, ...(e.manifestSha256 ? { manifestSha256: e.manifestSha256 } : {}), open: (signal) => open(e.file, signal) }));
}

/**
 * Streams the archive to `tmp`, refusing it as soon as it outgrows the size the source vouched
 * for, then checks hash, size and the manifest inside. Throws the reason for a refusal.
 */
async function fetchVerified(o: Offer, tmp: string, signal: AbortSignal): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    await o.open(signal),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > o.size) return done(new Error(`the archive is larger than the ${o.size} bytes the source lists`));
        hash.update(chunk);
        done(null, chunk);
      },
    }),
    createWriteStream(tmp, { mode: 0o600 }),
    { signal },
  );
  const sha = hash.digest('hex');
  if (size !== o.size || sha !== o.sha256) throw new Error(`the archive (SHA-256 ${sha}, ${size} bytes) is not the signed one (SHA-256 ${o.sha256}, ${o.size} bytes)`);
  const m = (await readManifest(tmp)) as { product?: unknown; version?: unknown } | null;
  if (m?.product !== o.product || m?.version !== o.version) throw new Error(`the archive holds ${String(m?.product)} ${String(m?.version)}, not what the source lists`);
  if (o.manifestSha256 && manifestSha256(m) !== o.manifestSha256) throw new Error('the manifest inside the archive is not the signed one');
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export const repositoryDownloadTaskType = defineServerTaskType<RepositoryDownloadSettings>({
  type: 'repository-download',
  name: 'Download updates to the repository',
  description:
    'Pulls new packages into the master repository from another Garrison server (pinned CA, API token, upstream signatures checked) or from a signed feed (folder or HTTP(S)); only verified packages land, re-signed with this server\'s key.',
  settingsSchema: RepositoryDownloadSettings,
  validate(settings) {
    try {
      parseSource(settings.source);
      return [];
    } catch (err) {
      return [(err as Error).message];
    }
  },
  async run(settings, ctx) {
    const src = parseSource(settings.source);
    const branch: Branch | null = settings.branch === undefined ? 'current' : settings.branch;
    ctx.progress(0, 'reading the source');
    let offers: Offer[];
    if (src.kind === 'garrison') {
      // Resolved by the runner from the secret reference; never printed.
      const token = (settings.source as { token?: unknown }).token;
      if (typeof token !== 'string' || !token) throw new Error('source.token did not resolve to an API token: check the secret it names');
      offers = await garrisonOffers(src, token, ctx);
    } else offers = await feedOffers(src, ctx);
    throwIfStopped(ctx.signal);

    const wanted = settings.products ? new Set(settings.products) : null;
    const repo = ctx.repository;
    const local = await repo.list(systemActor);
    const present = new Set(local.map((p) => `${p.product} ${p.version}`));
    // Oldest first within a product, so that the newest of several new versions ends up in the
    // branch: ordered by the product's scheme here, else the one the source names, else the
    // default. A feed names none, so a new dpkg product from a feed may land out of order; the
    // comparison with the branch's holder below (by the scheme of what landed) still keeps the
    // newest in the branch. A version that does not parse under its scheme is refused by add().
    const localSchemes = productVersionSchemes(local);
    const schemeOf = (o: Offer) => localSchemes.get(o.product) ?? o.versionScheme;
    offers = offers.filter((o) => !wanted || wanted.has(o.product)).sort((a, b) => (a.product === b.product ? compareVersions(a.version, b.version, schemeOf(a)) : a.product < b.product ? -1 : 1));
    const landed: { product: string; version: string; branch: Branch | null; id: string }[] = [];
    const refused: { product: string; version: string; reason: string; code?: string }[] = [];
    let skipped = 0;
    let deferred = 0;
    let bytes = 0;
    ctx.progress(10, `${offers.length} package(s) offered`);

    const tmpDir = await mkdtemp(path.join(ctx.dataDir, '.repository-download-'));
    try {
      for (const [i, o] of offers.entries()) {
        throwIfStopped(ctx.signal);
        const name = `${o.product} ${o.version}`;
        if (present.has(name)) {
          skipped++;
          ctx.output(`skipped ${name}: already in the repository`);
          continue;
        }
        if (settings.maxPackages !== undefined && landed.length + refused.length >= settings.maxPackages) {
          deferred++;
          continue;
        }
        ctx.progress(10 + Math.floor((85 * i) / offers.length), `downloading ${name}`);
        const tmp = path.join(tmpDir, `${i}.tgz`);
        try {
          o.precheck?.();
          await fetchVerified(o, tmp, ctx.signal);
          const held = branch ? await repo.inBranch(o.product, branch) : undefined;
          const into = held && compareVersions(held.version, o.version, versionSchemeOf(held.manifest)) > 0 ? null : branch;
          const pkg = await repo.add(systemActor, createReadStream(tmp), into);
          landed.push({ product: pkg.product, version: pkg.version, branch: into, id: pkg.id });
          present.add(name);
          bytes += pkg.size;
          ctx.output(`downloaded ${name} (${formatBytes(pkg.size)}) into ${into ?? 'the repository (no branch)'}${into !== branch ? `: ${branch} holds the newer ${held!.version}` : ''}`);
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          if (err instanceof AppError && err.code === 'CONFLICT') {
            skipped++;
            ctx.output(`skipped ${name}: already in the repository`);
            continue;
          }
          const reason = (err as Error).message;
          // The repository's own refusals (VERSION_INVALID, VERSION_SCHEME_MISMATCH, …) keep their code.
          const code = err instanceof AppError ? err.code : undefined;
          refused.push({ product: o.product, version: o.version, reason, ...(code ? { code } : {}) });
          ctx.output(`refused ${name}: ${reason}${code ? ` (${code})` : ''}`);
        } finally {
          await rm(tmp, { force: true });
        }
      }
    } finally {
      await rm(tmpDir, { recursive: true, force: true });
    }
    ctx.progress(100);
    if (deferred) ctx.output(`${deferred} more package(s) wait for the next run (maxPackages ${settings.maxPackages})`);
    const label = src.kind === 'garrison' ? src.base : src.label;
    // Every package refused and none usable: most likely the wrong signer or a broken source,
    // so the run fails; refusals beside packages already here or just landed are warnings.
    if (refused.length && !landed.length && !skipped) {
      throw new Error(`nothing landed from ${label}: ${refused.length} package(s) refused, e.g. ${refused[0]!.product} ${refused[0]!.version}: ${refused[0]!.reason}`);
    }
    const summary = `${landed.length} package(s) downloaded (${formatBytes(bytes)}), ${skipped} already present${refused.length ? `, ${refused.length} refused` : ''}${deferred ? `, ${deferred} deferred` : ''} from ${label}`;
    return {
      summary,
      ...(refused.length ? { warnings: refused.map((r) => `${r.product} ${r.version} refused: ${r.reason}`) } : {}),
      data: { source: label, checked: offers.length, downloaded: landed.length, skipped, refused, deferred, bytes, packages: landed },
    };
  },
});
