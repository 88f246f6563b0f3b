/**
 * The REST client: connection settings (options, environment, token file, config file), one
 * `request` that turns every failure into an ApiError with the API's error code, and the
 * errors the CLI maps to exit codes.
 */
import { readFile, writeFile, mkdir, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApiError, GarrisonClient } from '@garrison/client';
import { pinnedFetch } from '@garrison/protocol/tls';
import { userAgent } from './version.ts';
import { UsageError } from './usage-error.ts';

/** An error the API returned (or a transport failure, with a code from the same closed list). Exit code 1. */
export { ApiError };

/** A mistake in how the command was called, or missing connection settings. Exit code 2. */
export { UsageError };

export interface ConnectionOptions {
  server?: string;
  token?: string;
  tokenFile?: string;
  /** A PEM file with the server's CA (else GARRISON_CA, else the one saved by login). */
  ca?: string;
}
export interface Settings {
  server: string;
  token: string;
  /** The CA (PEM) the server's certificate must chain to; null: the system's trust store. */
  ca: string | null;
  /** Where each came from, for `whoami`. */
  source: { server: string; token: string };
}
export interface ConfigFile {
  server?: string;
  token?: string;
  /** The server's CA (PEM), pinned at login. */
  ca?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'garrison', 'cli.json');
}

export async function readConfig(file = configPath()): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as ConfigFile;
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    throw new UsageError(`${file} is not valid JSON; run "garrison login" again`);
  }
}

/** Writes the config file readable by its owner only: it holds an API token. */
export async function writeConfig(config: ConfigFile, file = configPath()): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}

export function normalizeServerUrl(url: string): string {
  let u = url.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) u = `https://${u}`;
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new UsageError(`"${url}" is not a server URL (such as https://127.0.0.1:8420)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`"${url}": the server URL must be http:// or https://`);
  return parsed.toString().replace(/\/+$/, '');
}

/**
 * Connection settings, first found wins: --server / --token, GARRISON_URL / GARRISON_TOKEN,
 * --token-file, then the config file written by `garrison login`. The config file's token is
 * only used with the config file's server, so a token never goes to a server it was not
 * saved for.
 */
export async function resolveSettings(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env, file = configPath(env)): Promise<Settings> {
  let server: string | undefined;
  let serverSource = '';
  if (opts.server) [server, serverSource] = [opts.server, '--server'];
  else if (env.GARRISON_URL) [server, serverSource] = [env.GARRISON_URL, 'GARRISON_URL'];

  let token: string | undefined;
  let tokenSource = '';
  if (opts.token) [token, tokenSource] = [opts.token, '--token'];
  else if (env.GARRISON_TOKEN) [token, tokenSource] = [env.GARRISON_TOKEN, 'GARRISON_TOKEN'];
  else if (opts.tokenFile) {
    try {
      token = (await readFile(opts.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new UsageError(`cannot read the token file ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new UsageError(`the token file ${opts.tokenFile} is empty`);
    tokenSource = opts.tokenFile;
  }

  const caFile = opts.ca ?? env.GARRISON_CA;
  let ca: string | null = null;
  if (caFile) {
    try {
      ca = await readFile(caFile, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const config = await readConfig(file);
  if (!server && config.server) [server, serverSource] = [config.server, file];
  const sameServer = !!config.server && !!server && normalizeServerUrl(config.server) === normalizeServerUrl(server);
  if (!token && config.token && sameServer) [token, tokenSource] = [config.token, file];
  if (!ca && config.ca && sameServer) ca = config.ca;
  if (!server) {
    throw new UsageError('no server given: use --server URL, set GARRISON_URL, or run "garrison login --server URL --token TOKEN"');
  }
  if (!token) {
    throw new UsageError(`no API token for ${server}: use --token TOKEN or --token-file PATH, set GARRISON_TOKEN, or run "garrison login --server URL --token TOKEN"`);
  }
  return { server: normalizeServerUrl(server), token, ca, source: { server: serverSource, token: tokenSource } };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  /** Return the body as text (CSV, JSON lines) rather than parsed JSON. */
  text?: boolean;
  /** A raw body (a package archive) instead of JSON. */
  raw?: { data: Blob; contentType: string };
  timeoutMs?: number;
}

/**
 * The CLI's connection: the typed client (@garrison/client) over a fetch that pins the
 * server's CA, with the CLI's User-Agent (the audit trail records "cli" as the channel).
 * Commands call `api.call(operation, …)`; `request` remains for paths not yet in the contract.
 */
export class Client {
  readonly server: string;
  readonly api: GarrisonClient;
  constructor(server: string, token: string, ca: string | null = null) {
    this.server = server;
    this.api = new GarrisonClient({
      baseUrl: server,
      token,
      fetch: pinnedFetch(ca),
      headers: { 'user-agent': userAgent() },
      transportError: (err) => {
        const code = (err as Error & { cause?: { code?: string; message?: string } }).cause?.code ?? '';
        if (/CERT|SELF_SIGNED|ALTNAME|UNABLE_TO_VERIFY/.test(code)) {
          return new ApiError('SERVER_NOT_TRUSTED', `${server} presented a certificate that is not trusted (${code}): give its CA with --ca FILE or GARRISON_CA, or run "garrison login --server URL --ca-fingerprint SHA256"`);
        }
        return new ApiError('UNAVAILABLE', `cannot reach ${server}: ${code || (err as Error & { cause?: { message?: string } }).cause?.message || err.message}`);
      },
    });
  }

  async request<T = unknown>(method: string, urlPath: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.api.request(method, urlPath, {
      ...(opts.query ? { query: opts.query } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      ...(opts.raw ? { body: opts.raw.data, contentType: opts.raw.contentType } : {}),
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    const text = await res.text();
    if (opts.text) return text as T;
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError('INTERNAL', `the server's answer to ${method} ${urlPath} is not JSON`, res.status);
    }
  }
}

/** A path segment: ids and names go into URLs escaped. */
export function seg(id: string): string {
  return encodeURIComponent(id);
}
