/**
 * A client for the scanner service's socket (protocol in service.ts): connect with a
 * timeout, one-answer requests, and scans streamed to callbacks. Used by the agent plug-in,
 * the control script and the tests; part of the service's payload, so node:* only.
 *
 * Every failure is a ScannerError with a code: the service's own codes (bad_request,
 * no_definitions, definitions_invalid…) or, from this side, `unreachable` (no service
 * behind the socket), `timeout` and `disconnected`. Callers branch on the code.
 *
 * On Unix the socket's owner is checked before connecting: it must be the current user or
 * root, so a socket planted by someone else (the /tmp fallback path of paths.ts) is never
 * trusted with scan results.
 */
import { createConnection, type Socket } from 'node:net';
import { lstat } from 'node:fs/promises';
import { socketPathFor } from './paths.ts';

export const MAX_ANSWER_LINE_BYTES = 4 * 1024 * 1024;

export class ScannerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ScannerError';
    this.code = code;
  }
}

export interface PingResult {
  version: string;
  definitionsVersion: string | null;
  signatures: number;
  pid: number;
  scans: number;
  definitionsError?: string;
}

export interface ReloadResult {
  definitionsVersion: string;
  signatures: number;
  changed: boolean;
}

export interface Detection {
  path: string;
  signature: string;
  /** What was done: reported, quarantined or quarantine-failed. */
  action?: string;
  quarantineId?: string;
}

export interface ScanProblem {
  path: string;
  message: string;
}

export interface ScanResult {
  scanned: number;
  detections: number;
  errors: number;
  skipped: number;
  cancelled: boolean;
  definitionsVersion: string;
}

export interface ScanOptions {
  maxFileBytes?: number;
  /** Aborting sends `cancel`; the scan still resolves, with `cancelled: true`. */
  signal?: AbortSignal;
  onProgress?(percent: number): void;
  onDetection?(detection: Detection): void;
  onProblem?(problem: ScanProblem): void;
}

export interface ConnectOptions {
  timeoutMs?: number;
  /** Defaults to the socket of `home` (paths.ts). */
  socketPath?: string;
}

type Message = Record<string, unknown>;

interface Pending {
  onMessage(msg: Message): void;
  onClose(err: ScannerError): void;
}

export class ScannerClient {
  readonly #socket: Socket;
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;
  #buffer: Buffer[] = [];
  #bufferBytes = 0;
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {}); // 'close' follows and fails what is pending
    socket.on('close', () => {
      this.#closed = true;
      const err = new ScannerError('disconnected', 'the scanner service closed the connection');
      for (const p of [...this.#pending.values()]) p.onClose(err);
      this.#pending.clear();
    });
  }

  /** Connects to the service of the product folder `home`. */
  static async connect(home: string, options: ConnectOptions = {}): Promise<ScannerClient> {
    const socketPath = options.socketPath ?? socketPathFor(home);
    const timeoutMs = options.timeoutMs ?? 2000;
    if (process.platform !== 'win32') await checkSocketOwner(socketPath);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ScannerError('timeout', `no answer from the scanner service at ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new ScannerError('unreachable', `the scanner service is not running (${err.code ?? err.message} at ${socketPath})`));
      });
    });
    return new ScannerClient(socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Sends one request and resolves with its single answer (without id and ok). */
  request(op: 'ping' | 'reload' | 'reconfigure' | 'shutdown' | 'cancel', fields: Message = {}, timeoutMs = 5000): Promise<Message> {
    const id = `c${this.#nextId++}`;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ScannerError('timeout', `no answer to "${op}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        onMessage: (msg) => {
          clearTimeout(timer);
          this.#pending.delete(id);
          const error = errorOf(msg);
          if (error) reject(error);
          else {
            const { id: _id, ok: _ok, ...rest } = msg;
            resolve(rest);
          }
        },
        onClose: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.#write({ id, op, ...fields }, (err) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err);
      });
    });
  }

  async ping(timeoutMs = 1000): Promise<PingResult> {
    return (await this.request('ping', {}, timeoutMs)) as unknown as PingResult;
  }

  async reload(timeoutMs = 10_000): Promise<ReloadResult> {
    return (await this.request('reload', {}, timeoutMs)) as unknown as ReloadResult;
  }

  /** Makes the service read DIR/config.json now; resolves with what it runs and its notes (a missing watched folder…). */
  async reconfigure(timeoutMs = 10_000): Promise<{ config: Record<string, unknown>; configSource: string; notes: string[] }> {
    return (await this.request('reconfigure', {}, timeoutMs)) as unknown as { config: Record<string, unknown>; configSource: string; notes: string[] };
  }

  async shutdown(timeoutMs = 5000): Promise<void> {
    await this.request('shutdown', {}, timeoutMs);
  }

  /** Runs a scan; resolves with the service's summary once it is done (or cancelled). */
  scan(paths: string[], options: ScanOptions = {}): Promise<ScanResult> {
    const id = `c${this.#nextId++}`;
    const { signal } = options;
    return new Promise<ScanResult>((resolve, reject) => {
      let cancelSent = false;
      const onAbort = (): void => {
        if (cancelSent || this.#closed) return;
        cancelSent = true;
        this.request('cancel', { target: id }).catch(() => {
          // gone already: 'close' settles the scan
        });
      };
      const finish = (): void => {
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      // A failing listener must not break the scan.
      const safely = (fn: () => void): void => {
        try {
          fn();
        } catch {
          // ignored
        }
      };
      this.#pending.set(id, {
        onMessage: (msg) => {
          const error = errorOf(msg);
          if (error) {
            finish();
            reject(error);
          } else if (typeof msg.progress === 'number') {
            const percent = msg.progress;
            safely(() => options.onProgress?.(percent));
          } else if (msg.detection) {
            const detection = msg.detection as Detection;
            safely(() => options.onDetection?.(detection));
          } else if (msg.problem) {
            const problem = msg.problem as ScanProblem;
            safely(() => options.onProblem?.(problem));
          } else if (msg.done === true) {
            finish();
            const { id: _id, done: _done, ...rest } = msg;
            resolve(rest as unknown as ScanResult);
          }
        },
        onClose: (err) => {
          finish();
          reject(err);
        },
      });
      const request: Message = { id, op: 'scan', paths };
      if (options.maxFileBytes !== undefined) request.maxFileBytes = options.maxFileBytes;
      this.#write(request, (err) => {
        finish();
        reject(err);
      });
      if (signal) {
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
      }
    });
  }

  #write(msg: Message, onError: (err: ScannerError) => void): void {
    if (this.#closed || this.#socket.destroyed) {
      onError(new ScannerError('disconnected', 'the connection to the scanner service is closed'));
      return;
    }
    this.#socket.write(`${JSON.stringify(msg)}\n`);
  }

  #onData(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      const line = Buffer.concat([...this.#buffer, chunk.subarray(start, nl)]).toString('utf8');
      this.#buffer = [];
      this.#bufferBytes = 0;
      start = nl + 1;
      this.#onLine(line);
    }
    if (start < chunk.length) {
      this.#bufferBytes += chunk.length - start;
      if (this.#bufferBytes > MAX_ANSWER_LINE_BYTES) {
        this.#socket.destroy();
        return;
      }
      this.#buffer.push(Buffer.from(chunk.subarray(start)));
    }
  }

  #onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return; // not from a scanner service we understand; ignore the line
    }
    if (typeof msg !== 'object' || msg === null) return;
    const id = (msg as Message).id;
    if (typeof id !== 'string') return;
    this.#pending.get(id)?.onMessage(msg as Message);
  }
}

function errorOf(msg: Message): ScannerError | null {
  const e = msg.error as { code?: unknown; message?: unknown } | undefined;
  if (!e || typeof e !== 'object') return null;
  return new ScannerError(typeof e.code === 'string' ? e.code : 'internal', typeof e.message === 'string' ? e.message : 'the scanner service refused the request');
}

async function checkSocketOwner(socketPath: string): Promise<void> {
  let st;
  try {
    st = await lstat(socketPath);
  } catch (err) {
    throw new ScannerError('unreachable', `the scanner service is not running (${(err as NodeJS.ErrnoException).code ?? 'error'} at ${socketPath})`);
  }
  if (!st.isSocket()) throw new ScannerError('unreachable', `${socketPath} is not a socket`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new ScannerError('unreachable', `${socketPath} belongs to uid ${st.uid}, not to this user: not trusted`);
  }
}

/** The service's ping answer within `timeoutMs`, or null when it does not answer. */
export async function pingService(home: string, timeoutMs = 1000): Promise<PingResult | null> {
  const deadline = Date.now() + timeoutMs;
  let client: ScannerClient | undefined;
  try {
    client = await ScannerClient.connect(home, { timeoutMs });
    return await client.ping(Math.max(1, deadline - Date.now()));
  } catch {
    return null;
  } finally {
    client?.close();
  }
}
