/**
 * One SSH connection to a host being push-installed, over the `ssh2` package: log in, run
 * commands with streamed output, a timeout and cancellation, and say precisely why anything
 * failed (refused, timed out, login refused, connection lost), since that is what the
 * administrator sees as the host's outcome.
 *
 * The host key is not checked against anything: push installation contacts hosts the server
 * has never seen, so there is nothing to check it against. Its SHA-256 fingerprint is
 * recorded on the host's result so that it can be compared afterwards.
 */
import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import ssh2, { type ClientChannel, type ConnectConfig } from 'ssh2';

// ssh2 is CommonJS, and Node cannot see `utils` as a named export of it.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

export const SshFailureKind = {
  /** No TCP connection, or no SSH server / handshake. */
  unreachable: 'unreachable',
  /** No login within the connect timeout, or a command past its timeout. */
  timeout: 'timeout',
  /** The server refused the login. */
  auth: 'auth',
  /** The connection dropped after the login. */
  connectionLost: 'connection-lost',
  cancelled: 'cancelled',
  /** The server refused to run the command (no session channel). */
  failed: 'failed',
} as const;
export type SshFailureKind = (typeof SshFailureKind)[keyof typeof SshFailureKind];

export class SshFailure extends Error {
  readonly kind: SshFailureKind;
  constructor(kind: SshFailureKind, message: string) {
    super(message);
    this.name = 'SshFailure';
    this.kind = kind;
  }
}

export interface SshLogin {
  username: string;
  password?: string | null;
  privateKey?: Buffer | null;
  passphrase?: string | null;
}

export interface ExecOptions {
  /** Written to the command's standard input, which is then closed (closed at once when absent). */
  stdin?: string;
  /** Leave standard input open after `stdin` (see supervisedCommand in push-service.ts). */
  keepStdinOpen?: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  onOutput?(text: string, stream: 'stdout' | 'stderr'): void;
  /** Bytes of stdout/stderr kept for the result (default 64 KiB each; the rest goes only to onOutput). */
  maxCapture?: number;
}

export interface ExecResult {
  /** Null when the command ended without an exit status (killed by a signal, say). */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** `SHA256:…` as OpenSSH prints fingerprints: base64 without padding. */
export function sha256Fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Why a private key cannot be used, or null when it can (with this passphrase). */
export function privateKeyProblem(key: Buffer, passphrase?: string | null): string | null {
  let parsed: ReturnType<typeof utils.parseKey>;
  try {
    parsed = passphrase ? utils.parseKey(key, passphrase) : utils.parseKey(key);
  } catch (err) {
    return `the private key cannot be read (${(err as Error).message})`;
  }
  if (parsed instanceof Error) {
    return /passphrase/i.test(parsed.message) || /decrypt|bad decrypt/i.test(parsed.message)
      ? passphrase
        ? 'the passphrase does not decrypt the private key'
        : 'the private key is encrypted: give its passphrase'
      : `the private key cannot be read (${parsed.message})`;
  }
  const first = Array.isArray(parsed) ? (parsed[0] as typeof parsed) : parsed;
  if (!first || !(first as { isPrivateKey(): boolean }).isPrivateKey()) return 'this is a public key; give the private key';
  return null;
}

const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
};

function connectFailure(err: Error & { level?: string; code?: string }, timeoutMs: number): SshFailure {
  if (err.level === 'client-authentication') return new SshFailure('auth', 'the SSH server refused the login with these credentials');
  if (err.level === 'client-timeout') return new SshFailure('timeout', `no SSH login within ${Math.round(timeoutMs / 1000)} s`);
  if (err.code && SOCKET_ERRORS[err.code]) {
    return new SshFailure(err.code === 'ETIMEDOUT' ? 'timeout' : 'unreachable', `${SOCKET_ERRORS[err.code]} (${err.code})`);
  }
  return new SshFailure('unreachable', `SSH connection failed: ${err.message}`);
}

/**
 * Asks the SSH server to SIGKILL the command's process group. Closing the channel alone does
 * not stop a command without a terminal: it runs on until it writes to the closed pipe.
 * ssh2's `channel.signal()` sends nothing once our side of stdin is closed, so the request
 * goes through its protocol object, as signal() itself does. OpenSSH honours it (since 7.9)
 * only for non-root logins without a forced command; push-service.ts therefore also runs
 * long commands under a watchdog that kills them when the channel closes.
 */
function killRemote(channel: ClientChannel): void {
  const c = channel as unknown as { type?: string; outgoing?: { id: number; state: string }; _client?: { _protocol?: { signal?(id: number, name: string): void } } };
  try {
    if (c.type === 'session' && (c.outgoing?.state === 'open' || c.outgoing?.state === 'eof') && typeof c._client?._protocol?.signal === 'function') c._client._protocol.signal(c.outgoing.id, 'KILL');
    else channel.signal('KILL');
  } catch {
    /* the channel or connection is already gone */
  }
}

export class SshSession {
  readonly hostKeySha256: string;
  readonly #client: Client;
  #closed = false;
  #closeReason = 'the SSH connection was lost';

  private constructor(client: Client, hostKeySha256: string) {
    this.#client = client;
    this.hostKeySha256 = hostKeySha256;
    client.on('error', (err: Error & { level?: string }) => {
      this.#closeReason = err.level === 'client-timeout' ? 'the SSH connection stopped answering (keepalive timeout)' : `the SSH connection was lost: ${err.message}`;
    });
    const closed = () => {
      this.#closed = true;
    };
    client.on('end', closed);
    client.on('close', closed);
  }

  static connect(target: { host: string; port: number }, login: SshLogin, opts: { timeoutMs: number; signal?: AbortSignal; keepaliveMs?: number }): Promise<SshSession> {
    return new Promise((resolve, reject) => {
      const client = new Client();
      let fingerprint = '';
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const fail = (f: SshFailure) =>
        settle(() => {
          client.removeAllListeners('ready');
          // An error after this point (a late socket error) must not go unhandled.
          client.on('error', () => {});
          client.destroy();
          reject(f);
        });
      const onAbort = () => fail(new SshFailure('cancelled', 'cancelled'));
      if (opts.signal?.aborted) return reject(new SshFailure('cancelled', 'cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });

      client.on('ready', () => settle(() => resolve(new SshSession(client, fingerprint))));
      client.on('error', (err: Error & { level?: string; code?: string }) => fail(connectFailure(err, opts.timeoutMs)));
      client.on('close', () => fail(new SshFailure('unreachable', 'the SSH server closed the connection before the login')));
      // Servers that take passwords only through keyboard-interactive (PAM) ask for it there.
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => login.password ?? '')));
      const config: ConnectConfig = {
        host: target.host,
        port: target.port,
        username: login.username,
        readyTimeout: opts.timeoutMs,
        keepaliveInterval: opts.keepaliveMs ?? 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          fingerprint = sha256Fingerprint(key);
          return true;
        },
      };
      if (login.privateKey) {
        config.privateKey = login.privateKey;
        if (login.passphrase) config.passphrase = login.passphrase;
      } else if (login.password) {
        config.password = login.password;
        config.tryKeyboard = true;
      }
      try {
        client.connect(config);
      } catch (err) {
        fail(connectFailure(err as Error, opts.timeoutMs));
      }
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs a command (through the login user's shell, as SSH does) and waits for its end. */
  exec(command: string, o: ExecOptions): Promise<ExecResult> {
    if (this.#closed) return Promise.reject(new SshFailure('connection-lost', this.#closeReason));
    if (o.signal?.aborted) return Promise.reject(new SshFailure('cancelled', 'cancelled'));
    const max = o.maxCapture ?? 64 * 1024;
    return new Promise((resolve, reject) => {
      let channel: ClientChannel | null = null;
      let settled = false;
      let exit: { code: number | null; signal: string | null } | null = null;
      const out = { stdout: '', stderr: '' };
      const stop = () => {
        if (!channel) return;
        killRemote(channel);
        channel.close();
      };
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () =>
        settle(() => {
          stop();
          reject(new SshFailure('cancelled', 'cancelled'));
        });
      const timer = setTimeout(
        () =>
          settle(() => {
            stop();
            reject(new SshFailure('timeout', `the command ran longer than ${Math.round(o.timeoutMs / 1000)} s and was stopped`));
          }),
        o.timeoutMs,
      );
      o.signal?.addEventListener('abort', onAbort, { once: true });

      this.#client.exec(command, (err, ch) => {
        if (err) {
          return settle(() => reject(this.#closed ? new SshFailure('connection-lost', this.#closeReason) : new SshFailure('failed', `the SSH server would not run the command: ${err.message}`)));
        }
        channel = ch;
        if (settled) return stop();
        const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
        const take = (stream: 'stdout' | 'stderr') => (data: Buffer) => {
          const text = decoders[stream].write(data);
          if (!text || settled) return;
          if (out[stream].length < max) out[stream] += text.slice(0, max - out[stream].length);
          o.onOutput?.(text, stream);
        };
        ch.on('data', take('stdout'));
        ch.stderr.on('data', take('stderr'));
        ch.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
        });
        ch.on('close', () =>
          // The client marks itself closed before it closes its channels, but a moment later
          // is safer than relying on that order.
          setImmediate(() =>
            settle(() => {
              if (exit) resolve({ exitCode: exit.code, signal: exit.signal, ...out });
              else if (this.#closed) reject(new SshFailure('connection-lost', this.#closeReason));
              else resolve({ exitCode: null, signal: null, ...out });
            }),
          ),
        );
        if (o.keepStdinOpen) {
          if (o.stdin !== undefined) ch.write(o.stdin);
        } else if (o.stdin !== undefined) ch.end(o.stdin);
        else ch.end();
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = 'the connection was closed';
    this.#client.on('error', () => {});
    this.#client.end();
    setTimeout(() => this.#client.destroy(), 2000).unref();
  }
}
