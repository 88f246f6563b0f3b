/**
 * The scanner's configuration: the settings of its policy type, the file that holds them on
 * the device (DIR/config.json), their rules, and the matching of exclusions.
 *
 * Shared by the three parties that must agree on it: the server half (the policy type's
 * defaults and validate()), the agent half (reads the file, reconciles it with the policy,
 * writes it back) and the service (runs with it). Part of the service's payload, so node:*
 * only — here nothing at all.
 *
 * The file is flat JSON, one key per setting, so that a local user can read and edit it by
 * hand (the agent puts back the locked settings such a user changes). Keys starting with "_"
 * are comments and ignored. Settings:
 *
 *   realTimeProtection       boolean: watch `watchedFolders` and scan files as they are written
 *   watchedFolders           absolute folders, watched recursively
 *   exclusions               never scanned, on demand and in real time: an absolute folder or
 *                            file (and everything under it), an absolute glob (/home/*\/cache),
 *                            or a relative glob matched at any depth (*.iso, node_modules)
 *   detectionAction          "report" (leave the file) or "quarantine" (move it away)
 *   quarantineFolder         absolute folder, or null: DIR/quarantine
 *   maxFileBytes             larger files are not scanned; null: no limit
 *   quarantineRetentionDays  quarantined files older than this are deleted; 0: kept forever
 *
 * Glob syntax: `*` any characters within one path segment, `**` any number of segments,
 * `?` one character, `[abc]` / `[!abc]` a character class. A pattern that matches a folder
 * excludes everything below it.
 */

export const DETECTION_ACTIONS = ['report', 'quarantine'] as const;
export type DetectionAction = (typeof DETECTION_ACTIONS)[number];

export interface ScannerConfig {
  realTimeProtection: boolean;
  watchedFolders: string[];
  exclusions: string[];
  detectionAction: DetectionAction;
  quarantineFolder: string | null;
  maxFileBytes: number | null;
  quarantineRetentionDays: number;
}

export type SettingName = keyof ScannerConfig;

/** The policy type's defaults: what a managed device runs unless a policy says otherwise. */
export const DEFAULT_CONFIG: Readonly<ScannerConfig> = Object.freeze({
  realTimeProtection: true,
  watchedFolders: [],
  exclusions: [],
  detectionAction: 'quarantine',
  quarantineFolder: null,
  maxFileBytes: null,
  quarantineRetentionDays: 30,
});

/**
 * What the service runs with when no config file exists (no policy applied yet): the
 * defaults, except that it only reports. An application nobody has configured does not move
 * its user's files away; the first policy decides.
 */
export const UNMANAGED_CONFIG: Readonly<ScannerConfig> = Object.freeze({ ...DEFAULT_CONFIG, detectionAction: 'report' });

export const SETTING_NAMES = Object.keys(DEFAULT_CONFIG) as SettingName[];

export const MAX_FOLDERS = 100;
export const MAX_EXCLUSIONS = 500;
export const MAX_PATH_LENGTH = 4096;
export const MAX_RETENTION_DAYS = 3650;

/** Absolute on this platform or on Windows (a policy may be written on one and applied on the other). */
export function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');
}

function pathProblem(what: string, p: unknown): string | null {
  if (typeof p !== 'string' || p.length === 0) return `${what} must be a non-empty string`;
  if (p.length > MAX_PATH_LENGTH) return `${what} is longer than ${MAX_PATH_LENGTH} characters`;
  if (p.includes('\0')) return `${what} ${JSON.stringify(p.slice(0, 200))} contains a NUL character`;
  if (!isAbsolutePath(p)) return `${what} "${p.slice(0, 200)}" is not an absolute path`;
  return null;
}

/** What is wrong with one setting's value, or null. Checks the value alone (the schema's job, done here too for the device's file). */
export function settingProblem(name: SettingName, value: unknown): string | null {
  switch (name) {
    case 'realTimeProtection':
      return typeof value === 'boolean' ? null : '"realTimeProtection" must be true or false';
    case 'watchedFolders': {
      if (!Array.isArray(value)) return '"watchedFolders" must be an array of absolute paths';
      if (value.length > MAX_FOLDERS) return `"watchedFolders" holds more than ${MAX_FOLDERS} folders`;
      for (const p of value) {
        const problem = pathProblem('a watched folder', p);
        if (problem) return problem;
      }
      return null;
    }
    case 'exclusions': {
      if (!Array.isArray(value)) return '"exclusions" must be an array of paths or globs';
      if (value.length > MAX_EXCLUSIONS) return `"exclusions" holds more than ${MAX_EXCLUSIONS} entries`;
      for (const p of value) {
        if (typeof p !== 'string' || p.trim().length === 0) return 'an exclusion must be a non-empty string';
        if (p.length > MAX_PATH_LENGTH || p.includes('\0')) return `exclusion ${JSON.stringify(p.slice(0, 200))} is too long or contains a NUL character`;
        try {
          globRegExp(p);
        } catch (err) {
          return `exclusion "${p.slice(0, 200)}": ${(err as Error).message}`;
        }
      }
      return null;
    }
    case 'detectionAction':
      return (DETECTION_ACTIONS as readonly unknown[]).includes(value) ? null : `"detectionAction" must be one of ${DETECTION_ACTIONS.map((a) => `"${a}"`).join(', ')}`;
    case 'quarantineFolder':
      return value === null ? null : pathProblem('"quarantineFolder"', value);
    case 'maxFileBytes':
      return value === null || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) ? null : '"maxFileBytes" must be a positive integer or null';
    case 'quarantineRetentionDays':
      return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_RETENTION_DAYS
        ? null
        : `"quarantineRetentionDays" must be an integer from 0 to ${MAX_RETENTION_DAYS}`;
  }
}

function normalizeFolder(p: string): string {
  const slashed = p.replace(/\\/g, '/');
  const trimmed = slashed.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** Whether `inner` is `outer` or below it (textually, after normalizing separators and trailing slashes). */
export function isWithin(inner: string, outer: string): boolean {
  const a = normalizeFolder(inner);
  const b = normalizeFolder(outer);
  if (a === b) return true;
  return a.startsWith(b === '/' ? '/' : `${b}/`);
}

/**
 * Rules across settings (on some or all of them): each value valid, no watched folder
 * listed twice, and a quarantine folder outside every watched folder (or the service would
 * watch its own quarantine) and not containing one. As sentences; empty when fine.
 */
export function configProblems(settings: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  for (const name of SETTING_NAMES) {
    if (!Object.hasOwn(settings, name)) continue;
    const p = settingProblem(name, settings[name]);
    if (p) problems.push(p);
  }
  if (problems.length > 0) return problems;
  const watched = (settings.watchedFolders as string[] | undefined) ?? [];
  const seen = new Set<string>();
  for (const w of watched) {
    const n = normalizeFolder(w);
    if (seen.has(n)) problems.push(`watched folder "${w}" is listed twice`);
    seen.add(n);
  }
  const quarantine = settings.quarantineFolder as string | null | undefined;
  if (typeof quarantine === 'string') {
    for (const w of watched) {
      if (isWithin(quarantine, w)) problems.push(`the quarantine folder "${quarantine}" is inside the watched folder "${w}": quarantined files would be watched`);
      else if (isWithin(w, quarantine)) problems.push(`the watched folder "${w}" is inside the quarantine folder "${quarantine}"`);
    }
  }
  return problems;
}

/** What a config file holds, setting by setting, as the agent half needs it to reconcile. */
export interface ConfigFileContents {
  /** The settings whose values are valid. */
  values: Partial<Record<SettingName, unknown>>;
  /** Settings present with a value that is not valid. */
  invalid: { setting: SettingName; value: unknown; problem: string }[];
  /** Set when the text is not a JSON object at all. */
  error: string | null;
}

/** Reads a config file's text setting by setting; unknown keys and "_" comments are ignored. */
export function readConfigText(text: string): ConfigFileContents {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { values: {}, invalid: [], error: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { values: {}, invalid: [], error: 'the configuration must be a JSON object' };
  const values: Partial<Record<SettingName, unknown>> = {};
  const invalid: ConfigFileContents['invalid'] = [];
  for (const name of SETTING_NAMES) {
    if (!Object.hasOwn(doc, name)) continue;
    const value = (doc as Record<string, unknown>)[name];
    const problem = settingProblem(name, value);
    if (problem) invalid.push({ setting: name, value, problem });
    else values[name] = value;
  }
  return { values, invalid, error: null };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * The service's reading: complete settings (missing ones take the defaults), or a
 * ConfigError when anything is wrong — the service then keeps the configuration it runs
 * with, as it does with definitions.
 */
export function parseConfig(text: string): ScannerConfig {
  const read = readConfigText(text);
  if (read.error) throw new ConfigError(read.error);
  if (read.invalid.length > 0) throw new ConfigError(read.invalid.map((i) => i.problem).join('; '));
  const config = { ...structuredClone(DEFAULT_CONFIG as ScannerConfig), ...structuredClone(read.values) } as ScannerConfig;
  const problems = configProblems(config as unknown as Record<string, unknown>);
  if (problems.length > 0) throw new ConfigError(problems.join('; '));
  return config;
}

/** The text the agent half writes: a comment for the local user, then the settings. */
export function configText(settings: Readonly<Record<string, unknown>>, note: string): string {
  const doc: Record<string, unknown> = { _comment: note };
  for (const name of SETTING_NAMES) if (Object.hasOwn(settings, name)) doc[name] = settings[name];
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * A glob as a regular expression over an absolute path with "/" separators. Matching the
 * pattern on a folder matches everything below it; a relative pattern matches at any depth.
 * Throws on a malformed pattern (an unclosed character class).
 */
export function globRegExp(pattern: string): RegExp {
  let p = pattern.trim().replace(/\\/g, '/');
  if (p.length > 1) p = p.replace(/\/+$/, '');
  const absolute = p.startsWith('/') || /^[A-Za-z]:\//.test(p);
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (p[i + 1] === '*') {
        // `**/` any number of whole segments; a trailing or inner `**` any characters.
        if (p[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) throw new Error('unclosed "[" in the pattern');
      let cls = p.slice(i + 1, end);
      const negate = cls.startsWith('!') || cls.startsWith('^');
      if (negate) cls = cls.slice(1);
      if (cls.length === 0) throw new Error('empty character class');
      re += `[${negate ? '^' : ''}${cls.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else {
      re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
    }
  }
  const prefix = absolute ? '^' : '^(?:.*/)?';
  return new RegExp(`${prefix}${re === '\\/' ? '' : re}(?:/.*)?$`);
}

/** A predicate over absolute paths: whether any exclusion covers it. */
export function compileExclusions(exclusions: readonly string[]): (path: string) => boolean {
  const res = exclusions.map(globRegExp);
  if (res.length === 0) return () => false;
  return (path) => {
    const p = path.replace(/\\/g, '/');
    return res.some((r) => r.test(p));
  };
}

/** The configuration as one comparable string (settings in their declared order). */
export function canonicalConfig(config: Readonly<ScannerConfig>): string {
  return JSON.stringify(Object.fromEntries(SETTING_NAMES.map((n) => [n, config[n]])));
}
