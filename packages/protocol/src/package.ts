/**
 * Packages of the master repository: a manifest and an archive. The archive is a gzipped tar
 * holding `garrison-package.json` (this manifest) at its root and the product's files. The
 * server signs each package with its Ed25519 key; agents verify hash and signature before
 * anything of it runs. See docs/adr/0007-repository-and-deployment.md.
 */
import { Type, type Static } from 'typebox';

export const PACKAGE_MANIFEST_FILE = 'garrison-package.json';
export const PACKAGE_SIGNATURE_CONTEXT = 'garrison-package-v1';
/** The largest package archive the repository takes. */
export const MAX_PACKAGE_BYTES = 1024 * 1024 * 1024;

export const Branch = { current: 'current', previous: 'previous', evaluation: 'evaluation' } as const;
export type Branch = (typeof Branch)[keyof typeof Branch];
export const BranchSchema = Type.Union([Type.Literal('current'), Type.Literal('previous'), Type.Literal('evaluation')]);

/**
 * A command a package runs on the device, in its extracted folder. The environment carries
 * GARRISON_PACKAGE_DIR (the extracted files), GARRISON_PRODUCT_DIR (a persistent folder of
 * the product), GARRISON_PRODUCT and GARRISON_VERSION.
 */
export const PackageCommand = Type.Object(
  {
    shell: Type.Optional(Type.Union([Type.Literal('sh'), Type.Literal('bash'), Type.Literal('powershell'), Type.Literal('cmd'), Type.Literal('none')])),
    command: Type.Optional(Type.String({ minLength: 1, maxLength: 8192 })),
    script: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
    successExitCodes: Type.Optional(Type.Array(Type.Integer(), { minItems: 1, maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type PackageCommand = Static<typeof PackageCommand>;

const ProductId = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', description: 'lower-case product id' });

/**
 * How a product's versions are ordered (docs/adr/0015-version-schemes.md): "semver" (the
 * default: lenient semver, any number of numeric parts, pre-release tags with or without a
 * dash), "dpkg" (Debian: epoch, "~", revision), "rpm" (epoch, "~", "^", rpmvercmp), "windows"
 * (one to four numeric parts, each 0-65535). All packages of one product use the same scheme,
 * and the versions the agent detects on a device are ordered by it.
 */
export const VersionScheme = { semver: 'semver', dpkg: 'dpkg', rpm: 'rpm', windows: 'windows' } as const;
export type VersionScheme = (typeof VersionScheme)[keyof typeof VersionScheme];
export const VersionSchemeSchema = Type.Union([Type.Literal('semver'), Type.Literal('dpkg'), Type.Literal('rpm'), Type.Literal('windows')]);
export const DEFAULT_VERSION_SCHEME: VersionScheme = 'semver';

export const PackageManifest = Type.Object(
  {
    product: ProductId,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    /**
     * Checked against versionScheme at check-in (VERSION_INVALID when it does not parse). The
     * pattern only bounds the characters: ":" (epochs), "~" and "^" (dpkg, rpm), "_" (rpm,
     * Java's 1.8.0_99).
     */
    version: Type.String({ pattern: '^[0-9A-Za-z][0-9A-Za-z.+~^_:-]{0,63}$' }),
    /** How versions of this product are ordered; default "semver". The same for all its packages. */
    versionScheme: Type.Optional(VersionSchemeSchema),
    /** "application" (installed and possibly running), "definitions" (content for another product), "agent" (the agent itself). */
    kind: Type.Union([Type.Literal('application'), Type.Literal('definitions'), Type.Literal('agent')]),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    /** "linux-x64", "linux-*", "darwin-arm64", "win32-x64", or "any". */
    platforms: Type.Array(Type.String({ pattern: '^(any|[a-z0-9]+-(\\*|[a-z0-9]+))$' }), { minItems: 1, maxItems: 20 }),
    /** Products that must be installed first (with at least this version). */
    dependencies: Type.Optional(Type.Array(Type.Object({ product: ProductId, minVersion: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }), { maxItems: 20 })),
    /** Install order among products of the same deployment (lower first), after dependencies. */
    order: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
    /** Products removed before this one is installed, when the deployment asks for it. */
    conflicts: Type.Optional(Type.Array(ProductId, { maxItems: 20 })),
    /** For kind "definitions": the product whose content this is. */
    contentFor: Type.Optional(ProductId),
    /**
     * The agent half of the product's management plug-in, shipped in the package: a module
     * path inside the archive (e.g. "plugin/agent.js") whose default export is an AgentPlugin.
     * The agent loads it only from a verified, installed package.
     */
    agentPlugin: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_./-]{0,255}$' })),
    commands: Type.Object(
      {
        install: PackageCommand,
        uninstall: Type.Optional(PackageCommand),
        /** Prints the installed version on stdout (exit 0), or exits non-zero when not installed. */
        detect: Type.Optional(PackageCommand),
        start: Type.Optional(PackageCommand),
        stop: Type.Optional(PackageCommand),
        /** Exit 0 when the application is running. */
        status: Type.Optional(PackageCommand),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type PackageManifest = Static<typeof PackageManifest>;

/** A package as the repository lists it. */
export const RepositoryPackage = Type.Object(
  {
    id: Type.String(),
    product: Type.String(),
    version: Type.String(),
    kind: Type.Union([Type.Literal('application'), Type.Literal('definitions'), Type.Literal('agent')]),
    platforms: Type.Array(Type.String()),
    branch: Type.Union([BranchSchema, Type.Null()]),
    sha256: Type.String(),
    signature: Type.String(),
    size: Type.Integer({ minimum: 0 }),
    manifest: PackageManifest,
    createdAt: Type.String(),
    createdBy: Type.String(),
  },
  { additionalProperties: false },
);
export type RepositoryPackage = Static<typeof RepositoryPackage>;

/**
 * The bytes the server signs for a package: the context, product, version, archive hash and
 * the hash of the manifest's canonical JSON, one per line. Agents rebuild and verify them.
 */
export function packageSigningPayload(p: { product: string; version: string; sha256: string; manifestSha256: string }): string {
  return [PACKAGE_SIGNATURE_CONTEXT, p.product, p.version, p.sha256, p.manifestSha256].join('\n');
}

/** JSON with object keys sorted, so that the same manifest always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Whether a package built for `platforms` runs on `platform-arch`. */
export function platformMatches(platforms: readonly string[], platform: string, arch: string): boolean {
  return platforms.some((p) => p === 'any' || p === `${platform}-${arch}` || p === `${platform}-*`);
}
