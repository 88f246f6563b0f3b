/**
 * Signature definitions of the sample scanner: the file format, its validation, and the
 * default set that the definitions package ships.
 *
 * This file is part of the service's payload (copied into the application package), so it
 * imports nothing at all.
 *
 * The file (`<product dir>/definitions/definitions.json`):
 *
 *   { "version": "2026.11.21.1",
 *     "signatures": [ { "name": "EICAR-Test-File", "kind": "substring", "pattern": "X5O!P%@AP…" },
 *                     { "name": "Some-Marker", "kind": "hex", "pattern": "4741 5252 49" } ] }
 *
 * - "substring": the pattern's UTF-8 bytes occur anywhere in the file.
 * - "hex": the bytes written in hexadecimal (whitespace between digits allowed) occur
 *   anywhere in the file.
 *
 * A file that breaks any rule is refused as a whole: the service keeps the last set that
 * loaded, since scanning with half a definition set would silently miss threats.
 */

export const SIGNATURE_KINDS = ['substring', 'hex'] as const;
export type SignatureKind = (typeof SIGNATURE_KINDS)[number];

export interface SignatureDefinition {
  name: string;
  kind: SignatureKind;
  pattern: string;
}

export interface DefinitionsFile {
  version: string;
  signatures: SignatureDefinition[];
}

/** A signature ready for matching. */
export interface CompiledSignature {
  name: string;
  bytes: Buffer;
}

export interface CompiledDefinitions {
  version: string;
  signatures: CompiledSignature[];
  /** The longest pattern, in bytes: how much of a chunk is carried into the next one. */
  maxPatternBytes: number;
}

export const MAX_SIGNATURES = 100_000;
export const MAX_PATTERN_BYTES = 4096;
const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$/;

/**
 * The EICAR anti-virus test string. It is assembled from two halves so that no source file
 * of the repository contains it whole: a real anti-virus on a developer's machine would
 * otherwise quarantine our sources.
 */
export const EICAR_TEST_STRING = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
export const EICAR_SIGNATURE_NAME = 'EICAR-Test-File';

/** A harmless marker that the "hex" kind matches; handy for tests and demonstrations. */
export const SAMPLE_HEX_MARKER = 'GARRISON-SAMPLE-SCANNER-HEX-TEST';
export const SAMPLE_HEX_SIGNATURE_NAME = 'Garrison-Sample-Hex-Test';

/**
 * The default signature set. EICAR is stored as hex so that the definitions file itself does
 * not contain the test string (a real anti-virus would flag the file, not what it describes).
 */
export function defaultSignatures(): SignatureDefinition[] {
  return [
    { name: EICAR_SIGNATURE_NAME, kind: 'hex', pattern: Buffer.from(EICAR_TEST_STRING, 'utf8').toString('hex') },
    { name: SAMPLE_HEX_SIGNATURE_NAME, kind: 'hex', pattern: Buffer.from(SAMPLE_HEX_MARKER, 'utf8').toString('hex') },
  ];
}

export class DefinitionsError extends Error {
  override name = 'DefinitionsError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The pattern's bytes; throws DefinitionsError when it cannot be one. */
export function patternBytes(kind: SignatureKind, pattern: string): Buffer {
  let bytes: Buffer;
  if (kind === 'hex') {
    const digits = pattern.replace(/\s+/g, '');
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(digits)) throw new DefinitionsError('a hex pattern needs an even number of hexadecimal digits');
    bytes = Buffer.from(digits, 'hex');
  } else {
    bytes = Buffer.from(pattern, 'utf8');
  }
  if (bytes.length === 0) throw new DefinitionsError('empty pattern');
  if (bytes.length > MAX_PATTERN_BYTES) throw new DefinitionsError(`pattern longer than ${MAX_PATTERN_BYTES} bytes`);
  return bytes;
}

/** Checks a parsed definitions document and compiles it; throws DefinitionsError with the first problem. */
export function compileDefinitions(doc: unknown): CompiledDefinitions {
  if (!isRecord(doc)) throw new DefinitionsError('definitions must be a JSON object');
  const { version, signatures } = doc;
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version)) throw new DefinitionsError('"version" must be a version string such as 2026.11.21.1');
  if (!Array.isArray(signatures)) throw new DefinitionsError('"signatures" must be an array');
  if (signatures.length > MAX_SIGNATURES) throw new DefinitionsError(`more than ${MAX_SIGNATURES} signatures`);
  const compiled: CompiledSignature[] = [];
  const names = new Set<string>();
  let maxPatternBytes = 0;
  signatures.forEach((s, i) => {
    const where = `signature ${i}`;
    if (!isRecord(s)) throw new DefinitionsError(`${where}: must be an object`);
    if (typeof s.name !== 'string' || !NAME_PATTERN.test(s.name)) throw new DefinitionsError(`${where}: "name" must be 1-128 letters, digits or ._:/+-`);
    if (names.has(s.name)) throw new DefinitionsError(`${where}: duplicate name "${s.name}"`);
    if (s.kind !== 'substring' && s.kind !== 'hex') throw new DefinitionsError(`${where} (${s.name}): "kind" must be "substring" or "hex"`);
    if (typeof s.pattern !== 'string') throw new DefinitionsError(`${where} (${s.name}): "pattern" must be a string`);
    let bytes: Buffer;
    try {
      bytes = patternBytes(s.kind, s.pattern);
    } catch (err) {
      throw new DefinitionsError(`${where} (${s.name}): ${(err as Error).message}`);
    }
    names.add(s.name);
    compiled.push({ name: s.name, bytes });
    maxPatternBytes = Math.max(maxPatternBytes, bytes.length);
  });
  return { version, signatures: compiled, maxPatternBytes };
}

/** Parses and compiles the text of a definitions file. */
export function parseDefinitions(text: string): CompiledDefinitions {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DefinitionsError(`not valid JSON: ${(err as Error).message}`);
  }
  return compileDefinitions(doc);
}
