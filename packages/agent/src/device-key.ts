/**
 * The device key (ADR 0013): an Ed25519 key pair made on the device at enrolment. The private
 * key stays in the state folder (device-key.pem, 0600) and never leaves the machine; the
 * server keeps the public key. A new credential secret is registered only with a signature by
 * this key over the challenge the server issued, so a bearer credential that leaked (a proxy
 * log, a copied request) is not enough to take the device over.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { credentialRotationPayload } from '@garrison/protocol';

export const DEVICE_KEY_FILE = 'device-key.pem';

export class DeviceKey {
  readonly #key: KeyObject;
  /** SPKI DER, base64url: what the server stores. */
  readonly publicKey: string;
  private constructor(key: KeyObject) {
    this.#key = key;
    this.publicKey = createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64url');
  }
  /** A new key pair, written (replacing any) to the state folder. */
  static async create(stateDir: string): Promise<DeviceKey> {
    const { privateKey } = generateKeyPairSync('ed25519');
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const file = path.join(stateDir, DEVICE_KEY_FILE);
    await writeFile(`${file}.tmp`, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    return new DeviceKey(privateKey);
  }
  /** The key in the state folder, made now if there is none (an agent enrolled before device keys). */
  static async load(stateDir: string): Promise<DeviceKey> {
    const pem = await readFile(path.join(stateDir, DEVICE_KEY_FILE), 'utf8').catch(() => null);
    if (pem) {
      try {
        return new DeviceKey(createPrivateKey(pem));
      } catch {
        // Unreadable: a new key; the server keeps the one it has, so rotation will say why.
      }
    }
    return DeviceKey.create(stateDir);
  }
  /** The signature that registers `secret` as the device's new credential secret. */
  signRotation(deviceId: string, challenge: string, secret: string): string {
    return sign(null, Buffer.from(credentialRotationPayload(deviceId, challenge, secret)), this.#key).toString('base64url');
  }
}
