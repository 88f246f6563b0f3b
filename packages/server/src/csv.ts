/**
 * One CSV cell (RFC 4180 quoting), for every CSV the server writes (event export, reports).
 * Text starting with = + - @ or a tab/CR is prefixed with ' so that a spreadsheet does not run
 * it as a formula (device names, event messages and outputs come from devices). Objects are
 * written as JSON.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return typeof value === 'object' ? quote(JSON.stringify(value)) : String(value);
  return quote(FORMULA_START.test(value) ? `'${value}` : value);
}
function quote(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
