/** Real package archives for tests. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import type { PackageManifest } from '@garrison/protocol';
import { tempDir } from './helpers.ts';

export function manifest(product: string, version: string, extra: Partial<PackageManifest> = {}): PackageManifest {
  return {
    product,
    name: `Product ${product}`,
    version,
    kind: 'application',
    platforms: ['linux-*', 'darwin-*'],
    commands: { install: { shell: 'sh', script: 'echo installed > "$GARRISON_PRODUCT_DIR/installed"' } },
    ...extra,
  };
}

/** Builds a real .tar.gz package archive; `raw` replaces the manifest text. */
export async function buildArchive(m: PackageManifest | null, files: Record<string, string> = { 'payload.txt': 'hello' }, raw?: string): Promise<string> {
  const dir = await tempDir('garrison-pkg-');
  const stage = path.join(dir, 'stage');
  await mkdir(stage);
  if (m || raw) await writeFile(path.join(stage, 'garrison-package.json'), raw ?? JSON.stringify(m));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(stage, name), text);
  const file = path.join(dir, 'package.tgz');
  await tar.c({ gzip: true, file, cwd: stage }, ['.']);
  return file;
}

