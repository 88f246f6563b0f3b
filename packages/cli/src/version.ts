/** The CLI's version, from its package.json: `garrison --version` and the User-Agent of every request. */
import { readFileSync } from 'node:fs';

let cached: string | undefined;
export function cliVersion(): string {
  if (cached !== undefined) return cached;
  try {
    cached = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    cached = 'unknown';
  }
  return cached;
}

/**
 * What the CLI says it is. The server records "cli" as the channel of the audit trail for a
 * request whose User-Agent starts with `garrison-cli/`, "api-token" for other token requests.
 */
export function userAgent(): string {
  return `garrison-cli/${cliVersion()}`;
}
