/**
 * The HTTP application factory: it builds every route and hook but does not listen, so tests
 * drive it in process with inject() and the server entry point decides where it listens.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { AGENT_MESSAGE_MAX_BYTES, allOperations, API_PREFIX, errorCodeInfo, getHealth, listErrorCodes } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { installAccessControl, publicAccess, type DeclaredRoute } from './access.ts';
import type { Services } from '../services/services.ts';
import { registerAdminRoutes } from './admin-routes.ts';
import { registerIdentityRoutes } from './identity-routes.ts';
import { registerGroupRoutes } from './group-routes.ts';
import { registerDeviceRoutes } from './device-routes.ts';
import { registerTaskRoutes } from './task-routes.ts';
import { registerPolicyRoutes } from './policy-routes.ts';
import { registerAgentRoutes } from './agent-routes.ts';
import { registerRepositoryRoutes } from './repository-routes.ts';
import { registerDeploymentRoutes } from './deployment-routes.ts';
import { registerPushRoutes } from './push-routes.ts';
import { registerInstallRoutes } from './install-routes.ts';
import { registerServerTaskRoutes } from './server-task-routes.ts';
import { registerNotificationRoutes } from './notification-routes.ts';
import { registerInstallationPackageRoutes } from './installation-package-routes.ts';
import type { InstallationPackageIndex } from '../server-tasks/installation-package.ts';
import { registerOidcRoutes } from './oidc-routes.ts';
import { registerSavedSelectionRoutes } from './saved-selection-routes.ts';
import { registerDashboardRoutes } from './dashboard-routes.ts';
import { CONSOLE_HEADERS, registerConsoleRoutes } from './console-routes.ts';
import { installResponseSerializer, route } from './operation.ts';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.ts';
import { MAX_PARAM_LENGTH, baseHeaders, clientErrorHandler, toAppError } from './boundary.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with who may call it (http/access.ts). */
    declaredRoutes: DeclaredRoute[];
  }
}

export const API_VERSION = '1.0.0';

/** The coded error a request failed with; anything unexpected is logged and becomes INTERNAL. */
function errorOf(err: unknown, req: FastifyRequest): AppError {
  const e = toAppError(err as FastifyError, req);
  if (e) return e;
  req.log.error({ err, reqId: req.id }, 'request failed');
  return new AppError('INTERNAL', 'an unexpected error occurred; see the server log for this request id');
}

export async function buildHttpApp(services: Services, log: Logger, opts: { https?: { key: string; cert: string; groups?: string } | null; serverUrl?: () => string; consoleDir?: string | null; dataDir?: string } & Partial<Omit<InstallationPackageIndex, 'dataDir'>> = {}): Promise<FastifyInstance> {
  const boundaryHeaders = baseHeaders(Boolean(opts.https));
  // The pino instance is typed more narrowly than Fastify's logger interface; the app is used through the default one.
  const app = Fastify({
    loggerInstance: log,
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert, minVersion: 'TLSv1.2' as const, ...(opts.https.groups ? { ecdhCurve: opts.https.groups } : {}) } } : {}),
    bodyLimit: Math.max(AGENT_MESSAGE_MAX_BYTES, 16 * 1024 * 1024),
    // The request id: the caller's X-Request-Id when it is a plain token (a proxy's or the
    // client's own, so one id follows a request through every log), else a new one. It is in
    // every answer's X-Request-Id header, every error body and every log line of the request.
    requestIdHeader: false,
    genReqId: (raw) => requestIdOf(raw.headers[REQUEST_ID_HEADER]),
    // Per-request lines would drown the log at fleet scale; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    // Errors that happen before a route is found (bad percent-encoding, an overlong segment) and
    // those of Node's parser (oversized headers, timeouts) get the API's error body too
    // (http/boundary.ts); no hook runs for them, so they are given the boundary's headers here.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (err, req, reply) => {
      const e = errorOf(err, req);
      // The option's reply is generic over route types it does not have here.
      void (reply as FastifyReply).headers({ ...boundaryHeaders, [REQUEST_ID_HEADER]: String(req.id) }).status(e.status).send(e.toBody(String(req.id)));
    },
    clientErrorHandler: clientErrorHandler(Boolean(opts.https)),
    // Fastify's own 503 while closing is not the API's error body: the hook below answers UNAVAILABLE instead.
    return503OnClosing: false,
  }) as unknown as FastifyInstance;

  // The security headers of every response, set on the raw response first thing so that errors
  // of later hooks (the access check), the not-found handler and hijacked streams carry them; a
  // route that sets its own (the console's cache policy) wins. The API documentation gets the
  // console's headers unchanged: Swagger UI (@fastify/swagger-ui 6) loads only its own files, with
  // no inline script, and without its top bar (below) inserts no inline style either, so it needs
  // no hash or 'unsafe-inline' (checked in Chromium; test/http-boundary.test.ts checks the page),
  // and swagger-ui's own staticCSP is left off.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    for (const [name, value] of Object.entries(boundaryHeaders)) reply.raw.setHeader(name, value);
    reply.raw.setHeader(REQUEST_ID_HEADER, req.id);
    const route = req.routeOptions.url;
    if (route === '/docs' || route?.startsWith('/docs/')) for (const [name, value] of Object.entries(CONSOLE_HEADERS)) reply.raw.setHeader(name, value);
    if (closing) {
      reply.raw.setHeader('connection', 'close');
      throw new AppError('UNAVAILABLE', 'the server is shutting down; retry in a moment');
    }
  });

  // Set before any plug-in registers its routes (Swagger UI's): a plug-in's routes keep the
  // error handler of when they were added.
  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    const e = errorOf(err, req);
    void reply.status(e.status).send(e.toBody(String(req.id)));
  });

  app.decorate('declaredRoutes', installAccessControl(app, services));
  installResponseSerializer(app);

  await app.register(swagger, {
    openapi: {
      // 3.1: its schemas are JSON Schema, as TypeBox writes them (a null member, const, enum without type).
      openapi: '3.1.0',
      info: { title: 'Garrison API', version: API_VERSION, description: 'Administration API of the Garrison endpoint management server.' },
      // Relative: the server that serves this document (its paths carry /api/v1 or /agent/v1).
      servers: [{ url: '/', description: 'This server' }],
      components: { securitySchemes: { apiToken: { type: 'http', scheme: 'bearer', description: 'An API token (gat.…)' } } },
      security: [{ apiToken: [] }],
    },
    // Raw request bodies (a package archive) have no JSON schema for the route to validate:
    // their operation's `consumes` documents them.
    transformObject: (doc) => {
      const spec = (doc as { openapiObject: { paths?: Record<string, Record<string, Record<string, unknown>>> } }).openapiObject;
      for (const op of allOperations) {
        const at = op.consumes && spec.paths?.[(op.base ?? API_PREFIX) + op.path]?.[op.method.toLowerCase()];
        if (at) at.requestBody = { required: true, content: Object.fromEntries(op.consumes!.map((type) => [type, { schema: { type: 'string', contentMediaType: type } }])) };
      }
      return spec;
    },
  });
  // BaseLayout: the standalone layout's top bar adds only Swagger's logo, an inline SVG whose
  // <style> the console's CSP (style-src 'self') refuses, and a box to load other documents.
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { layout: 'BaseLayout' } });

  route(app, getHealth, publicAccess, async () => ({
    status: 'ok' as const,
    version: API_VERSION,
    agentsOnline: services.presence.onlineCount(),
    // Public: what agents and the CLI are told to pin (also printed by the server at start).
    caFingerprint: services.trust?.caFingerprint ?? null,
  }));
  app.get('/api/v1/openapi.json', { config: publicAccess, schema: { hide: true } }, async () => app.swagger());
  route(app, listErrorCodes, publicAccess, async () => errorCodeInfo);

  registerIdentityRoutes(app, services);
  registerGroupRoutes(app, services);
  registerDeviceRoutes(app, services);
  registerTaskRoutes(app, services);
  registerAdminRoutes(app, services);
  registerPolicyRoutes(app, services);
  registerAgentRoutes(app, services);
  registerRepositoryRoutes(app, services);
  registerDeploymentRoutes(app, services);
  registerPushRoutes(app, services);
  registerServerTaskRoutes(app, services);
  registerNotificationRoutes(app, services);
  registerOidcRoutes(app, services);
  registerSavedSelectionRoutes(app, services);
  registerDashboardRoutes(app, services);
  // The shared index and bytes come from the composition root (the server task environment's): without them no bundle could be listed.
  if (opts.dataDir && opts.installationPackages && opts.archives) registerInstallationPackageRoutes(app, services, { dataDir: opts.dataDir, installationPackages: opts.installationPackages, archives: opts.archives });
  registerInstallRoutes(app, services, opts.serverUrl ?? (() => ''));
  await registerConsoleRoutes(app, services, opts.consoleDir ?? null);
  return app;
}
