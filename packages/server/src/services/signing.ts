/**
 * The server's package-signing key: Ed25519, created on first start in the data folder
 * (mode 0600). Its public key reaches agents at enrolment; agents verify every package with
 * it before anything of the package runs.
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
    const file = path.join(dataDir, SIGNING_KEY_FILE);
    if (existsSync(file)) return new SigningKey(createPrivateKey(await readFile(file, 'utf8')));
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    return new SigningKey(privateKey);
  }
  sign(payload: string): string {
    return sign(null, Buffer.from(payload, 'utf8'), this.#private).toString('base64');
  }
}
