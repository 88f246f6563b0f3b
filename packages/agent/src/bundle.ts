/**
 * Builds the agent as one JavaScript file (esbuild, from the registry's prebuilt binary
 * package): what an agent package carries, what self-update installs, and what a
 * single-executable agent is made of (as CommonJS, see sea.ts). Only Node.js is needed to run it.
 */
import { build } from 'esbuild';
import path from 'node:path';

export interface AgentBundleOptions {
  version: string;
  /** The entry module; default bundle-entry.ts (`node agent.mjs [args]` is `garrison agent [args]`). */
  entry?: string;
  /**
   * 'esm' (default): the agent.mjs of packages and runtimes. 'cjs': for the main script of a
   * single executable (Node 24's SEA runs its injected script as CommonJS; see sea.ts). A CJS
   * entry must not use top-level await or import.meta.
   */
  format?: 'esm' | 'cjs';
}

export async function buildAgentBundle(outFile: string, opts: AgentBundleOptions): Promise<void> {
  const format = opts.format ?? 'esm';
  await build({
    entryPoints: [opts.entry ?? path.join(import.meta.dirname, 'bundle-entry.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format,
    target: 'node22',
    minify: false,
    legalComments: 'none',
    define: { __GARRISON_AGENT_VERSION__: JSON.stringify(opts.version) },
    // ws's optional native accelerators are not needed; some dependencies still call require().
    external: ['bufferutil', 'utf-8-validate'],
    // An ES module has no require() for the bundled CommonJS dependencies' built-in modules:
    // give it one. CommonJS output has its own.
    ...(format === 'esm' ? { banner: { js: "import { createRequire as __garrisonRequire } from 'node:module'; const require = __garrisonRequire(import.meta.url);" } } : {}),
    logLevel: 'silent',
  });
}

/**
 * An agent package for the master repository: product "garrison", kind "agent", with the
 * bundled agent as its payload. Deployed like any product; the agent installs it by staging
 * the new runtime for its launcher (self-update) instead of running an install command.
 */
export async function buildAgentPackage(outFile: string, opts: { version: string; bundle?: string }): Promise<string> {
  const { mkdtemp, writeFile, copyFile, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const tar = await import('tar');
  const { PACKAGE_MANIFEST_FILE } = await import('@garrison/protocol');
  const stage = await mkdtemp(path.join(os.tmpdir(), 'garrison-agent-pkg-'));
  try {
    if (opts.bundle) await copyFile(opts.bundle, path.join(stage, 'agent.mjs'));
    else await buildAgentBundle(path.join(stage, 'agent.mjs'), { version: opts.version });
    const manifest = {
      product: 'garrison',
      name: 'Garrison agent',
      version: opts.version,
      kind: 'agent',
      description: 'The Garrison agent (one JavaScript file for Node.js)',
      platforms: ['any'],
      commands: { install: { shell: 'sh', command: 'true' } },
    };
    await writeFile(path.join(stage, PACKAGE_MANIFEST_FILE), JSON.stringify(manifest, null, 2));
    await tar.c({ gzip: true, file: outFile, cwd: stage }, ['.']);
    return outFile;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
