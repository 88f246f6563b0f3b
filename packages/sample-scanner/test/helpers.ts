// Shared by the sample scanner's tests: temp product folders, definitions files, real
// service processes that are always killed at the end of the test, and raw socket access.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pingService } from '../src/client.ts';
import { defaultSignatures, type SignatureDefinition } from '../src/definitions.ts';
import { scannerPaths } from '../src/paths.ts';

export const SERVICE_SCRIPT = join(import.meta.dirname, '..', 'src', 'service.ts');
export const unix = process.platform !== 'win32';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A temp folder removed after the test, with any process recorded in its pid file killed first. */
export async function tempDir(t: TestContext, prefix = 'gss-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A product folder with definitions, cleaned up (service killed, files removed) after the test. */
export async function productHome(t: TestContext, signatures: SignatureDefinition[] = defaultSignatures(), version = '2026.11.21.1'): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'gss-home-'));
  t.after(async () => {
    await killFromPidFile(home);
    await rm(home, { recursive: true, force: true });
  });
  await writeDefinitions(home, { version, signatures });
  return home;
}

/** Writes definitions.json atomically, as the definitions package does. */
export async function writeDefinitions(home: string, doc: unknown): Promise<void> {
  const { definitionsDir, definitions } = scannerPaths(home);
  await mkdir(definitionsDir, { recursive: true });
  const tmp = `${definitions}.${process.pid}.tmp`;
  await writeFile(tmp, typeof doc === 'string' ? doc : JSON.stringify(doc));
  await rename(tmp, definitions);
}

/** Kills (SIGKILL) whatever pid the pid file of `home` names, if it still runs. */
export async function killFromPidFile(home: string): Promise<void> {
  const pid = Number((await readFile(scannerPaths(home).pid, 'utf8').catch(() => '')).trim());
  if (Number.isSafeInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export interface RunningService {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `node service.ts --home home` as a child, waits until it answers; killed after the test. */
export async function startServiceProcess(t: TestContext, home: string, script = SERVICE_SCRIPT): Promise<RunningService> {
  const child = spawn(process.execPath, [script, '--home', home], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  t.after(() => {
    if (!gone) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (gone) throw new Error(`service exited at start: ${stderr}`);
    if (await pingService(home, 500)) return { child, stderr: () => stderr, exited };
    if (Date.now() > deadline) throw new Error(`service did not answer: ${stderr}`);
    await sleep(50);
  }
}

/** A raw connection for sending arbitrary lines and reading answers. */
export class RawConnection {
  readonly socket: Socket;
  readonly messages: Record<string, unknown>[] = [];
  #buffer = '';
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer += chunk.toString('utf8');
      let nl;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        this.messages.push(JSON.parse(this.#buffer.slice(0, nl)));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
      this.#wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  static open(t: TestContext, home: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = createConnection(scannerPaths(home).socket);
      s.once('connect', () => {
        const c = new RawConnection(s);
        t.after(() => s.destroy());
        resolve(c);
      });
      s.once('error', reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  send(...lines: (string | Record<string, unknown>)[]): void {
    this.socket.write(lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l)) + '\n').join(''));
  }

  /** Waits until `pred` holds over the messages received so far (or the connection closes). */
  async until(pred: (messages: Record<string, unknown>[]) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (this.closed) throw new Error(`connection closed; got ${JSON.stringify(this.messages)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages;
  }

  forId(id: unknown): Record<string, unknown>[] {
    return this.messages.filter((m) => m.id === id);
  }
}

/** Whether `pid` is gone (a zombie counts as gone). */
export async function processGone(pid: number, withinMs = 5000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    let gone = false;
    try {
      process.kill(pid, 0);
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      gone = / Z /.test(stat.slice(stat.lastIndexOf(')')));
    } catch {
      gone = true;
    }
    if (gone) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** A sparse file of `bytes` zeros: large to scan, free on disk, instant to create. */
export async function sparseFile(path: string, bytes: number): Promise<void> {
  await writeFile(path, '');
  await truncate(path, bytes);
}
