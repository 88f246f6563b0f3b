/**
 * The HTTP boundary: the headers every response carries, and how the framework's own errors
 * (routing, body parsing) and Node's HTTP parser's (oversized headers, timeouts, garbage) become
 * the one documented error body, `{"error": {code, message, retryable, requestId?}}`, with a code
 * from the closed list and that code's status.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyRequest } from 'fastify';
import type { ErrorCode } from '@garrison/protocol';
import { AppError } from '../errors.ts';

/** The longest path segment the router reads: the longest parameter a route declares (installer token, package file name). */
export const MAX_PARAM_LENGTH = 200;

/** One year; no includeSubDomains, since other hosts under the server's domain are not ours to bind. */
export const HSTS = 'max-age=31536000';

/**
 * What every response carries unless its route says otherwise. `no-store`: responses of the
 * API, agent endpoints and installers carry tokens, secrets and credentials (sign-in sessions,
 * new API tokens, enrolment credentials, installer scripts with their token); routes with their
 * own policy (the console's files, the API documentation's) set theirs, which wins.
 */
export function baseHeaders(https: boolean): Record<string, string> {
  return {
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    ...(https ? { 'strict-transport-security': HSTS } : {}),
  };
}

/**
 * A status of the framework's or a plug-in's error mapped to the code that has it. Not 401 and
 * 403: those codes are the access check's word (a plug-in's 403, such as @fastify/static's for a
 * path with `..`, says the request is malformed, and is answered BAD_REQUEST like any other 4xx).
 */
const BY_STATUS: Record<number, ErrorCode> = {
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  503: 'UNAVAILABLE',
};

const clip = (s: string, n = 200) => (s.length > n ? `${s.slice(0, n)}…` : s);

/**
 * Any error that reaches the error handler or `frameworkErrors` as an AppError; null for what
 * is the server's own fault (the caller logs it and answers INTERNAL).
 */
export function toAppError(err: FastifyError | AppError | Error, req: FastifyRequest): AppError | null {
  if (err instanceof AppError) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    return new AppError('VALIDATION_FAILED', `${fe.validationContext ?? 'request'} ${err.message.replace(/^(body|querystring|params)\s*/, '')}`, {
      issues: fe.validation.map((v) => ({ path: v.instancePath || '/', message: v.message ?? 'invalid' })),
    });
  }
  switch (fe.code) {
    case 'FST_ERR_BAD_URL':
      return new AppError('BAD_REQUEST', 'the URL is not valid: a path segment has bad percent-encoding');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError('URI_TOO_LONG', `a path segment is longer than ${MAX_PARAM_LENGTH} characters`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = req.headers['content-type'];
      return new AppError('UNSUPPORTED_MEDIA_TYPE', `this route does not take a body of type ${type ? `"${clip(String(type), 100)}"` : '(none given)'}; send application/json`);
    }
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('BAD_REQUEST', 'the body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('BAD_REQUEST', 'the body is empty but its content-type says JSON: send a JSON value, or no content-type');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'the body is too large');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('BAD_REQUEST', 'the body does not have the length its content-length says');
  }
  const status = fe.statusCode ?? 500;
  if (status >= 500 && status !== 503) return null;
  return new AppError(BY_STATUS[status] ?? 'BAD_REQUEST', clip(err.message || 'the request is not valid'));
}

/** The 404 of a path no route takes; a path with a segment no parameter could hold says so instead. */
export function noRoute(req: FastifyRequest): AppError {
  const path = req.url.split('?')[0]!;
  if (path.split('/').some((segment) => segment.length > MAX_PARAM_LENGTH)) {
    return new AppError('URI_TOO_LONG', `a path segment is longer than ${MAX_PARAM_LENGTH} characters`);
  }
  return new AppError('NOT_FOUND', `no route ${req.method} ${clip(path)}`);
}

/** What Node's parser reports on a connection, as the code it is answered with. */
function clientErrorCode(err: NodeJS.ErrnoException): ErrorCode {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'HEADERS_TOO_LARGE';
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 'PAYLOAD_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'REQUEST_TIMEOUT';
    default:
      return 'BAD_REQUEST';
  }
}

const CLIENT_ERROR_MESSAGES: Partial<Record<ErrorCode, string>> = {
  HEADERS_TOO_LARGE: 'the request line and headers are larger than the server reads',
  PAYLOAD_TOO_LARGE: 'the chunk extensions of the body are larger than the server reads',
  REQUEST_TIMEOUT: 'the request was not received in time',
  BAD_REQUEST: 'the request is not valid HTTP',
};

/**
 * Node's `clientError`: the parser failed before there is a request (so no Fastify hook or
 * handler runs), and the answer is written on the socket itself. As Node's own handler does, it
 * answers only when no response is under way on the connection, then closes it.
 */
export function clientErrorHandler(https: boolean): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    // A response already started on this keep-alive connection: anything written now would corrupt it.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const code = clientErrorCode(err);
      const e = new AppError(code, CLIENT_ERROR_MESSAGES[code] ?? 'the request is not valid HTTP');
      const body = JSON.stringify(e.toBody());
      const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...baseHeaders(https), connection: 'close' };
      const head = `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
      socket.write(head + body);
    }
    socket.destroy(err);
  };
}
