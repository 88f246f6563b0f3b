/**
 * Installer links: created by administrators under /api/v1/installers; the scripts and the
 * agent executable under /install/<token>/ are public, the token in the path being the
 * credential (checked, not used up: a use is counted at enrolment).
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { createInstaller, errorCodeInfo, type ErrorCode } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Services } from '../services/services.ts';
import { errorScript, INSTALL_PATH, SCRIPT_FILES, type InstallPlatform } from '../services/installer-service.ts';
import { Permission } from '../services/actor.ts';
import { needs, publicAccess } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const TokenParams = Type.Object({ token: Type.String({ minLength: 8, maxLength: 200 }), file: Type.String() });
const AgentParams = Type.Object({ token: Type.String({ minLength: 8, maxLength: 200 }), platform: Type.String({ pattern: '^[a-z0-9]+-[a-z0-9]+$' }) });

const HOST = /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** The address the caller reached this server at: what the script and the agent will use. */
export function requestServerUrl(req: FastifyRequest, fallback: string): string {
  const host = req.headers.host;
  return host && HOST.test(host) ? `https://${host}` : fallback;
}

export function registerInstallRoutes(app: FastifyInstance, s: Pick<Services, 'installers'>, serverUrl: () => string): void {
  route(app, createInstaller, needs(Permission.manageTokens), async (req) => {
    // The token's value is in the link and its commands; it is not repeated on its own.
    const { tokenValue: _value, ...view } = await s.installers.create(actor(req), { ...req.body, serverUrl: req.body.serverUrl ?? requestServerUrl(req, serverUrl()) });
    return view;
  });

  // Public: the enrolment token in the path is the credential (checked, not used up). Left out
  // of the API document: machines fetch these with curl, and even an error is a script.
  app.get(`${INSTALL_PATH}/:token/:file`, { config: publicAccess, schema: { hide: true, tags: ['installation'], summary: 'An install script (linux.sh, macos.sh, windows.ps1) for an installer link', security: [], params: TokenParams } }, async (req, reply: FastifyReply) => {
    const { token, file } = req.params as Static<typeof TokenParams>;
    const platform = (Object.entries(SCRIPT_FILES).find(([, f]) => f === file)?.[0] ?? null) as InstallPlatform | null;
    if (!platform) throw new AppError('NOT_FOUND', `no install script "${file}" (linux.sh, macos.sh, windows.ps1)`);
    void reply.header('cache-control', 'no-store').type(platform === 'windows' ? 'text/plain; charset=utf-8' : 'text/x-shellscript; charset=utf-8');
    try {
      return reply.send(await s.installers.script(token, platform, requestServerUrl(req, serverUrl())));
    } catch (err) {
      // A script that says what is wrong, so that `curl … && sh` prints it rather than nothing.
      if (!(err instanceof AppError)) throw err;
      const status = errorCodeInfo[err.code as ErrorCode]?.status ?? 400;
      return reply.status(status === 401 ? 403 : status).send(errorScript(platform, err.code, err.message));
    }
  });

  app.get(`${INSTALL_PATH}/:token/agent/:platform`, { config: publicAccess, schema: { hide: true, tags: ['installation'], summary: 'The single-executable agent for a platform, for an installer link', security: [], params: AgentParams } }, async (req, reply) => {
    const { token, platform } = req.params as Static<typeof AgentParams>;
    const build = await s.installers.agentFor(token, platform);
    return reply
      .header('content-length', String(build.size))
      .header('x-checksum-sha256', build.sha256)
      .header('cache-control', 'no-store')
      .type('application/octet-stream')
      .send(createReadStream(build.file));
  });
}
