/**
 * Passphrase encryption of a whole backup archive. Layout: the magic "GRSNBK1\n", a 16-byte
 * scrypt salt, a 12-byte AES-GCM IV (together the header, authenticated as additional data),
 * the AES-256-GCM ciphertext of the .tar.gz, and the 16-byte tag at the end.
 *
 * scrypt N=2^15, r=8, p=1 costs about 32 MiB and a tenth of a second per try: cheap once per
 * backup, dear for guessing. GCM authenticates only at the end of the stream, so the restore
 * decrypts into a temporary file and extracts nothing before the tag has been verified.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const ENCRYPTED_MAGIC = Buffer.from('GRSNBK1\n', 'latin1');
const SALT = 16;
const IV = 12;
const TAG = 16;
const HEADER = ENCRYPTED_MAGIC.length + SALT + IV;
const SCRYPT: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
export const MIN_PASSPHRASE_LENGTH = 8;

function deriveKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(passphrase.normalize('NFC'), salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))));
}

/** A transform that turns a stream into the encrypted layout above. */
export async function encryptingStream(passphrase: string): Promise<Transform> {
  const salt = randomBytes(SALT);
  const iv = randomBytes(IV);
  const header = Buffer.concat([ENCRYPTED_MAGIC, salt, iv]);
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(passphrase, salt), iv);
  cipher.setAAD(header);
  let started = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (!started) {
        started = true;
        this.push(header);
      }
      done(null, cipher.update(chunk));
    },
    flush(done) {
      if (!started) this.push(header);
      this.push(cipher.final());
      done(null, cipher.getAuthTag());
    },
  });
}

/** Whether the file starts with the encrypted archive's magic. */
export async function isEncryptedArchive(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(ENCRYPTED_MAGIC.length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return bytesRead === head.length && head.equals(ENCRYPTED_MAGIC);
  } finally {
    await fh.close();
  }
}

export class WrongPassphraseError extends Error {}

/** Decrypts `file` into `out` (mode 0600); throws WrongPassphraseError when the tag does not verify. */
export async function decryptArchive(file: string, out: string, passphrase: string): Promise<void> {
  const { size } = await stat(file);
  if (size < HEADER + TAG) throw new Error(`${file} is too short to be an encrypted Garrison backup`);
  const fh = await open(file, 'r');
  const header = Buffer.alloc(HEADER);
  const tag = Buffer.alloc(TAG);
  try {
    await fh.read(header, 0, HEADER, 0);
    await fh.read(tag, 0, TAG, size - TAG);
  } finally {
    await fh.close();
  }
  if (!header.subarray(0, ENCRYPTED_MAGIC.length).equals(ENCRYPTED_MAGIC)) throw new Error(`${file} is not an encrypted Garrison backup`);
  const salt = header.subarray(ENCRYPTED_MAGIC.length, ENCRYPTED_MAGIC.length + SALT);
  const iv = header.subarray(ENCRYPTED_MAGIC.length + SALT);
  const decipher = createDecipheriv('aes-256-gcm', await deriveKey(passphrase, salt), iv);
  decipher.setAAD(header);
  decipher.setAuthTag(tag);
  try {
    // An empty body (size === HEADER + TAG) cannot be read as a range: there is nothing to stream.
    const body = size > HEADER + TAG ? createReadStream(file, { start: HEADER, end: size - TAG - 1 }) : [];
    await pipeline(body, decipher, createWriteStream(out, { mode: 0o600 }));
  } catch (err) {
    if (err instanceof Error && /unable to authenticate|auth/i.test(err.message)) {
      throw new WrongPassphraseError('the passphrase is wrong or the archive was altered (authentication failed); nothing was restored');
    }
    throw err;
  }
}
