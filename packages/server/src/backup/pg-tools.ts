/**
 * PostgreSQL's own tools (pg_dump, pg_restore) as child processes. The connection URL's
 * password goes in PGPASSWORD, never on the command line, where `ps` shows it to every user.
 */
import { execFile, spawn } from 'node:child_process';

/** The URL without its password, and the environment carrying the password. */
export function pgConnection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  return { dbname: u.toString(), env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } };
}

/** The URL to show a person: without its password. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** The major version of a pg_dump/pg_restore binary, or null when it cannot be run. */
export function toolMajorVersion(binary: string): Promise<{ major: number; version: string } | null> {
  return new Promise((resolve) => {
    execFile(binary, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      const m = /\)\s+(\d+)(?:\.(\d+))?/.exec(stdout ?? '');
      resolve(err || !m ? null : { major: Number(m[1]), version: stdout.trim() });
    });
  });
}

/** Runs a tool; rejects with its standard error (which names what failed) when it exits non-zero. */
export function runTool(binary: string, args: string[], env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 8000) stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code, sig) => {
      if (code === 0) resolve();
      else reject(new Error(`${binary} failed (${sig ?? `exit ${code}`}): ${stderr.trim().split('\n').slice(-5).join(' | ') || 'no message'}`));
    });
  });
}

/** Runs a tool and returns its standard output. */
export function toolOutput(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${binary} failed: ${String(stderr).trim().split('\n').slice(-5).join(' | ') || err.message}`));
      else resolve(stdout);
    });
  });
}

/** The major version named in a tool's --version line ("pg_dump (PostgreSQL) 15.20 …"). */
export function majorOf(versionLine: string): number | null {
  const m = /\)\s+(\d+)/.exec(versionLine);
  return m ? Number(m[1]) : null;
}
