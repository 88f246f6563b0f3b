/** The product id and task types shared by both halves of the sample scanner's plug-in. */
export const SAMPLE_SCANNER_PRODUCT = 'sample-scanner';
export const SCAN_TASK_TYPE = 'scan';
export const UPDATE_DEFINITIONS_TASK_TYPE = 'update-definitions';
export const DEFINITIONS_PRODUCT = 'sample-scanner-definitions';

/** Settings of a `scan` task. */
export interface ScanTaskSettings {
  /** Absolute paths of files and folders; folders are scanned recursively. */
  paths: string[];
  /** Files larger than this are skipped (counted, not read). */
  maxFileBytes?: number;
}

/** Absolute on this platform or on Windows (a task may be written on one and run on the other). */
export function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');
}

/** What is wrong with scan settings, as human-readable problems. */
export function scanSettingsProblems(settings: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const { paths, maxFileBytes } = settings;
  if (!Array.isArray(paths) || paths.length === 0) problems.push('"paths" must list at least one path');
  else {
    for (const p of paths) {
      if (typeof p !== 'string' || p.length === 0) problems.push('every path must be a non-empty string');
      else if (p.includes('\0')) problems.push(`path ${JSON.stringify(p)} contains a NUL character`);
      else if (!isAbsolutePath(p)) problems.push(`path "${p}" is not absolute`);
    }
  }
  if (maxFileBytes !== undefined && (typeof maxFileBytes !== 'number' || !Number.isSafeInteger(maxFileBytes) || maxFileBytes < 1)) {
    problems.push('"maxFileBytes" must be a positive integer');
  }
  return [...new Set(problems)];
}
