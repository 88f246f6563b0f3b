/** Reading the files and standard input that options name; failures are usage errors. */
import { readFile, writeFile } from 'node:fs/promises';
import { UsageError } from './usage-error.ts';

export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A file's text; "-" reads standard input. */
export async function readText(file: string, option: string): Promise<string> {
  if (file === '-') return readStdin();
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${option}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export async function readJson(file: string, option: string): Promise<unknown> {
  const text = await readText(file, option);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${option}: ${file} is not valid JSON (${(err as Error).message})`);
  }
}

/** "JSON" or "@FILE" → the parsed value. */
export async function jsonOrFile(value: string, option: string): Promise<unknown> {
  if (value.startsWith('@')) return readJson(value.slice(1), option);
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new UsageError(`${option} is not valid JSON (${(err as Error).message}); give JSON or @FILE`);
  }
}

export async function writeText(file: string, text: string, option: string): Promise<void> {
  try {
    await writeFile(file, text);
  } catch (err) {
    throw new UsageError(`${option}: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Reads a line from a terminal without echoing it. */
export function promptHidden(prompt: string, write: (text: string) => void): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    write(prompt);
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
