/**
 * Request ids. An incoming X-Request-Id is kept when it is a plain token of at most 128
 * characters (letters, digits and `._:-`): anything else (a newline, a 10 KB value) would let a
 * caller write into the log or bloat it, so it is replaced by a new id.
 */
import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';
const TOKEN = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(header: string | string[] | undefined): string {
  const given = Array.isArray(header) ? header[0] : header;
  return given !== undefined && TOKEN.test(given) ? given : randomUUID();
}
