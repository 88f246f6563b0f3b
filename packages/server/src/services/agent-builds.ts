/**
 * Single-executable agents the installers hand out, built by this server from its own agent
 * code and Node binary (so only the server's own platform can be built: no binary is ever
 * fetched from elsewhere). One build per platform and agent version, kept on disk and made
 * once even when many installers ask at the same time.
 *
 * Several instances on one database (issue 14): builds are not byte-reproducible, and the
 * install script one instance serves names the SHA-256 of the executable, which another
 * instance behind the same load balancer may serve. So the first instance to store a build of
 * a (platform, agent version, sources) claims it in the database (a server setting holding
 * {sha256, size}, written with setIfAbsent) after storing its bytes in the archive store;
 * every instance then serves that one build, fetched from the database into its own folder
 * when it is not the one that made it. Bytes first, claim second: a claim always names an
 * archive stored whole, and an instance that dies half-way leaves no claim behind. Two
 * instances building at once both build (minutes wasted, once); the loser deletes its bytes.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile, stat, readdir } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AGENT_VERSION } from '@garrison/agent/inventory';
import { AppError } from '../errors.ts';
import type { ArchiveStore } from '../storage/archive-store.ts';
import type { SettingsStore } from '../storage/settings-store.ts';

export interface AgentBuild {
  platform: string;
  version: string;
  file: string;
  sha256: string;
  size: number;
}

const PACKAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A hash of the sources an agent build is made of, so that a changed agent is built again even without a version bump. */
async function sourceHash(): Promise<string> {
  const h = createHash('sha256');
  // cli: the agent's local CLI takes the administrator CLI's task options (task-options, schedule-spec).
  for (const pkg of ['agent', 'protocol', 'core', 'cli', 'sample-scanner']) {
    const dir = path.join(PACKAGES, pkg, 'src');
    const files = (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((f) => f.endsWith('.ts')).sort();
    for (const f of files) h.update(`${pkg}/${f}\0`).update(await readFile(path.join(dir, f)));
  }
  return h.digest('hex').slice(0, 12);
}

/** What the database says is *the* build of a platform and agent version (its bytes are an archive). */
interface BuildClaim {
  sha256: string;
  size: number;
}

/** The database shared with other instances: given only when the database is (Dialect.sharedByInstances). */
export interface SharedAgentBuilds {
  settings: Pick<SettingsStore, 'get' | 'setIfAbsent'>;
  archives: Pick<ArchiveStore, 'put' | 'open' | 'deleteUnlessUsed'>;
}

const executableName = (platform: string) => (platform.startsWith('win32') ? 'garrison-agent.exe' : 'garrison-agent');

export class AgentBuilds {
  readonly dir: string;
  readonly #building = new Map<string, Promise<AgentBuild>>();
  readonly #log: (msg: string) => void;
  readonly #shared: SharedAgentBuilds | undefined;
  #sources: Promise<string> | null = null;

  constructor(dir: string, log: (msg: string) => void = () => {}, shared?: SharedAgentBuilds) {
    this.dir = dir;
    this.#log = log;
    this.#shared = shared;
  }

  /** The platforms this server can build an agent for (its own). */
  async platforms(): Promise<string[]> {
    const { hostPlatform } = await import('@garrison/agent/sea');
    return [hostPlatform()];
  }

  /**
   * Builds (once) or returns the agent executable for a platform, or throws AGENT_BUILD_UNAVAILABLE.
   * On a shared database: the build the database names, fetched from it when another instance made it.
   */
  async get(platform: string): Promise<AgentBuild> {
    const shared = this.#shared;
    if (!shared) return this.#own(platform);
    const sources = await (this.#sources ??= sourceHash());
    const claimKey = `agent-build:${platform}:${AGENT_VERSION}:${sources}`;
    let p = this.#building.get(claimKey);
    if (!p) {
      p = this.#resolveShared(shared, claimKey, platform).finally(() => this.#building.delete(claimKey));
      this.#building.set(claimKey, p);
    }
    return p;
  }

  async #resolveShared(shared: SharedAgentBuilds, claimKey: string, platform: string): Promise<AgentBuild> {
    let claim = await shared.settings.get<BuildClaim>(claimKey);
    if (claim) return this.#claimed(shared, platform, claim);
    const own = await this.#own(platform);
    // Another instance may have claimed while this one built: then its build, not this one's.
    claim = await shared.settings.get<BuildClaim>(claimKey);
    if (!claim) {
      await shared.archives.put(own.sha256, own.file);
      claim = await shared.settings.setIfAbsent<BuildClaim>(claimKey, { sha256: own.sha256, size: own.size });
      if (claim.sha256 !== own.sha256) await shared.archives.deleteUnlessUsed(own.sha256);
      else this.#log(`stored the ${platform} agent executable ${AGENT_VERSION} in the database for the other instances`);
    }
    return claim.sha256 === own.sha256 ? own : this.#claimed(shared, platform, claim);
  }

  /** The claimed build: this instance's own when it is that one, else a copy fetched from the database (kept, by SHA-256). */
  async #claimed(shared: SharedAgentBuilds, platform: string, claim: BuildClaim): Promise<AgentBuild> {
    const own = await this.#local(platform);
    if (own?.sha256 === claim.sha256) return own;
    const folder = path.join(this.dir, `shared-${claim.sha256}`);
    const file = path.join(folder, executableName(platform));
    const meta = path.join(folder, 'build.json');
    if (existsSync(meta) && existsSync(file) && (await stat(file)).size === claim.size) return { ...(JSON.parse(await readFile(meta, 'utf8')) as AgentBuild), file };
    const archive = await shared.archives.open(claim.sha256);
    if (!archive) throw new AppError('AGENT_BUILD_UNAVAILABLE', `the ${platform} agent ${AGENT_VERSION} the database names (SHA-256 ${claim.sha256}) is not stored in it`);
    await mkdir(folder, { recursive: true, mode: 0o755 });
    // Into a temporary file beside it, renamed into place only once its SHA-256 is the claim's.
    const tmp = path.join(folder, `.${executableName(platform)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        archive.stream,
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            hash.update(chunk);
            size += chunk.length;
            done(null, chunk);
          },
        }),
        createWriteStream(tmp, { mode: 0o755 }),
      );
      const got = hash.digest('hex');
      if (got !== claim.sha256 || size !== claim.size) throw new Error(`the agent executable read from the database has SHA-256 ${got} (${size} bytes), not ${claim.sha256} (${claim.size} bytes)`);
      await chmod(tmp, 0o755);
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
    const build: AgentBuild = { platform, version: AGENT_VERSION, file, sha256: claim.sha256, size: claim.size };
    await writeFile(meta, JSON.stringify(build, null, 2));
    this.#log(`fetched the ${platform} agent executable ${AGENT_VERSION} another instance built (${Math.round(claim.size / 1048576)} MB) from the database`);
    return build;
  }

  /** This instance's own folder for the platform's build. */
  async #ownFolder(platform: string): Promise<{ key: string; folder: string; file: string; meta: string }> {
    this.#sources ??= sourceHash();
    const key = `${AGENT_VERSION}-${process.version}-${platform}-${await this.#sources}`;
    const folder = path.join(this.dir, key);
    return { key, folder, file: path.join(folder, executableName(platform)), meta: path.join(folder, 'build.json') };
  }

  /** This instance's own build when it is on disk (never builds). */
  async #local(platform: string): Promise<AgentBuild | undefined> {
    const { file, meta } = await this.#ownFolder(platform);
    if (!existsSync(meta) || !existsSync(file)) return undefined;
    const m = JSON.parse(await readFile(meta, 'utf8')) as AgentBuild;
    return (await stat(file)).size === m.size ? { ...m, file } : undefined;
  }

  /** This instance's own build, made (once) when it is not on disk yet. */
  async #own(platform: string): Promise<AgentBuild> {
    const { hostPlatform, buildAgentExecutable } = await import('@garrison/agent/sea');
    if (platform !== hostPlatform()) {
      throw new AppError('AGENT_BUILD_UNAVAILABLE', `this server builds agents for ${hostPlatform()} only (it runs there); no ${platform} agent is available`);
    }
    const local = await this.#local(platform);
    if (local) return local;
    const { key, folder, file, meta } = await this.#ownFolder(platform);
    let p = this.#building.get(key);
    if (!p) {
      p = (async () => {
        await mkdir(folder, { recursive: true, mode: 0o755 });
        const started = Date.now();
        const built = await buildAgentExecutable({ outFile: file, version: AGENT_VERSION });
        const build: AgentBuild = { platform, version: AGENT_VERSION, file, sha256: built.sha256, size: built.size };
        await writeFile(meta, JSON.stringify(build, null, 2));
        this.#log(`built the ${platform} agent executable ${AGENT_VERSION} (${Math.round(built.size / 1048576)} MB) in ${Date.now() - started} ms`);
        return build;
      })().finally(() => this.#building.delete(key));
      this.#building.set(key, p);
    }
    return p;
  }
}
