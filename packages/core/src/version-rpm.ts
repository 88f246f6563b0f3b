/**
 * The rpm version scheme: `[epoch:]version[-release]` (an EVR), ordered as rpm's rpmverCmp
 * and rpmvercmp do (docs/adr/0015-version-schemes.md). Written here from rpm's documented
 * rules, not taken from rpm (GPL/LGPL); the vectors in test/vectors/rpm-vercmp.json come from
 * rpm's own tests.
 *
 * rpmvercmp, applied to the epoch, then the version, then the release: characters other than
 * ASCII letters, digits, "~" and "^" only separate segments (so 2.0 == 2_0); a "~" sorts
 * before anything, even the end (1.0~rc1 < 1.0); a "^" sorts after the end but before any
 * other segment (1.0 < 1.0^git1 < 1.0.1); otherwise segments are maximal runs of digits or of
 * letters, digits compare as numbers of any length (leading zeros ignored), letters by ASCII,
 * and a numeric segment is newer than an alphabetic one. When all segments tie, the side with
 * segments left is newer. A missing epoch is 0; a missing release is older than any release
 * (rpmverCmp; dnf's "matches any release" is a query rule, not an order).
 *
 * Validity (parseRpmVersion), which rpm itself barely checks: an epoch of digits (at most
 * 2^32-1, rpm's uint32), a version and an optional release after the last "-", each of ASCII
 * letters, digits and . _ + ~ ^ with at least one letter or digit.
 */

export interface RpmVersion {
  epoch: number | null;
  version: string;
  release: string | null;
}

const MAX_EPOCH = 4294967295;
const PART = /^[A-Za-z0-9._+~^]+$/;

export function parseRpmVersion(text: string): { ok: true; version: RpmVersion } | { ok: false; error: string } {
  const s = text.trim();
  if (s === '') return { ok: false, error: 'the version is empty' };
  const { epoch, version, release } = splitEvr(s);
  let e: number | null = null;
  if (epoch !== null) {
    if (epoch === '') return { ok: false, error: 'the epoch before ":" is empty' };
    e = Number(epoch);
    if (!Number.isSafeInteger(e) || e > MAX_EPOCH) return { ok: false, error: `the epoch ${epoch} is too big (at most ${MAX_EPOCH})` };
  }
  if (version === '') return { ok: false, error: 'the version is empty' };
  for (const [what, part] of [['version', version], ['release', release]] as const) {
    if (part === null) continue;
    if (part === '') return { ok: false, error: `the ${what} after the last "-" is empty` };
    if (!PART.test(part)) return { ok: false, error: `the ${what} "${part}" has a character rpm does not allow (letters, digits and . _ + ~ ^ are)` };
    if (!/[A-Za-z0-9]/.test(part)) return { ok: false, error: `the ${what} "${part}" has no letter or digit` };
  }
  return { ok: true, version: { epoch: e, version, release } };
}

/** rpm's parseEVR: leading digits followed by ":" are the epoch; the release follows the last "-". */
function splitEvr(s: string): { epoch: string | null; version: string; release: string | null } {
  const m = /^(\d*):/.exec(s);
  const epoch = m ? m[1]! : null;
  const rest = m ? s.slice(m[0].length) : s;
  const hyphen = rest.lastIndexOf('-');
  return hyphen >= 0 ? { epoch, version: rest.slice(0, hyphen), release: rest.slice(hyphen + 1) } : { epoch, version: rest, release: null };
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isLetter = (c: string | undefined) => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
const isSegmentStart = (c: string | undefined) => isDigit(c) || isLetter(c) || c === '~' || c === '^';

/** rpmvercmp over two strings: -1, 0 or 1. */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !isSegmentStart(a[i])) i++;
    while (j < b.length && !isSegmentStart(b[j])) j++;
    const ca = a[i];
    const cb = b[j];
    if (ca === '~' || cb === '~') {
      if (ca !== '~') return 1;
      if (cb !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (ca === '^' || cb === '^') {
      if (ca === undefined) return -1;
      if (cb === undefined) return 1;
      if (ca !== '^') return 1;
      if (cb !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (ca === undefined || cb === undefined) break;
    const numeric = isDigit(ca);
    const inRun = numeric ? isDigit : isLetter;
    let ei = i;
    while (ei < a.length && inRun(a[ei])) ei++;
    let ej = j;
    while (ej < b.length && inRun(b[ej])) ej++;
    // b has a segment of the other kind here: a numeric segment is newer than an alphabetic one.
    if (ej === j) return numeric ? 1 : -1;
    let x = a.slice(i, ei);
    let y = b.slice(j, ej);
    if (numeric) {
      x = x.replace(/^0+/, '');
      y = y.replace(/^0+/, '');
      if (x.length !== y.length) return x.length < y.length ? -1 : 1;
    }
    if (x !== y) return x < y ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

function compareOptional(a: string | null, b: string | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  return rpmvercmp(a, b);
}

/** Negative, 0 or positive as rpm orders two EVRs; total over any text. */
export function compareRpmVersions(a: string, b: string): number {
  const x = splitEvr(a.trim());
  const y = splitEvr(b.trim());
  return rpmvercmp(x.epoch || '0', y.epoch || '0') || rpmvercmp(x.version, y.version) || compareOptional(x.release, y.release);
}
