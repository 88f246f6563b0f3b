/**
 * The keys every server instance on one database must share, checked at start.
 *
 * The secret-store key decrypts the secrets in the database, and the package signing key
 * signs what agents verify. A second instance started on its own data folder used to make
 * its own of both without a word; every check-in of a device with a secret-using task then
 * failed (INTERNAL, "unable to authenticate data"), and its packages carried signatures no
 * agent enrolled elsewhere accepts. Now the database remembers them: a sealed check value for
 * the secret key (the key itself never leaves the instance) and the signing public key. The
 * first instance records them; any later one whose keys differ refuses to start with a plain
 * sentence saying what to give it (INSTANCE_KEY_MISMATCH).
 */
import { AppError } from './errors.ts';
import type { SettingsStore } from './storage/settings-store.ts';

const SECRET_CHECK = 'instance.secret-key-check';
const SIGNING_KEY = 'instance.signing-public-key';
const CHECK_PLAIN = 'garrison secret-store key check';

export async function checkInstanceKeys(deps: {
  settings: Pick<SettingsStore, 'get' | 'setIfAbsent'>;
  secrets: { encrypt(plain: string): string; decrypt(stored: string): string };
  /** One secret's ciphertext from the database, if any (for databases from before the check value). */
  anyStoredSecret: () => Promise<string | undefined>;
  signingPublicKeyPem: string;
}): Promise<void> {
  const opens = (stored: string, expect?: string): boolean => {
    try {
      const plain = deps.secrets.decrypt(stored);
      return expect === undefined || plain === expect;
    } catch {
      return false;
    }
  };
  const secretKeyHelp =
    'Give this instance the secret-store key of the others (GARRISON_SECRET_KEY, or DATA/secret.key copied from the first instance); see "Running several instances" in the README.';
  let check = await deps.settings.get<string>(SECRET_CHECK);
  if (check === undefined) {
    const existing = await deps.anyStoredSecret();
    if (existing !== undefined && !opens(existing)) {
      throw new AppError('INSTANCE_KEY_MISMATCH', `this server's secret-store key cannot decrypt the secrets already in the database. ${secretKeyHelp}`);
    }
    check = await deps.settings.setIfAbsent(SECRET_CHECK, deps.secrets.encrypt(CHECK_PLAIN));
  }
  if (!opens(check, CHECK_PLAIN)) {
    throw new AppError('INSTANCE_KEY_MISMATCH', `this server's secret-store key is not the one the database was set up with: it could not decrypt its secrets. ${secretKeyHelp}`);
  }
  const signing = await deps.settings.setIfAbsent(SIGNING_KEY, deps.signingPublicKeyPem);
  if (signing !== deps.signingPublicKeyPem) {
    throw new AppError(
      'INSTANCE_KEY_MISMATCH',
      'this server\'s package signing key (DATA/signing-key.pem) is not the one the database knows: agents would refuse the packages it signs. Copy the signing key of the first instance into this data folder; see "Running several instances" in the README.',
    );
  }
}
