/**
 * The default version scheme, "semver": semver's precedence, made lenient enough for what
 * vendors actually ship (docs/adr/0015-version-schemes.md).
 *
 * - The release part is any number of dot-separated parts (Windows' 10.7.0.1234, a vendor's
 *   1.2, a date 2026.11.21), missing parts counting as 0 (1.2 == 1.2.0).
 * - Inside a part, runs of digits compare as numbers and runs of other characters by ASCII,
 *   a digit run before a non-digit run, a part that is a prefix of the other first: so
 *   1.8.0_99 < 1.8.0_100, 5.5p2 < 5.5p10, 5.5 < 5.5p1, 1.0.2a < 1.0.2b. The same holds for
 *   pre-release identifiers (1.0-rc9 < 1.0-rc10), where semver itself compares ASCII
 *   ("rc10" < "rc9"): a deliberate difference.
 * - A pre-release follows "-" (1.0.0-beta.2), as in semver: it sorts before its release,
 *   identifier by identifier, a longer list winning when one is a prefix of the other.
 * - A pre-release tag without a dash is a pre-release too: a part that ends in alpha, beta,
 *   pre, preview, rc or dev (with or without a number), or in a, b or c followed by a number
 *   (1.0rc1, 128.0b3, 3.13.0a1, 2.0.beta1). 1.0rc1 orders as 1.0-rc1. A letter without a
 *   number (OpenSSL's 1.0.2b) or any other letters (5.5p2, 8u202) are not pre-releases.
 * - Build metadata after "+" is ignored; leading "v" and "=" and surrounding space are
 *   ignored ("v1.2" == "1.2", as node-semver's loose mode).
 *
 * Validity (parseSemverVersion): a release part that starts with a digit; parts and
 * identifiers of ASCII letters, digits and "_" ("-" too in pre-release and build identifiers),
 * none empty. Text that does not parse is still ordered (compareSemverVersions is total) by
 * the same rules over whatever it splits into.
 */

export interface SemverVersion {
  release: string[];
  prerelease: string[] | null;
  build: string[] | null;
}

const PRE_TAG = /^(\d*)((?:alpha|beta|preview|pre|rc|dev)\d*|[abc]\d+)$/i;

function normalize(text: string): string {
  const s = text.trim();
  const stripped = s.replace(/^[=vV\s]+/, '');
  return /^\d/.test(stripped) ? stripped : s;
}

/** Splits any text into release, pre-release and build; never refuses. */
function split(text: string): SemverVersion {
  let v = normalize(text);
  let build: string[] | null = null;
  const plus = v.indexOf('+');
  if (plus >= 0) {
    build = v.slice(plus + 1).split('.');
    v = v.slice(0, plus);
  }
  const dash = v.indexOf('-');
  const core = dash >= 0 ? v.slice(0, dash) : v;
  let prerelease = dash >= 0 ? v.slice(dash + 1).split('.') : null;
  let release = core === '' ? [] : core.split('.');
  // An undashed pre-release tag: the parts from the first that carries one go to the pre-release.
  for (let i = 0; i < release.length; i++) {
    const m = PRE_TAG.exec(release[i]!);
    if (!m || (i === 0 && m[1] === '')) continue;
    const head = release.slice(0, i);
    if (m[1] !== '') head.push(m[1]!);
    prerelease = [m[2]!, ...release.slice(i + 1), ...(prerelease ?? [])];
    release = head;
    break;
  }
  return { release, prerelease, build };
}

const RELEASE_PART = /^[A-Za-z0-9_]+$/;
const IDENTIFIER = /^[A-Za-z0-9_-]+$/;

export function parseSemverVersion(text: string): { ok: true; version: SemverVersion } | { ok: false; error: string } {
  const v = normalize(text);
  if (v === '') return { ok: false, error: 'the version is empty' };
  if (!/^\d/.test(v)) return { ok: false, error: 'the version does not start with a digit' };
  const plus = v.indexOf('+');
  const dash = v.indexOf('-');
  const core = v.slice(0, dash >= 0 && (plus < 0 || dash < plus) ? dash : plus >= 0 ? plus : v.length);
  for (const part of core.split('.')) {
    if (part === '') return { ok: false, error: `"${core}" has an empty part` };
    if (!RELEASE_PART.test(part)) return { ok: false, error: `the part "${part}" has a character other than letters, digits and "_"` };
  }
  const check = (what: string, ids: string[] | null) => {
    if (ids === null) return null;
    for (const id of ids) {
      if (id === '') return `the ${what} has an empty identifier`;
      if (!IDENTIFIER.test(id)) return `the ${what} identifier "${id}" has a character other than letters, digits, "_" and "-"`;
    }
    return null;
  };
  const parsed = split(v);
  const preText = dash >= 0 && (plus < 0 || dash < plus) ? v.slice(dash + 1, plus >= 0 ? plus : v.length).split('.') : null;
  const error = check('pre-release', preText) ?? check('build metadata', parsed.build);
  if (error !== null) return { ok: false, error };
  return { ok: true, version: parsed };
}

function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

const RUN = /\d+|\D+/g;
const isDigitRun = (run: string) => run.charCodeAt(0) >= 48 && run.charCodeAt(0) <= 57;

/** A part or identifier: digit runs as numbers, other runs by ASCII, digits first, prefix first. */
function comparePart(a: string, b: string): number {
  if (a === b) return 0;
  const x = a.match(RUN) ?? [];
  const y = b.match(RUN) ?? [];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const p = x[i]!;
    const q = y[i]!;
    const pd = isDigitRun(p);
    const qd = isDigitRun(q);
    let c: number;
    if (pd && qd) c = compareDigits(p, q);
    else if (pd !== qd) c = pd ? -1 : 1;
    else c = p < q ? -1 : p > q ? 1 : 0;
    if (c !== 0) return c;
  }
  return Math.sign(x.length - y.length);
}

/** Negative, 0 or positive by the semver scheme; total over any text. */
export function compareSemverVersions(a: string, b: string): number {
  const pa = split(a);
  const pb = split(b);
  const n = Math.max(pa.release.length, pb.release.length);
  for (let i = 0; i < n; i++) {
    const c = comparePart(pa.release[i] ?? '0', pb.release[i] ?? '0');
    if (c !== 0) return c;
  }
  if (pa.prerelease === null || pb.prerelease === null) {
    if (pa.prerelease === pb.prerelease) return 0;
    return pa.prerelease === null ? 1 : -1;
  }
  const m = Math.min(pa.prerelease.length, pb.prerelease.length);
  for (let i = 0; i < m; i++) {
    const c = comparePart(pa.prerelease[i]!, pb.prerelease[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(pa.prerelease.length - pb.prerelease.length);
}
