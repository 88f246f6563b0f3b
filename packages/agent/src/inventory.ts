import os from 'node:os';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Inventory, InstalledProduct } from '@garrison/protocol';

/** Replaced by the bundler with the version an agent package is built as (see bundle.ts). */
declare const __GARRISON_AGENT_VERSION__: string | undefined;
export const AGENT_VERSION: string = typeof __GARRISON_AGENT_VERSION__ === 'string' ? __GARRISON_AGENT_VERSION__ : '0.1.0';

function osName(): string {
  switch (process.platform) {
    case 'linux':
      return 'Linux';
    case 'darwin':
      return 'macOS';
    case 'win32':
      return 'Windows';
    default:
      return os.type();
  }
}

/** What the agent reports of its device; addresses exclude loopback and link-local ones. */
export function collectInventory(products: InstalledProduct[], overrides: Partial<Inventory> = {}): Inventory {
  const addresses: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || a.address.startsWith('fe80:')) continue;
      addresses.push(a.address);
    }
  }
  return {
    hostname: os.hostname().slice(0, 255) || 'unknown',
    osPlatform: process.platform,
    osName: osName(),
    osVersion: os.release().slice(0, 128),
    arch: process.arch,
    addresses: addresses.slice(0, 64),
    agentVersion: AGENT_VERSION,
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
    products,
    ...overrides,
  };
}

function readTrimmed(file: string): string | null {
  try {
    const v = readFileSync(file, 'utf8').trim();
    return v || null;
  } catch {
    return null;
  }
}

/**
 * SHA-256 of what identifies this machine rather than this agent's state: the OS machine id
 * and, where readable, the hardware UUID (Linux); the IOPlatformUUID or MachineGuid elsewhere
 * is left to those ports. A cloned image that kept the agent's state still tells itself apart
 * once its machine id was regenerated (systemd-firstboot, sysprep, cloud-init do). Null when
 * nothing is readable: such agents are never split as clones. `GARRISON_MACHINE_ID_FILE`
 * points at another machine-id file (images that keep theirs elsewhere; tests).
 */
export function machineIdentity(): string | null {
  const files = process.env.GARRISON_MACHINE_ID_FILE ? [process.env.GARRISON_MACHINE_ID_FILE] : ['/etc/machine-id', '/var/lib/dbus/machine-id'];
  let id: string | null = null;
  for (const f of files) if ((id = readTrimmed(f))) break;
  const hw = process.env.GARRISON_MACHINE_ID_FILE ? null : readTrimmed('/sys/class/dmi/id/product_uuid');
  if (!id && !hw) return null;
  return createHash('sha256').update(`garrison-machine:${id ?? ''}:${hw ?? ''}`).digest('hex');
}
