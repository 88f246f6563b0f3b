/**
 * Where the scanner keeps its files inside the product's folder (`--home DIR`), and the
 * address of its socket. Shared by the service, its client and its control script, and
 * part of the service's payload: imports node:* only.
 *
 *   DIR/VERSION                        installed application version (written by install)
 *   DIR/app/                           the service's files
 *   DIR/definitions/definitions.json   signature definitions (the definitions package)
 *   DIR/run/scanner.pid, scanner.sock  the running service
 *   DIR/log/scanner.log                the service's stderr, when started by control.ts
 *   DIR/config.json                    the configuration (config.ts), written by the agent from the policy
 *   DIR/quarantine/                    quarantined files, unless the policy names another folder
 *   DIR/journal/detections.jsonl       real-time detections, appended by the service
 *   DIR/journal/delivered.json         how far the agent has delivered the journal
 */
import { createHash } from 'node:crypto';
import { join, resolve, win32 } from 'node:path';

/** The longest Unix socket path we use as is; sun_path holds 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH_BYTES = 100;

export interface ScannerPaths {
  home: string;
  version: string;
  app: string;
  definitionsDir: string;
  definitions: string;
  runDir: string;
  pid: string;
  socket: string;
  logDir: string;
  log: string;
  config: string;
  quarantine: string;
  journalDir: string;
  journal: string;
  journalOffset: string;
}

function homeHash(home: string, platform: NodeJS.Platform): string {
  // Windows paths are case-insensitive: C:\Garrison and c:\garrison are the same folder.
  const key = platform === 'win32' ? home.toLowerCase() : home;
  return createHash('sha256').update(key).digest('hex').slice(0, 24);
}

/**
 * The socket the service listens on: `DIR/run/scanner.sock`; on Windows a named pipe
 * derived from DIR. When DIR is so deep that the Unix socket path would not fit in
 * sun_path, a path in /tmp derived from DIR is used instead: the socket is 0600 there
 * too, and clients check that it belongs to their own user or root (client.ts).
 */
export function socketPathFor(home: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return `\\\\.\\pipe\\garrison-sample-scanner-${homeHash(win32.resolve(home), platform)}`;
  const abs = resolve(home);
  const inHome = join(abs, 'run', 'scanner.sock');
  if (Buffer.byteLength(inHome) <= MAX_SOCKET_PATH_BYTES) return inHome;
  return `/tmp/garrison-sample-scanner-${homeHash(abs, platform)}.sock`;
}

export function scannerPaths(home: string): ScannerPaths {
  const abs = resolve(home);
  return {
    home: abs,
    version: join(abs, 'VERSION'),
    app: join(abs, 'app'),
    definitionsDir: join(abs, 'definitions'),
    definitions: join(abs, 'definitions', 'definitions.json'),
    runDir: join(abs, 'run'),
    pid: join(abs, 'run', 'scanner.pid'),
    socket: socketPathFor(abs),
    logDir: join(abs, 'log'),
    log: join(abs, 'log', 'scanner.log'),
    config: join(abs, 'config.json'),
    quarantine: join(abs, 'quarantine'),
    journalDir: join(abs, 'journal'),
    journal: join(abs, 'journal', 'detections.jsonl'),
    journalOffset: join(abs, 'journal', 'delivered.json'),
  };
}
