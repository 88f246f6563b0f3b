/**
 * Version ordering for products, agents and packages ("is the repository's version newer than
 * what the device reports?"), under the version scheme a product's manifest names
 * (docs/adr/0015-version-schemes.md):
 *
 * - semver (the default; version-semver.ts): lenient semver — any number of numeric parts,
 *   digit runs inside mixed parts as numbers, pre-release tags with or without a dash.
 * - dpkg (version-dpkg.ts): Debian's epoch:upstream-revision with "~".
 * - rpm (version-rpm.ts): rpm's epoch:version-release, rpmvercmp with "~" and "^".
 * - windows: one to four decimal parts, each 0-65535 (file and product versions), missing
 *   parts counting as 0.
 *
 * Two questions, two functions. parseVersion says whether a text is a version of the scheme
 * at all: the repository refuses a package whose version does not parse (VERSION_INVALID)
 * rather than order it by guess. compareVersions is a total order over any text, because the
 * versions agents detect on devices and OS inventories are whatever the software prints: text
 * that does not parse is ordered by the scheme's rules over what it splits into (dpkg and rpm
 * define their comparisons over any string; a windows version that is not four numbers falls
 * back to the semver rules), deterministically, so sort() is stable with it.
 */
import { DEFAULT_VERSION_SCHEME, type VersionScheme } from '@garrison/protocol';
import { compareDpkgVersions, parseDpkgVersion, type DpkgVersion } from './version-dpkg.ts';
import { compareRpmVersions, parseRpmVersion, type RpmVersion } from './version-rpm.ts';
import { compareSemverVersions, parseSemverVersion, type SemverVersion } from './version-semver.ts';

export { compareDpkgVersions, parseDpkgVersion, type DpkgVersion } from './version-dpkg.ts';
export { compareRpmVersions, parseRpmVersion, rpmvercmp, type RpmVersion } from './version-rpm.ts';
export { compareSemverVersions, parseSemverVersion, type SemverVersion } from './version-semver.ts';

export const VERSION_SCHEMES: readonly VersionScheme[] = ['semver', 'dpkg', 'rpm', 'windows'];

export type ParsedVersion =
  | ({ scheme: 'semver' } & SemverVersion)
  | ({ scheme: 'dpkg' } & DpkgVersion)
  | ({ scheme: 'rpm' } & RpmVersion)
  | { scheme: 'windows'; parts: number[] };

export type VersionParse = { ok: true; version: ParsedVersion } | { ok: false; error: string };

const WINDOWS = /^\d{1,5}(?:\.\d{1,5}){0,3}$/;
const WINDOWS_MAX_PART = 65535;

function parseWindowsVersion(text: string): VersionParse {
  const s = text.trim();
  if (!WINDOWS.test(s)) return { ok: false, error: 'a windows version is one to four dot-separated numbers (10.0.19041.1)' };
  const parts = s.split('.').map(Number);
  const big = parts.find((p) => p > WINDOWS_MAX_PART);
  if (big !== undefined) return { ok: false, error: `the part ${big} is larger than ${WINDOWS_MAX_PART}` };
  return { ok: true, version: { scheme: 'windows', parts } };
}

function compareWindowsVersions(a: string, b: string): number {
  const x = parseWindowsVersion(a);
  const y = parseWindowsVersion(b);
  if (!x.ok || !y.ok || x.version.scheme !== 'windows' || y.version.scheme !== 'windows') return compareSemverVersions(a, b);
  const p = x.version.parts;
  const q = y.version.parts;
  for (let i = 0; i < 4; i++) {
    const c = (p[i] ?? 0) - (q[i] ?? 0);
    if (c !== 0) return c;
  }
  return 0;
}

/** Whether `text` is a version of `scheme`, and its parts; the error says why not. */
export function parseVersion(text: string, scheme: VersionScheme = DEFAULT_VERSION_SCHEME): VersionParse {
  switch (scheme) {
    case 'semver': {
      const r = parseSemverVersion(text);
      return r.ok ? { ok: true, version: { scheme, ...r.version } } : r;
    }
    case 'dpkg': {
      const r = parseDpkgVersion(text);
      return r.ok ? { ok: true, version: { scheme, ...r.version } } : r;
    }
    case 'rpm': {
      const r = parseRpmVersion(text);
      return r.ok ? { ok: true, version: { scheme, ...r.version } } : r;
    }
    case 'windows':
      return parseWindowsVersion(text);
    default:
      return { ok: false, error: `unknown version scheme ${String(scheme)}` };
  }
}

/** -1 when a < b, 0 when equal in precedence, 1 when a > b, under `scheme` (default semver). */
export function compareVersions(a: string, b: string, scheme: VersionScheme = DEFAULT_VERSION_SCHEME): number {
  let c: number;
  switch (scheme) {
    case 'dpkg':
      c = compareDpkgVersions(a, b);
      break;
    case 'rpm':
      c = compareRpmVersions(a, b);
      break;
    case 'windows':
      c = compareWindowsVersions(a, b);
      break;
    default:
      c = compareSemverVersions(a, b);
  }
  return Math.sign(c);
}

/** True when `a` is strictly newer than `b`. */
export function isNewerVersion(a: string, b: string, scheme: VersionScheme = DEFAULT_VERSION_SCHEME): boolean {
  return compareVersions(a, b, scheme) > 0;
}

/** The newest version in the list (the first of equals), or undefined for an empty list. */
export function maxVersion(list: readonly string[], scheme: VersionScheme = DEFAULT_VERSION_SCHEME): string | undefined {
  let best: string | undefined;
  for (const v of list) if (best === undefined || compareVersions(v, best, scheme) > 0) best = v;
  return best;
}

/** The scheme a manifest names, or the default. */
export function versionSchemeOf(manifest: { versionScheme?: VersionScheme | undefined }): VersionScheme {
  return manifest.versionScheme ?? DEFAULT_VERSION_SCHEME;
}
