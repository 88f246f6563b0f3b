/**
 * The control script of the installed application, run by the package's commands with the
 * agent's Node:
 *
 *   "$GARRISON_NODE" app/ctl.ts start|stop|status|reload [--home DIR]
 *
 * DIR defaults to $GARRISON_PRODUCT_DIR. Exit codes: 0 done (status: running); 1 failed;
 * 2 bad usage; 3 (status only) not running, as in LSB init scripts. Part of the service's
 * payload: node:* only.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScannerClient } from './client.ts';
import { serviceStatus, startService, stopService } from './control.ts';

const USAGE = 'usage: ctl.ts start|stop|status|reload [--home DIR]   (DIR defaults to $GARRISON_PRODUCT_DIR)';

export async function ctl(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let home = process.env.GARRISON_PRODUCT_DIR;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--home' && i + 1 < rest.length) home = rest[++i];
    else {
      process.stderr.write(`unknown argument "${rest[i]}"\n${USAGE}\n`);
      return 2;
    }
  }
  if (!home) {
    process.stderr.write(`no product folder: give --home DIR\n${USAGE}\n`);
    return 2;
  }
  try {
    switch (command) {
      case 'start': {
        const ping = await startService(home);
        process.stdout.write(`sample-scanner ${ping.version} running (pid ${ping.pid}, definitions ${ping.definitionsVersion ?? 'none'})\n`);
        return 0;
      }
      case 'stop': {
        const wasRunning = await stopService(home);
        process.stdout.write(wasRunning ? 'sample-scanner stopped\n' : 'sample-scanner was not running\n');
        return 0;
      }
      case 'status': {
        const s = await serviceStatus(home);
        if (!s.running) {
          process.stdout.write('sample-scanner is not running\n');
          return 3;
        }
        process.stdout.write(`sample-scanner ${s.ping!.version} running (pid ${s.pid}, definitions ${s.ping!.definitionsVersion ?? 'none'}, ${s.ping!.signatures} signature${s.ping!.signatures === 1 ? '' : 's'})\n`);
        return 0;
      }
      case 'reload': {
        const client = await ScannerClient.connect(home, { timeoutMs: 2000 });
        try {
          const r = await client.reload();
          process.stdout.write(`definitions ${r.definitionsVersion} loaded (${r.signatures} signature${r.signatures === 1 ? '' : 's'})\n`);
        } finally {
          client.close();
        }
        return 0;
      }
      default:
        process.stderr.write(`${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`sample-scanner ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) process.exitCode = await ctl(process.argv.slice(2));
