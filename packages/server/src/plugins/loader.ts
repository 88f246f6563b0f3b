/**
 * Third-party plug-ins for the server: modules named on the command line or in
 * GARRISON_PLUGINS (a path to a file or folder, or an npm package name), and every folder or
 * module in `DATA/plugins/`. A module's default export (or its `serverPlugin` export) is a
 * ServerPlugin; its shape is checked before it is installed, so a broken plug-in stops the
 * start with a clear message rather than failing later.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServerPlugin } from './plugin.ts';

export class PluginLoadError extends Error {}

async function entryOf(spec: string): Promise<string> {
  if (!existsSync(spec)) return spec; // an npm package name, resolved by import()
  const abs = path.resolve(spec);
  if (!statSync(abs).isDirectory()) return pathToFileURL(abs).href;
  const pkgFile = path.join(abs, 'package.json');
  if (existsSync(pkgFile)) {
    const pkg = JSON.parse(await readFile(pkgFile, 'utf8')) as { main?: string; exports?: unknown };
    const main = typeof pkg.exports === 'string' ? pkg.exports : (pkg.exports as { '.'?: unknown } | undefined)?.['.'];
    const rel = typeof main === 'string' ? main : pkg.main;
    if (rel) return pathToFileURL(path.join(abs, rel)).href;
  }
  for (const name of ['server.js', 'server.ts', 'index.js', 'index.ts']) {
    if (existsSync(path.join(abs, name))) return pathToFileURL(path.join(abs, name)).href;
  }
  throw new PluginLoadError(`${spec}: no package.json main, server.js or index.js`);
}

export function checkServerPlugin(value: unknown, from: string): ServerPlugin {
  const p = value as ServerPlugin;
  const fail = (why: string) => new PluginLoadError(`plug-in ${from}: ${why}`);
  if (!p || typeof p !== 'object') throw fail('the module exports no plug-in (default export or "serverPlugin")');
  if (!p.product || typeof p.product.id !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(p.product.id)) throw fail('product.id must be a lower-case id');
  if (typeof p.product.name !== 'string') throw fail('product.name is missing');
  if (!Array.isArray(p.taskTypes)) throw fail('taskTypes must be an array');
  for (const t of p.taskTypes) {
    if (!t || typeof t.id !== 'string' || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(t.id)) throw fail('every task type needs an id (lower-case, digits, "-")');
    if (!t.settingsSchema || typeof t.settingsSchema !== 'object') throw fail(`task type ${t.id} has no settingsSchema (a JSON Schema object)`);
  }
  return { ...p, product: { ...p.product, description: p.product.description ?? '' } };
}

export async function loadServerPlugins(specs: readonly string[], pluginsDir?: string): Promise<ServerPlugin[]> {
  const all = [...specs];
  if (pluginsDir && existsSync(pluginsDir)) for (const name of (await readdir(pluginsDir)).sort()) if (!name.startsWith('.')) all.push(path.join(pluginsDir, name));
  const out: ServerPlugin[] = [];
  for (const spec of all) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(await entryOf(spec))) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof PluginLoadError) throw err;
      throw new PluginLoadError(`plug-in ${spec} could not be loaded: ${(err as Error).message}`);
    }
    out.push(checkServerPlugin(mod.default ?? mod.serverPlugin, spec));
  }
  return out;
}
