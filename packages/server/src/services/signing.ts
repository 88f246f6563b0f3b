/**
 * The server's package-signing key: Ed25519, created on first start in the data folder
 * (mode 0600). Its public key reaches agents at enrolment; agents verify every package with
 * it before anything of the package runs. Instances sharing a database share it too: the
 * database keeps it sealed with the secret-store key (instance-keys.ts), and an instance with
 * an empty data folder takes it from there.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const SIGNING_KEY_FILE = 'signing-key.pem';

export class SigningKey {
  readonly #private: KeyObject;
  readonly publicKeyPem: string;
  private constructor(privateKey: KeyObject) {
    this.#private = privateKey;
    this.publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  }
  static async loadOrCreate(dataDir: string): Promise<SigningKey> {
    const existing = await SigningKey.load(dataDir);
    if (existing) return existing;
    const key = SigningKey.generate();
    await key.writeTo(dataDir);
    return key;
  }
  /** The key in the data folder, or null when there is none. */
  static async load(dataDir: string): Promise<SigningKey | null> {
    const file = path.join(dataDir, SIGNING_KEY_FILE);
    return existsSync(file) ? SigningKey.fromPem(await readFile(file, 'utf8')) : null;
  }
  static fromPem(privateKeyPem: string): SigningKey {
    return new SigningKey(createPrivateKey(privateKeyPem));
  }
  static generate(): SigningKey {
    return new SigningKey(generateKeyPairSync('ed25519').privateKey);
  }
  /** Writes the key into the data folder (mode 0600); never over a file already there. */
  async writeTo(dataDir: string): Promise<void> {
    await writeFile(path.join(dataDir, SIGNING_KEY_FILE), this.privateKeyPem(), { mode: 0o600, flag: 'wx' });
  }
  /** The private key, PKCS#8 PEM: only for the data folder and the sealed copy in the database. */
  privateKeyPem(): string {
    return this.#private.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
  sign(payload: string): string {
    return sign(null, Buffer.from(payload, 'utf8'), this.#private).toString('base64');
  }
}
