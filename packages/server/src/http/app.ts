/**
 * The HTTP application factory: it builds every route and hook but does not listen, so tests
 * drive it in process with inject() and the server entry point decides where it listens.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { AGENT_MESSAGE_MAX_BYTES, errorCodeInfo } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { installAccessControl, publicAccess, type DeclaredRoute } from './access.ts';
import type { Services } from '../services/services.ts';
import { registerAdminRoutes } from './admin-routes.ts';
import { registerAgentRoutes } from './agent-routes.ts';
import { registerRepositoryRoutes } from './repository-routes.ts';
import { registerDeploymentRoutes } from './deployment-routes.ts';
import { registerPushRoutes } from './push-routes.ts';
import { registerInstallRoutes } from './install-routes.ts';
import { registerServerTaskRoutes } from './server-task-routes.ts';
import { registerInstallationPackageRoutes } from './installation-package-routes.ts';
import { registerConsoleRoutes } from './console-routes.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with who may call it (http/access.ts). */
    declaredRoutes: DeclaredRoute[];
  }
}

export const API_VERSION = '1.0.0';

export async function buildHttpApp(services: Services, log: Logger, opts: { https?: { key: string; cert: string } | null; serverUrl?: () => string; consoleDir?: string | null; dataDir?: string } = {}): Promise<FastifyInstance> {
  // The pino instance is typed more narrowly than Fastify's logger interface; the app is used through the default one.
  const app = Fastify({
    loggerInstance: log,
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert, minVersion: 'TLSv1.2' as const } } : {}),
    bodyLimit: Math.max(AGENT_MESSAGE_MAX_BYTES, 16 * 1024 * 1024),
    // Per-request lines would drown the log at fleet scale; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  }) as unknown as FastifyInstance;

  app.decorate('declaredRoutes', installAccessControl(app, services));

  await app.register(swagger, {
    openapi: {
      info: { title: 'Garrison API', version: API_VERSION, description: 'Administration API of the Garrison endpoint management server.' },
      components: { securitySchemes: { apiToken: { type: 'http', scheme: 'bearer', description: 'An API token (gat.…)' } } },
      security: [{ apiToken: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    let e: AppError;
    if (err instanceof AppError) e = err;
    else if ((err as FastifyError).validation) {
      e = new AppError('VALIDATION_FAILED', `${(err as FastifyError).validationContext ?? 'request'} ${err.message.replace(/^(body|querystring|params)\s*/, '')}`, {
        issues: (err as FastifyError).validation!.map((v) => ({ path: v.instancePath || '/', message: v.message ?? 'invalid' })),
      });
    } else if ((err as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new AppError('PAYLOAD_TOO_LARGE', 'the body is too large');
    else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500) {
      e = new AppError('BAD_REQUEST', err.message);
    } else {
      req.log.error({ err, reqId: req.id }, 'request failed');
      e = new AppError('INTERNAL', 'an unexpected error occurred; see the server log for this request id');
    }
    void reply.status(e.status).send(e.toBody(String(req.id)));
  });

  app.get('/api/v1/health', { config: publicAccess, schema: { security: [], tags: ['server'], summary: 'Liveness and version' } }, async () => ({
    status: 'ok',
    version: API_VERSION,
    agentsOnline: services.presence.onlineCount(),
    // Public: what agents and the CLI are told to pin (also printed by the server at start).
    caFingerprint: services.trust?.caFingerprint ?? null,
  }));
  app.get('/api/v1/openapi.json', { config: publicAccess, schema: { hide: true } }, async () => app.swagger());
  app.get('/api/v1/error-codes', { config: publicAccess, schema: { security: [], tags: ['server'], summary: 'The closed list of error codes and their HTTP status' } }, async () => errorCodeInfo);

  registerAdminRoutes(app, services);
  registerAgentRoutes(app, services);
  registerRepositoryRoutes(app, services);
  registerDeploymentRoutes(app, services);
  registerPushRoutes(app, services);
  registerServerTaskRoutes(app, services);
  if (opts.dataDir) registerInstallationPackageRoutes(app, services, { dataDir: opts.dataDir });
  registerInstallRoutes(app, services, opts.serverUrl ?? (() => ''));
  await registerConsoleRoutes(app, services, opts.consoleDir ?? null);
  return app;
}
