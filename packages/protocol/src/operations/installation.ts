/**
 * Installation (ADR 0021 for the shape of an operation): installer links (an enrolment token
 * with one-line install commands) and the offline installation packages the
 * "installation-package" server task makes. The install scripts and agent executables an
 * installer link serves (under /install/<token>/) are for machines, not this API: they are not
 * operations.
 */
import { Type, type Static } from 'typebox';
import { InstallerView } from '../api.ts';
import { operation, Page, PageQuery } from '../contract.ts';

const tag = 'installation';

export const InstallerCreate = Type.Object(
  {
    groupId: Type.String({ minLength: 1 }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    expiresInMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 525600 })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    serverUrl: Type.Optional(Type.String({ pattern: '^https://[A-Za-z0-9.\\-\\[\\]:]+$', description: 'The address machines reach this server at (default: the address of this request)' })),
  },
  { additionalProperties: false },
);
export type InstallerCreate = Static<typeof InstallerCreate>;

export const createInstaller = operation({
  id: 'createInstaller',
  method: 'POST',
  path: '/installers',
  tag,
  summary: 'Create an installer link for a group: an enrolment token, the one-line install command per platform, and the fingerprints it pins',
  body: InstallerCreate,
  status: 201,
  response: InstallerView,
});

/** What the server's index keeps of an offline installation package, with its token's state: never the token's value. */
export const InstallationPackageView = Type.Object(
  {
    name: Type.String({ description: 'The file name, which names the bundle in the API' }),
    file: Type.String({ description: 'Its path on the disk of the server instance that made it (other instances serve it from the database)' }),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String(),
    createdAt: Type.String(),
    taskId: Type.String(),
    runId: Type.String(),
    groupId: Type.String(),
    groupPath: Type.String(),
    platform: Type.String(),
    serverUrl: Type.String(),
    agentVersion: Type.String(),
    tokenId: Type.String(),
    tokenExpiresAt: Type.Union([Type.String(), Type.Null()]),
    maxUses: Type.Union([Type.Integer(), Type.Null()]),
    products: Type.Array(Type.Object({ product: Type.String(), version: Type.String(), sha256: Type.String(), size: Type.Integer({ minimum: 0 }) }, { additionalProperties: false })),
    tokenState: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('exhausted'), Type.Literal('deleted')], {
      description: 'The state of the enrolment token inside the bundle ("deleted" once the token is gone)',
    }),
    available: Type.Boolean({ description: 'Whether the bundle can be downloaded: its file on this instance, or its bytes in the database' }),
  },
  { additionalProperties: false },
);
export type InstallationPackageView = Static<typeof InstallationPackageView>;
export const InstallationPackageParams = Type.Object({ file: Type.String({ minLength: 1, maxLength: 200 }) });
export const InstallationPackageListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const listInstallationPackages = operation({
  id: 'listInstallationPackages',
  method: 'GET',
  path: '/installation-packages',
  tag,
  summary: 'Offline installation packages made by the "installation-package" server task, newest first',
  query: InstallationPackageListQuery,
  response: Page(InstallationPackageView),
});
export const downloadInstallationPackage = operation({
  id: 'downloadInstallationPackage',
  method: 'GET',
  path: '/installation-packages/{file}',
  tag,
  summary: 'Download an offline installation package (.tar.gz); it holds an enrolment token, so the download needs tokens:write on its group and is audited',
  params: InstallationPackageParams,
  response: null,
  produces: ['application/gzip'],
});
export const deleteInstallationPackage = operation({
  id: 'deleteInstallationPackage',
  method: 'DELETE',
  path: '/installation-packages/{file}',
  tag,
  summary: 'Delete an offline installation package and revoke its enrolment token',
  params: InstallationPackageParams,
  status: 204,
  response: null,
});
