/**
 * Version ordering for products, agents and packages ("is the repository's version newer than
 * what the device reports?").
 *
 * Vendors do not all use semver: Windows products report four numeric parts (10.7.0.1234),
 * some report two (1.2). So the release part is any number of dot-separated segments,
 * compared numerically, with missing segments counting as 0 (1.2 == 1.2.0). What semver does
 * well is kept: a pre-release after "-" sorts before its release (1.0.0-beta < 1.0.0), its
 * dot-separated identifiers compare numerically when both are numeric, lexically (ASCII)
 * otherwise, numeric before alphanumeric, and a longer list wins when one is a prefix of the
 * other (1.0.0-alpha < 1.0.0-alpha.1); build metadata after "+" is ignored.
 *
 * Trade-offs and tolerance: a leading "v" is ignored ("v1.2" == "1.2"); surrounding space is
 * trimmed; numbers are compared by digits, not as floats, so arbitrarily long segments work;
 * a non-numeric release segment ("1.2b") sorts after numeric ones and compares lexically —
 * deterministic, not clever. compareVersions is a total order, so sort() is stable with it.
 */

interface ParsedVersion {
  release: string[];
  prerelease: string[] | null;
}

function parse(version: string): ParsedVersion {
  let v = version.trim();
  if (/^[vV](?=\d)/.test(v)) v = v.slice(1);
  const plus = v.indexOf('+');
  if (plus >= 0) v = v.slice(0, plus);
  const dash = v.indexOf('-');
  const core = dash >= 0 ? v.slice(0, dash) : v;
  const pre = dash >= 0 ? v.slice(dash + 1) : null;
  return {
    release: core === '' ? [] : core.split('.'),
    prerelease: pre === null ? null : pre.split('.'),
  };
}

const NUMERIC = /^\d+$/;

function compareNumeric(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareLexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Numeric identifiers compare as numbers and sort before alphanumeric ones. */
function compareIdentifier(a: string, b: string): number {
  const an = NUMERIC.test(a);
  const bn = NUMERIC.test(b);
  if (an && bn) return compareNumeric(a, b);
  if (an) return -1;
  if (bn) return 1;
  return compareLexical(a, b);
}

/** Negative when a < b, 0 when equal in precedence, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parse(a);
  const pb = parse(b);
  const n = Math.max(pa.release.length, pb.release.length);
  for (let i = 0; i < n; i++) {
    const c = compareIdentifier(pa.release[i] ?? '0', pb.release[i] ?? '0');
    if (c !== 0) return c;
  }
  if (pa.prerelease === null || pb.prerelease === null) {
    if (pa.prerelease === pb.prerelease) return 0;
    return pa.prerelease === null ? 1 : -1;
  }
  const m = Math.min(pa.prerelease.length, pb.prerelease.length);
  for (let i = 0; i < m; i++) {
    const c = compareIdentifier(pa.prerelease[i], pb.prerelease[i]);
    if (c !== 0) return c;
  }
  return Math.sign(pa.prerelease.length - pb.prerelease.length);
}

/** True when `a` is strictly newer than `b`. */
export function isNewerVersion(a: string, b: string): boolean {
  return compareVersions(a, b) > 0;
}

/** The newest version in the list (the first of equals), or undefined for an empty list. */
export function maxVersion(list: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const v of list) if (best === undefined || compareVersions(v, best) > 0) best = v;
  return best;
}
