/**
 * Products installed on the device from packages of the master repository. Each lives in
 * `<state>/products/<product>/`: `installed.json` (version, the signed manifest, where its
 * files are) and `packages/<version>/` (the extracted archive, where its commands run).
 * Installing means: download, verify hash and signature, extract, check the manifest, run
 * the install command; only then is the product recorded as installed. The manifest's
 * detect, status, start and stop commands are what the agent uses for a product whose
 * plug-in does not say otherwise.
 */
import type { FetchLike } from '@garrison/protocol/tls';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DeploymentInstruction, PackageCommand, PackageManifest, UpdateSource } from '@garrison/protocol';
import { runScript, type ScriptContext, type ScriptOutcome } from './executors/script.ts';
import { extractPackage, PackageVerificationError, verifyPackage } from './package-verify.ts';
import { describeSource, fetchVerified } from './update-sources.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { installRuntime } from './launcher.ts';

export interface InstalledRecord {
  product: string;
  version: string;
  manifest: PackageManifest;
  packageDir: string;
  installedAt: string;
}

export interface StepOutcome {
  ok: boolean;
  /** The step was refused before anything ran (verification failed). */
  refused: boolean;
  exitCode: number | null;
  reason: string | null;
  outputTail: string;
}

export interface ProductManagerOptions {
  productsRoot: string;
  downloadsDir: string;
  /**
   * Archives an offline installation package left for this agent, named `<sha256>.tgz`: a
   * package of the plan is taken from here instead of being downloaded, then verified exactly
   * like a download. Each file is used once (moved, then deleted whatever the outcome), so a
   * tampered one is refused once and the next attempt downloads from the server.
   */
  offlineDir?: string;
  tempDir: string;
  server(): { url: string; credential: string; signingPublicKey?: string; fetch: FetchLike };
  /**
   * Where archives come from, in order (the agent's policy: updateSources; update-sources.ts).
   * Default: this server only.
   */
  updateSources?(): readonly UpdateSource[];
  /** A source failed and the next is tried (the agent logs it). */
  onSourceFailed?(source: string, reason: string): void;
  /** After an install or uninstall: the agent (re)loads or drops a plug-in shipped in the package. */
  onInstalled?(record: InstalledRecord): Promise<void>;
  onUninstalled?(product: string): void;
}

const COMMAND_TIMEOUT_S = 15 * 60;

export class ProductManager {
  readonly #o: ProductManagerOptions;
  constructor(o: ProductManagerOptions) {
    this.#o = o;
  }
  productDir(product: string): string {
    return path.join(this.#o.productsRoot, product);
  }
  async record(product: string): Promise<InstalledRecord | undefined> {
    return readJson<InstalledRecord>(path.join(this.productDir(product), 'installed.json')).catch(() => undefined);
  }
  async installed(): Promise<InstalledRecord[]> {
    const names = await readdir(this.#o.productsRoot).catch(() => [] as string[]);
    const out: InstalledRecord[] = [];
    for (const n of names) {
      const r = await this.record(n);
      if (r) out.push(r);
    }
    return out;
  }

  /** Runs one of a package's commands in its folder, with the documented environment. */
  async run(manifest: PackageManifest, packageDir: string, which: keyof PackageManifest['commands'], signal?: AbortSignal, onProcessStarted?: ScriptContext['onProcessStarted']): Promise<ScriptOutcome | null> {
    const cmd: PackageCommand | undefined = manifest.commands[which];
    if (!cmd) return null;
    const env: Record<string, string> = {
      GARRISON_PACKAGE_DIR: packageDir,
      GARRISON_PRODUCT_DIR: this.productDir(manifest.product),
      GARRISON_PRODUCT: manifest.product,
      GARRISON_VERSION: manifest.version,
      GARRISON_NODE: process.execPath,
      ...(manifest.contentFor ? { GARRISON_CONTENT_DIR: this.productDir(manifest.contentFor) } : {}),
    };
    await mkdir(this.#o.tempDir, { recursive: true });
    return runScript(
      {
        ...(cmd.shell ? { shell: cmd.shell } : {}),
        ...(cmd.command ? { command: cmd.command } : {}),
        ...(cmd.script ? { script: cmd.script } : {}),
        ...(cmd.args ? { args: cmd.args } : {}),
        ...(cmd.successExitCodes ? { successExitCodes: cmd.successExitCodes } : {}),
        env,
        workingDirectory: packageDir,
        timeoutSeconds: cmd.timeoutSeconds ?? COMMAND_TIMEOUT_S,
      },
      { signal: signal ?? new AbortController().signal, tempDir: this.#o.tempDir, ...(onProcessStarted ? { onProcessStarted } : {}) },
    );
  }

  /**
   * Puts the package's archive at `archive`, verified: the offline copy when there is one
   * (used once, whatever its outcome), else from the update sources in order, the next one
   * tried when a source fails or its archive does not verify.
   */
  async #fetchArchive(pkg: NonNullable<DeploymentInstruction['package']>, archive: string, server: ReturnType<ProductManagerOptions['server']>, signingPublicKey: string): Promise<void> {
    if (this.#o.offlineDir && /^[0-9a-f]{64}$/.test(pkg.sha256)) {
      await mkdir(path.dirname(archive), { recursive: true, mode: 0o700 });
      // Same file system (both in the state folder): a rename, not a copy.
      if (await rename(path.join(this.#o.offlineDir, `${pkg.sha256}.tgz`), archive).then(() => true, () => false)) {
        await verifyPackage(archive, pkg, signingPublicKey);
        return;
      }
    }
    const sources = this.#o.updateSources?.() ?? [{ kind: 'server' as const }];
    await fetchVerified(sources, pkg.id, archive, server, (file) => verifyPackage(file, pkg, signingPublicKey), {
      onFailure: (source, err) => this.#o.onSourceFailed?.(describeSource(source), err.message),
    });
  }

  /** `onProcessStarted`: the run's process recorder (see process-ledger.ts), for the install command. */
  async install(step: DeploymentInstruction, signal: AbortSignal, onProcessStarted?: ScriptContext['onProcessStarted']): Promise<StepOutcome> {
    const pkg = step.package;
    if (!pkg) return { ok: false, refused: true, exitCode: null, reason: 'the instruction names no package', outputTail: '' };
    const server = this.#o.server();
    if (!server.signingPublicKey) {
      return { ok: false, refused: true, exitCode: null, reason: "this agent has no server signing key (enrolled before packages were signed); re-enrol it", outputTail: '' };
    }
    const archive = path.join(this.#o.downloadsDir, `${pkg.sha256}.tgz`);
    const productDir = this.productDir(pkg.product);
    const packageDir = path.join(productDir, 'packages', packageFolderName(pkg.version));
    try {
      await this.#fetchArchive(pkg, archive, server, server.signingPublicKey);
      await mkdir(productDir, { recursive: true, mode: 0o700 });
      await extractPackage(archive, packageDir, pkg);
    } catch (err) {
      await rm(archive, { force: true });
      const refused = err instanceof PackageVerificationError && err.code !== 'DOWNLOAD_FAILED';
      return { ok: false, refused, exitCode: null, reason: (err as Error).message, outputTail: '' };
    } finally {
      await rm(archive, { force: true });
    }
    const out = (await this.run(pkg.manifest, packageDir, 'install', signal, onProcessStarted))!;
    if (out.state !== 'succeeded' && out.state !== 'succeeded_with_warnings') {
      await rm(packageDir, { recursive: true, force: true });
      return { ok: false, refused: false, exitCode: out.exitCode, reason: out.reason ?? out.state, outputTail: out.outputTail };
    }
    const previous = await this.record(pkg.product);
    await writeJsonAtomic(path.join(productDir, 'installed.json'), { product: pkg.product, version: pkg.version, manifest: pkg.manifest, packageDir, installedAt: new Date().toISOString() } satisfies InstalledRecord);
    if (previous && previous.packageDir !== packageDir) await rm(previous.packageDir, { recursive: true, force: true });
    const record = (await this.record(pkg.product))!;
    try {
      await this.#o.onInstalled?.(record);
    } catch (err) {
      return { ok: false, refused: false, exitCode: null, reason: `installed, but its agent plug-in could not be loaded: ${(err as Error).message}`, outputTail: out.outputTail };
    }
    return { ok: true, refused: false, exitCode: out.exitCode, reason: null, outputTail: out.outputTail };
  }

  /**
   * Stages a new agent runtime from a verified agent package: its `agent.mjs` goes to
   * `<state>/runtime/<version>/`, and `update.json` asks the launcher to switch to it when
   * this agent exits with UPDATE_EXIT_CODE. The launcher rolls back if it does not come up.
   */
  async stageAgentUpdate(step: DeploymentInstruction, stateDir: string, currentVersion: string): Promise<StepOutcome> {
    const pkg = step.package;
    if (!pkg) return { ok: false, refused: true, exitCode: null, reason: 'the instruction names no package', outputTail: '' };
    if (!process.env.GARRISON_LAUNCHER) {
      return { ok: false, refused: false, exitCode: null, reason: 'this agent was not started by the Garrison launcher, so it cannot replace itself', outputTail: '' };
    }
    const failed = await readJson<{ version: string; reason: string }>(path.join(stateDir, 'update-failed.json')).catch(() => undefined);
    if (failed?.version === pkg.version) return { ok: false, refused: false, exitCode: null, reason: `an earlier update to ${pkg.version} was rolled back: ${failed.reason}`, outputTail: '' };
    const server = this.#o.server();
    if (!server.signingPublicKey) return { ok: false, refused: true, exitCode: null, reason: 'this agent has no server signing key; re-enrol it', outputTail: '' };
    const archive = path.join(this.#o.downloadsDir, `${pkg.sha256}.tgz`);
    const staging = path.join(this.#o.downloadsDir, `agent-${pkg.version}`);
    try {
      await this.#fetchArchive(pkg, archive, server, server.signingPublicKey);
      await extractPackage(archive, staging, pkg);
      await installRuntime(stateDir, pkg.version, path.join(staging, 'agent.mjs'));
      await writeJsonAtomic(path.join(stateDir, 'update.json'), { from: currentVersion, to: pkg.version });
      return { ok: true, refused: false, exitCode: 0, reason: null, outputTail: `agent ${pkg.version} staged; restarting into it\n` };
    } catch (err) {
      const refused = err instanceof PackageVerificationError && err.code !== 'DOWNLOAD_FAILED';
      return { ok: false, refused, exitCode: null, reason: (err as Error).message, outputTail: '' };
    } finally {
      await rm(archive, { force: true });
      await rm(staging, { recursive: true, force: true });
    }
  }

  async uninstall(product: string, signal: AbortSignal, onProcessStarted?: ScriptContext['onProcessStarted']): Promise<StepOutcome> {
    const rec = await this.record(product);
    if (!rec) return { ok: true, refused: false, exitCode: null, reason: 'not installed', outputTail: '' };
    const out = await this.run(rec.manifest, rec.packageDir, 'uninstall', signal, onProcessStarted);
    if (out && out.state !== 'succeeded' && out.state !== 'succeeded_with_warnings') {
      return { ok: false, refused: false, exitCode: out.exitCode, reason: out.reason ?? out.state, outputTail: out.outputTail };
    }
    await rm(path.join(this.productDir(product), 'installed.json'), { force: true });
    await rm(path.join(this.productDir(product), 'packages'), { recursive: true, force: true });
    this.#o.onUninstalled?.(product);
    return { ok: true, refused: false, exitCode: out?.exitCode ?? 0, reason: null, outputTail: out?.outputTail ?? '' };
  }

  /** The installed version: the package's detect command when it has one, else the recorded version. */
  async detect(product: string): Promise<{ version: string } | null> {
    const rec = await this.record(product);
    if (!rec) return null;
    if (!rec.manifest.commands.detect) return { version: rec.version };
    const out = await this.run(rec.manifest, rec.packageDir, 'detect');
    const version = out?.outputTail.trim().split('\n').pop()?.trim();
    return out?.state === 'succeeded' && version ? { version } : null;
  }
  /** Running: the status command exits 0; a product without one counts as running once installed. */
  async isRunning(product: string): Promise<boolean> {
    const rec = await this.record(product);
    if (!rec) return false;
    if (!rec.manifest.commands.status) return true;
    const out = await this.run(rec.manifest, rec.packageDir, 'status');
    return out?.state === 'succeeded';
  }
  async start(product: string): Promise<ScriptOutcome | null> {
    const rec = await this.record(product);
    return rec ? this.run(rec.manifest, rec.packageDir, 'start') : null;
  }
  async stop(product: string): Promise<ScriptOutcome | null> {
    const rec = await this.record(product);
    return rec ? this.run(rec.manifest, rec.packageDir, 'stop') : null;
  }
}

/**
 * The folder a version is unpacked into. Versions may hold ":" (a dpkg or rpm epoch), which
 * Windows does not allow in a file name, so it is written as "%3A" (and "%" cannot occur in a
 * version, so no two versions share a folder).
 */
export function packageFolderName(version: string): string {
  return version.replace(/:/g, '%3A');
}
