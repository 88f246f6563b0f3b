/**
 * The dpkg version scheme: `[epoch:]upstream[-revision]`, ordered as Debian policy 5.6.12
 * and dpkg's verrevcmp do (docs/adr/0015-version-schemes.md). Written here from the policy's
 * description, not taken from dpkg (GPL); the vectors in test/vectors/dpkg-*.json come from
 * dpkg's own tests.
 *
 * Ordering: epochs numerically; then the upstream version, then the revision, each compared
 * left to right in alternating runs: a run of non-digits character by character, where "~"
 * sorts before everything (even the end of the string, so 1.0~rc1 < 1.0), letters before
 * non-letters, ASCII within each class; then a run of digits numerically (leading zeros
 * ignored, any length). A missing revision is the empty string, which compares equal to
 * "0": 1.0 == 1.0-0.
 *
 * Validity (parseDpkgVersion) is dpkg's parseversion, with its warnings made errors: a
 * repository refuses what dpkg would only warn about (an upstream version that does not start
 * with a digit, characters outside [A-Za-z0-9.+~-:]). compareDpkgVersions is total: text that
 * does not parse is still ordered by the same algorithm (as `dpkg --compare-versions` does
 * after its warning), an unreadable epoch counting as part of the upstream version.
 */

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** dpkg keeps the epoch in an int. */
const MAX_EPOCH = 2147483647;

export function parseDpkgVersion(text: string): { ok: true; version: DpkgVersion } | { ok: false; error: string } {
  const s = text.trim();
  if (s === '') return { ok: false, error: 'the version is empty' };
  if (/\s/.test(s)) return { ok: false, error: 'the version has embedded spaces' };
  let rest = s;
  let epoch = 0;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const e = s.slice(0, colon);
    if (e === '') return { ok: false, error: 'the epoch before ":" is empty' };
    if (!/^\d+$/.test(e)) return { ok: false, error: `the epoch "${e}" is not a number` };
    epoch = Number(e);
    if (!Number.isSafeInteger(epoch) || epoch > MAX_EPOCH) return { ok: false, error: `the epoch ${e} is too big (at most ${MAX_EPOCH})` };
    rest = s.slice(colon + 1);
    if (rest === '') return { ok: false, error: 'nothing follows the epoch' };
  }
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen >= 0 ? rest.slice(0, hyphen) : rest;
  const revision = hyphen >= 0 ? rest.slice(hyphen + 1) : '';
  if (hyphen >= 0 && revision === '') return { ok: false, error: 'the revision after the last "-" is empty' };
  if (upstream === '') return { ok: false, error: 'the upstream version is empty' };
  if (!/^\d/.test(upstream)) return { ok: false, error: `the upstream version "${upstream}" does not start with a digit` };
  const badUp = /[^A-Za-z0-9.+~:-]/.exec(upstream);
  if (badUp) return { ok: false, error: `"${badUp[0]}" is not allowed in an upstream version (letters, digits and . + ~ - : are)` };
  const badRev = /[^A-Za-z0-9.+~]/.exec(revision);
  if (badRev) return { ok: false, error: `"${badRev[0]}" is not allowed in a revision (letters, digits and . + ~ are)` };
  return { ok: true, version: { epoch, upstream, revision } };
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** The weight of a character in a non-digit run; NaN (past the end) weighs as nothing. */
function weight(c: number): number {
  if (Number.isNaN(c) || isDigit(c)) return 0;
  if (isLetter(c)) return c;
  if (c === 126 /* ~ */) return -1;
  return c + 256;
}

/** Debian's comparison of one part (upstream version or revision). */
function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit runs, character by character (the shorter one continues as weight 0).
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const wa = weight(i < a.length ? a.charCodeAt(i) : NaN);
      const wb = weight(j < b.length ? b.charCodeAt(j) : NaN);
      if (wa !== wb) return wa < wb ? -1 : 1;
      i++;
      j++;
    }
    // Digit runs, as numbers of any length.
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    let first = 0;
    while (i < a.length && j < b.length && isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (first === 0) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (first !== 0) return first < 0 ? -1 : 1;
  }
  return 0;
}

/** Splits any text the way dpkg does, without refusing anything (for the total order). */
function splitLoose(text: string): { epoch: string; upstream: string; revision: string } {
  let s = text.trim();
  let epoch = '0';
  const m = /^(\d+):/.exec(s);
  if (m) {
    epoch = m[1]!.replace(/^0+(?=\d)/, '');
    s = s.slice(m[0].length);
  }
  const hyphen = s.lastIndexOf('-');
  return hyphen >= 0 ? { epoch, upstream: s.slice(0, hyphen), revision: s.slice(hyphen + 1) } : { epoch, upstream: s, revision: '' };
}

function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative, 0 or positive as dpkg orders `a` and `b`; total over any text. */
export function compareDpkgVersions(a: string, b: string): number {
  const x = splitLoose(a);
  const y = splitLoose(b);
  return compareDigits(x.epoch, y.epoch) || comparePart(x.upstream, y.upstream) || comparePart(x.revision, y.revision);
}
