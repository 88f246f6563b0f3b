/**
 * A real OpenSSH server for push installation tests: `sshd -D` on 127.0.0.1 (or a few
 * loopback addresses) and a free port, with a config, host key and authorized client key in
 * a temp folder. Nothing of the machine's own SSH setup is used or changed.
 *
 * Password logins need root's password, which the machine does not give us; when `unshare`
 * can make a private mount namespace, sshd runs in one where a copy of /etc/shadow with a
 * known root password is mounted over the real one, so the real file is never touched.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const SSHD = '/usr/sbin/sshd';

/** Why these tests cannot run here, or false when they can. */
export function sshdSkipReason(): string | false {
  if (process.platform !== 'linux') return 'push installation tests need Linux';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'push installation tests start sshd and need root';
  if (!existsSync(SSHD)) return `${SSHD} is missing (apt-get install openssh-server)`;
  if (!existsSync('/usr/bin/ssh-keygen')) return 'ssh-keygen is missing (apt-get install openssh-client)';
  return false;
}

let unshareWorks: Promise<boolean> | undefined;
/** Whether sshd can run with a private /etc/shadow (so that password logins can be tested). */
export function passwordLoginsSupported(): Promise<boolean> {
  unshareWorks ??= (async () => {
    try {
      const probe = path.join(os.tmpdir(), `garrison-unshare-${process.pid}`);
      await writeFile(probe, 'x');
      try {
        await run('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$1"', 'sh', probe], { timeout: 5000 });
        const { stdout } = await run('openssl', ['version'], { timeout: 5000 });
        return stdout.length > 0;
      } finally {
        await rm(probe, { force: true });
      }
    } catch {
      return false;
    }
  })();
  return unshareWorks;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Generates a key pair with ssh-keygen; returns the private key text and the public key line. */
export async function generateKey(dir: string, name: string, opts: { passphrase?: string; type?: 'ed25519' | 'rsa' } = {}): Promise<{ file: string; privateKey: string; publicKey: string }> {
  const file = path.join(dir, name);
  await run('ssh-keygen', ['-q', '-t', opts.type ?? 'ed25519', '-N', opts.passphrase ?? '', '-C', `garrison-test-${name}`, '-f', file]);
  return { file, privateKey: await readFile(file, 'utf8'), publicKey: (await readFile(`${file}.pub`, 'utf8')).trim() };
}

export interface SshdOptions {
  /** Loopback addresses to listen on (default 127.0.0.1). */
  listen?: string[];
  /** A /bin/sh script run instead of every command (ForceCommand); $SSH_ORIGINAL_COMMAND holds the command. */
  forceCommand?: string;
  /** Root's password inside sshd's private mount namespace; see passwordLoginsSupported(). */
  rootPassword?: string;
  /** sshd's LogLevel (default VERBOSE); DEBUG2 helps when a test fails inside sshd. */
  logLevel?: string;
}

export interface Sshd {
  port: number;
  host: string;
  dir: string;
  /** The generated client key (OpenSSH format) that authorized_keys accepts. */
  clientKey: string;
  clientKeyFile: string;
  /** The host key's fingerprint as `ssh-keygen -l` prints it: SHA256:… */
  hostKeySha256: string;
  pid: number;
  /** sshd's own log (-e). */
  log(): string;
  /** Kills sshd and every session process under it at once (SIGKILL): hosts drop mid-command. */
  killAll(): Promise<void>;
  /** Stops sshd and its sessions, and removes its folder. */
  stop(): Promise<void>;
}

/** Every process below `pid`, deepest last, from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // The command name (2nd field) may hold spaces and parentheses: fields resume after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-sshd-'));
  await chmod(dir, 0o755);
  // sshd's privilege separation folder; absent on machines where sshd never ran.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const { stdout: fp } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`]);
  const hostKeySha256 = fp.split(/\s+/)[1]!;
  const client = await generateKey(dir, 'client_ed25519');
  await writeFile(path.join(dir, 'authorized_keys'), `${client.publicKey}\n`, { mode: 0o600 });
  const port = await freePort();
  const listen = opts.listen ?? ['127.0.0.1'];
  const lines = [
    `Port ${port}`,
    ...listen.map((a) => `ListenAddress ${a}`),
    `HostKey ${hostKey}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin yes',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'MaxStartups 100:30:200',
    'MaxSessions 50',
    `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
    'PrintMotd no',
  ];
  if (opts.forceCommand !== undefined) {
    const wrapper = path.join(dir, 'force-command.sh');
    await writeFile(wrapper, `#!/bin/sh\n${opts.forceCommand}\n`, { mode: 0o755 });
    lines.push(`ForceCommand ${wrapper}`);
  }
  const config = path.join(dir, 'sshd_config');
  await writeFile(config, `${lines.join('\n')}\n`, { mode: 0o600 });

  let child: ChildProcess;
  if (opts.rootPassword !== undefined) {
    const shadow = path.join(dir, 'shadow');
    const salt = Math.random().toString(36).slice(2, 10);
    // A throwaway test password: passing it as an argument is fine.
    const { stdout: hash } = await run('openssl', ['passwd', '-6', '-salt', salt, opts.rootPassword], { timeout: 10_000 });
    const original = await readFile('/etc/shadow', 'utf8');
    const rows = original.split('\n').map((l) => {
      const f = l.split(':');
      if (f[0] !== 'root') return l;
      f[1] = hash.trim();
      return f.join(':');
    });
    await writeFile(shadow, rows.join('\n'), { mode: 0o600 });
    child = spawn('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" /etc/shadow && exec "$2" -D -e -f "$3"', 'sh', shadow, SSHD, config], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  // Ready once every address accepts connections.
  const deadline = Date.now() + 10_000;
  for (const address of listen) {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`sshd exited at start (${child.exitCode ?? child.signalCode}):\n${log}`);
      }
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, address, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await rm(dir, { recursive: true, force: true });
        throw new Error(`sshd did not listen on ${address}:${port} within 10 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const pid = child.pid!;
  const killAll = async () => {
    const all = [pid, ...(await descendants(pid))];
    for (const p of all) killQuietly(p, 'SIGKILL');
    await exited;
  };
  let stopped: Promise<void> | undefined;
  return {
    port,
    host: listen[0]!,
    dir,
    clientKey: client.privateKey,
    clientKeyFile: client.file,
    hostKeySha256,
    pid,
    log: () => log,
    killAll,
    stop() {
      stopped ??= (async () => {
        await killAll();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
