/**
 * The master repository (ADR 0007): check in, list, promote and remove packages, a package's
 * archive for a downstream server, and the package-signing key (ADR 0021 for the shape of an
 * operation). The agents' own download (/agent/v1/packages/{id}) is not an admin operation.
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { BranchSchema, RepositoryPackage } from '../package.ts';
import { IdParams } from './common.ts';

const tag = 'repository';

export const PackageListQuery = Type.Object(
  {
    ...PageQuery,
    product: Type.Optional(Type.String({ maxLength: 64 })),
    branch: Type.Optional(Type.Union([BranchSchema, Type.Literal('none')], { description: '"none": the packages in no branch' })),
  },
  { additionalProperties: false },
);
export type PackageListQuery = Static<typeof PackageListQuery>;
export const listPackages = operation({
  id: 'listPackages',
  method: 'GET',
  path: '/repository/packages',
  tag,
  summary: 'Packages of the master repository, by product, newest version first',
  query: PackageListQuery,
  response: Page(RepositoryPackage),
});
export const PackageAddQuery = Type.Object(
  { branch: Type.Optional(Type.Union([BranchSchema, Type.Literal('none')], { description: 'Default current; "none" keeps the package out of the branches' })) },
  { additionalProperties: false },
);
export const addPackage = operation({
  id: 'addPackage',
  method: 'POST',
  path: '/repository/packages',
  tag,
  // The body is the archive itself, streamed to disk: it has no JSON schema (`consumes` documents
  // it), and the typed client sends it with request().
  consumes: ['application/gzip', 'application/octet-stream'],
  summary: 'Check a package archive (.tar.gz with garrison-package.json at its root, sent as the body with Content-Type application/gzip) into a branch; the server signs it',
  query: PackageAddQuery,
  status: 201,
  response: RepositoryPackage,
  errors: ['CONFLICT', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'VERSION_INVALID', 'VERSION_SCHEME_MISMATCH'],
});
export const getPackage = operation({ id: 'getPackage', method: 'GET', path: '/repository/packages/{id}', tag, summary: 'One package with its manifest, hash and signature', params: IdParams, response: RepositoryPackage });
export const PromoteBody = Type.Object({ branch: Type.Union([BranchSchema, Type.Null()]) }, { additionalProperties: false });
export const promotePackage = operation({
  id: 'promotePackage',
  method: 'POST',
  path: '/repository/packages/{id}/promote',
  tag,
  summary: 'Move a package to a branch (or out of the branches with null)',
  params: IdParams,
  body: PromoteBody,
  response: RepositoryPackage,
  errors: ['VERSION_SCHEME_MISMATCH'],
});
export const deletePackage = operation({ id: 'deletePackage', method: 'DELETE', path: '/repository/packages/{id}', tag, summary: 'Remove a package and, if unshared, its archive', params: IdParams, status: 204, response: null });
export const downloadPackage = operation({
  id: 'downloadPackage',
  method: 'GET',
  path: '/repository/packages/{id}/archive',
  tag,
  summary: 'The archive (.tar.gz) of a package, for a downstream server pulling updates (its SHA-256 in X-Garrison-Sha256)',
  params: IdParams,
  response: null,
  produces: ['application/gzip'],
});
export const SigningKey = Type.Object({ publicKey: Type.String({ description: 'PEM (SPKI) of the Ed25519 key' }) }, { additionalProperties: false });
export const getSigningKey = operation({
  id: 'getSigningKey',
  method: 'GET',
  path: '/repository/signing-key',
  tag,
  summary: "The server's Ed25519 package-signing public key (PEM, in JSON)",
  response: SigningKey,
});
