import os from 'node:os';
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
