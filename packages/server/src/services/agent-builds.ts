/**
 * Single-executable agents the installers hand out, built by this server from its own agent
 * code and Node binary (so only the server's own platform can be built: no binary is ever
 * fetched from elsewhere). One build per platform and agent version, kept on disk and made
 * once even when many installers ask at the same time.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, stat, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AGENT_VERSION } from '@garrison/agent/inventory';
import { AppError } from '../errors.ts';

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

export class AgentBuilds {
  readonly dir: string;
  readonly #building = new Map<string, Promise<AgentBuild>>();
  readonly #log: (msg: string) => void;
  #sources: Promise<string> | null = null;

  constructor(dir: string, log: (msg: string) => void = () => {}) {
    this.dir = dir;
    this.#log = log;
  }

  /** The platforms this server can build an agent for (its own). */
  async platforms(): Promise<string[]> {
    const { hostPlatform } = await import('@garrison/agent/sea');
    return [hostPlatform()];
  }

  /** Builds (once) or returns the agent executable for a platform, or throws AGENT_BUILD_UNAVAILABLE. */
  async get(platform: string): Promise<AgentBuild> {
    const { hostPlatform, buildAgentExecutable } = await import('@garrison/agent/sea');
    if (platform !== hostPlatform()) {
      throw new AppError('AGENT_BUILD_UNAVAILABLE', `this server builds agents for ${hostPlatform()} only (it runs there); no ${platform} agent is available`);
    }
    this.#sources ??= sourceHash();
    const key = `${AGENT_VERSION}-${process.version}-${platform}-${await this.#sources}`;
    const folder = path.join(this.dir, key);
    const file = path.join(folder, platform.startsWith('win32') ? 'garrison-agent.exe' : 'garrison-agent');
    const meta = path.join(folder, 'build.json');
    if (existsSync(meta) && existsSync(file)) {
      const m = JSON.parse(await readFile(meta, 'utf8')) as AgentBuild;
      if ((await stat(file)).size === m.size) return { ...m, file };
    }
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
