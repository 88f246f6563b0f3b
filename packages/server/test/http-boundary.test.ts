/**
 * The HTTP boundary over real HTTPS. Every error response, the framework's own and Node's HTTP
 * parser's included, is the API's error body (`{"error": {code, message, retryable, requestId?}}`)
 * with a code from the closed list and that code's status. Every response carries the security
 * headers: HSTS (the server serves HTTPS), nosniff, `Cache-Control: no-store` unless the route
 * sets its own (API, agent and installer responses carry tokens and credentials), and /docs has
 * the console's content security policy and framing rules.
 *
 * The malformed requests are written on a raw TLS socket so that no client normalises them. The
 * boundary does not touch storage, so these run on SQLite only.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { errorCodeInfo, isErrorCode } from '@garrison/protocol';
import { CONSOLE_HEADERS } from '../src/http/console-routes.ts';
import { startTestServer, waitFor, type TestServer } from './helpers.ts';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses one HTTP/1.1 response (with a content-length or chunked body). */
function parseResponse(data: Buffer): RawResponse {
  const end = data.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no complete response head in ${JSON.stringify(data.subarray(0, 200).toString())}`);
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let rest = data.subarray(end + 4);
  if (headers['content-length'] !== undefined) rest = rest.subarray(0, Number(headers['content-length']));
  else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = rest.indexOf('\r\n');
      const size = parseInt(rest.subarray(0, eol).toString(), 16);
      if (!size) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
    rest = Buffer.concat(parts);
  }
  return { status, headers, body: rest.toString('utf8') };
}

/** Every response on a connection, in order (each with a content-length). */
function parseResponses(data: Buffer): RawResponse[] {
  const all: RawResponse[] = [];
  while (data.length) {
    const r = parseResponse(data);
    all.push(r);
    data = data.subarray(data.indexOf('\r\n\r\n') + 4 + Number(r.headers['content-length'] ?? data.length));
  }
  return all;
}

/** Writes `head` (the request line and headers, without the blank line) and `body` as they are. */
function raw(t: TestServer, head: string, body: string | Buffer = ''): Promise<RawResponse> {
  const url = new URL(t.server.url);
  const request = Buffer.concat([Buffer.from(`${head}\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`, 'latin1'), Buffer.from(body)]);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (chunks.length) {
        try {
          resolve(parseResponse(Buffer.concat(chunks)));
        } catch (e) {
          reject(e as Error);
        }
      } else reject(err ?? new Error('the server closed the connection without a response'));
    };
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: t.server.tls!.caPem }, () => socket.write(request));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', finish);
    socket.on('close', () => finish());
  });
}

/** The documented error body, a code from the closed list, and that code's status and retryable flag. */
function assertErrorBody(status: number, contentType: string | null | undefined, text: string, code: string): { code: string; message: string; retryable: boolean; requestId?: string } {
  assert.match(contentType ?? '', /^application\/json/, `an error is JSON: ${text.slice(0, 200)}`);
  const body = JSON.parse(text) as { error: { code: string; message: string; retryable: boolean; requestId?: string; details?: unknown } };
  assert.deepEqual(Object.keys(body), ['error']);
  const e = body.error;
  for (const key of Object.keys(e)) assert.ok(['code', 'message', 'retryable', 'details', 'requestId'].includes(key), `unexpected key ${key} in ${text}`);
  assert.ok(isErrorCode(e.code), `${e.code} is in the closed list (errorCodeInfo)`);
  assert.equal(e.code, code, text);
  assert.equal(status, errorCodeInfo[e.code].status, `${code} is answered with its own status`);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  assert.equal(e.retryable, errorCodeInfo[e.code].retryable);
  if (e.requestId !== undefined) assert.equal(typeof e.requestId, 'string');
  return e;
}

type HeaderGetter = (name: string) => string | null | undefined;
const fromRaw = (r: RawResponse): HeaderGetter => (name) => r.headers[name];
const fromFetch = (r: Response): HeaderGetter => (name) => r.headers.get(name);

/** What every response carries; `noStore` where the route sets no cache policy of its own. */
function assertSecurityHeaders(get: HeaderGetter, what: string, opts: { noStore?: boolean } = {}): void {
  assert.equal(get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.match(get('strict-transport-security') ?? '', /^max-age=31536000\b/, `${what}: HSTS over HTTPS`);
  if (opts.noStore ?? true) assert.equal(get('cache-control'), 'no-store', `${what}: no-store`);
}

function assertConsoleHeaders(get: HeaderGetter, what: string): void {
  for (const [name, value] of Object.entries(CONSOLE_HEADERS)) assert.equal(get(name), value, `${what}: ${name}`);
}

describe('HTTP boundary', () => {
  let t: TestServer;
  let auth: string;
  before(async () => {
    t = await startTestServer();
    auth = `Authorization: Bearer ${t.token}`;
  });
  after(() => t.close());

  describe('error shapes', () => {
    it('answers bad percent-encoding in the path with BAD_REQUEST (400), in a parameter or not', async () => {
      for (const path of ['/api/v1/devices/%E0%A4%A', '/api/v1/%E0%A4%A/devices', '/agent/v1/%zz']) {
        const r = await raw(t, `GET ${path} HTTP/1.1\r\n${auth}`);
        const e = assertErrorBody(r.status, r.headers['content-type'], r.body, 'BAD_REQUEST');
        assert.ok(e.requestId, 'a framework error names its request');
        assertSecurityHeaders(fromRaw(r), `bad URL ${path}`);
      }
    });

    it('answers a route parameter longer than the router takes with URI_TOO_LONG (414)', async () => {
      // GET may also reach the console's file wildcard (which has no parameter to measure), and its not-found answer says the same.
      for (const head of [`GET /api/v1/devices/${'a'.repeat(2000)}`, `DELETE /api/v1/devices/${'a'.repeat(2000)}`, `PATCH /api/v1/groups/${'a'.repeat(2000)}`, `GET /api/v1/${'a'.repeat(2000)}`]) {
        const r = await raw(t, `${head} HTTP/1.1\r\n${auth}`);
        const e = assertErrorBody(r.status, r.headers['content-type'], r.body, 'URI_TOO_LONG');
        assert.ok(e.message.length < 300, 'the long segment is not echoed back');
        assertSecurityHeaders(fromRaw(r), `long parameter: ${head.slice(0, 30)}`);
      }
      // Within the limit the schema decides (the installer token may have 200 characters).
      const ok = await raw(t, `GET /install/${'a'.repeat(200)}/nothing.sh HTTP/1.1`);
      assertErrorBody(ok.status, ok.headers['content-type'], ok.body, 'NOT_FOUND');
    });

    it("answers oversized request headers (Node's parser, before Fastify) with HEADERS_TOO_LARGE (431)", async () => {
      const r = await raw(t, `GET /api/v1/groups HTTP/1.1\r\n${auth}\r\nX-Padding: ${'a'.repeat(100 * 1024)}`);
      assertErrorBody(r.status, r.headers['content-type'], r.body, 'HEADERS_TOO_LARGE');
      assertSecurityHeaders(fromRaw(r), 'oversized headers');
      assert.equal(r.headers['connection'], 'close');
    });

    it("answers a request Node's parser cannot read with BAD_REQUEST (400)", async () => {
      const r = await raw(t, `GET /api/v1/groups HTTP/1.1\r\n${auth}\r\nBad Header: x`);
      assertErrorBody(r.status, r.headers['content-type'], r.body, 'BAD_REQUEST');
      assertSecurityHeaders(fromRaw(r), 'unparsable request');
    });

    it('answers a request timeout with REQUEST_TIMEOUT (408), retryable', async () => {
      // Node reports it as a clientError on the connection (after headersTimeout, 60 s by default): given one here.
      const written: Buffer[] = [];
      const socket = {
        destroyed: false,
        writable: true,
        write(d: string | Buffer) {
          written.push(Buffer.from(d));
          return true;
        },
        end(d?: string | Buffer) {
          if (d) written.push(Buffer.from(d));
          this.writable = false;
          return this;
        },
        destroy() {
          this.destroyed = true;
          return this;
        },
        on() {
          return this;
        },
        once() {
          return this;
        },
        setTimeout() {
          return this;
        },
      };
      t.server.http.server.emit('clientError', Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket as unknown as Socket);
      const r = parseResponse(Buffer.concat(written));
      const e = assertErrorBody(r.status, r.headers['content-type'], r.body, 'REQUEST_TIMEOUT');
      assert.equal(e.retryable, true, 'a timed-out request may be sent again');
      assertSecurityHeaders(fromRaw(r), 'request timeout');
    });

    it('answers a body of another media type than the route takes with UNSUPPORTED_MEDIA_TYPE (415)', async () => {
      const xml = '<group><name>x</name></group>';
      const r = await raw(t, `POST /api/v1/groups HTTP/1.1\r\n${auth}\r\nContent-Type: text/xml\r\nContent-Length: ${xml.length}`, xml);
      const e = assertErrorBody(r.status, r.headers['content-type'], r.body, 'UNSUPPORTED_MEDIA_TYPE');
      assert.match(e.message, /text\/xml/);
      assertSecurityHeaders(fromRaw(r), 'unsupported media type');
    });

    it('answers malformed and empty JSON bodies with BAD_REQUEST (400)', async () => {
      for (const body of ['{"name": "x",', '']) {
        const r = await raw(t, `POST /api/v1/groups HTTP/1.1\r\n${auth}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}`, body);
        const e = assertErrorBody(r.status, r.headers['content-type'], r.body, 'BAD_REQUEST');
        assert.match(e.message, /JSON/);
        assertSecurityHeaders(fromRaw(r), `JSON body ${JSON.stringify(body)}`);
      }
      // The agent endpoints parse JSON the same way.
      const agent = await raw(t, `POST /agent/v1/enrol HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5`, '{"a":');
      assertErrorBody(agent.status, agent.headers['content-type'], agent.body, 'BAD_REQUEST');
    });

    it('answers a body over the limit with PAYLOAD_TOO_LARGE (413) before reading it', async () => {
      const r = await raw(t, `POST /api/v1/groups HTTP/1.1\r\n${auth}\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}`);
      assertErrorBody(r.status, r.headers['content-type'], r.body, 'PAYLOAD_TOO_LARGE');
      assertSecurityHeaders(fromRaw(r), 'body too large');
    });

    it('answers unknown routes and methods with NOT_FOUND (404)', async () => {
      for (const head of [`GET /api/v1/nothing-here HTTP/1.1\r\n${auth}`, `PATCH /api/v1/health HTTP/1.1`, `DELETE /agent/v1/ca HTTP/1.1`]) {
        const r = await raw(t, head);
        assertErrorBody(r.status, r.headers['content-type'], r.body, 'NOT_FOUND');
        assertSecurityHeaders(fromRaw(r), head.split('\r\n')[0]!);
      }
    });
  });

  it('answers a request that arrives while the server shuts down with UNAVAILABLE (503), not Fastify\'s own body', async () => {
    const closing = await startTestServer();
    try {
      const url = new URL(closing.server.url);
      const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: closing.server.tls!.caPem });
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise((resolve) => socket.on('close', resolve));
      // A request under way keeps the connection open through the close; the one pipelined after it comes during the close.
      const body = JSON.stringify({ name: 'during shutdown' });
      // The server has the first request (its head: the body is still to come) before it starts closing.
      const arrived = once(closing.server.http.server, 'request');
      socket.write(`POST /api/v1/groups HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${closing.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
      await arrived;
      const closed = closing.server.http.close();
      // Closing: past its preClose hooks (which make requests answer UNAVAILABLE), it stops listening.
      await waitFor(async () => !closing.server.http.server.listening, { what: 'the server closing', intervalMs: 5 });
      socket.write(`${body.slice(5)}GET /api/v1/health HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      await ended;
      await closed;
      const responses = parseResponses(Buffer.concat(chunks));
      const last = responses.at(-1)!;
      assertErrorBody(last.status, last.headers['content-type'], last.body, 'UNAVAILABLE');
      assert.equal(last.headers['connection'], 'close');
      assertSecurityHeaders(fromRaw(last), 'shutting down');
    } finally {
      await closing.close();
    }
  });

  describe('security headers', () => {
    it('on API JSON responses and API errors', async () => {
      const groups = await t.fetch(`${t.server.url}/api/v1/groups`, { headers: { authorization: `Bearer ${t.token}` } });
      assert.equal(groups.status, 200);
      await groups.arrayBuffer();
      assertSecurityHeaders(fromFetch(groups), 'GET /api/v1/groups');
      const health = await t.fetch(`${t.server.url}/api/v1/health`);
      await health.arrayBuffer();
      assertSecurityHeaders(fromFetch(health), 'GET /api/v1/health');
      const denied = await t.fetch(`${t.server.url}/api/v1/groups`);
      assertErrorBody(denied.status, denied.headers.get('content-type'), await denied.text(), 'UNAUTHENTICATED');
      assertSecurityHeaders(fromFetch(denied), '401 of GET /api/v1/groups');
      // Sign-in answers a session token: never stored by a cache.
      const signIn = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: 'not the password' }) });
      assertErrorBody(signIn.status, signIn.headers.get('content-type'), await signIn.text(), 'UNAUTHENTICATED');
      assertSecurityHeaders(fromFetch(signIn), 'POST /api/v1/session');
      const token = await t.fetch(`${t.server.url}/api/v1/api-tokens`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'boundary test' }) });
      assert.ok(token.status < 300, `API token created: ${token.status}`);
      await token.arrayBuffer();
      assertSecurityHeaders(fromFetch(token), 'POST /api/v1/api-tokens');
      // The live stream writes its own head (a hijacked reply): it carries them too.
      const ctrl = new AbortController();
      const live = await t.fetch(`${t.server.url}/api/v1/live`, { headers: { authorization: `Bearer ${t.token}` }, signal: ctrl.signal });
      assert.equal(live.status, 200);
      assertSecurityHeaders(fromFetch(live), 'GET /api/v1/live');
      ctrl.abort();
      await live.body?.cancel().catch(() => {});
    });

    it('on agent endpoints', async () => {
      const ca = await t.fetch(`${t.server.url}/agent/v1/ca`);
      assert.equal(ca.status, 200);
      await ca.arrayBuffer();
      assertSecurityHeaders(fromFetch(ca), 'GET /agent/v1/ca');
      const checkIn = await t.fetch(`${t.server.url}/agent/v1/check-in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assertErrorBody(checkIn.status, checkIn.headers.get('content-type'), await checkIn.text(), 'DEVICE_CREDENTIAL_INVALID');
      assertSecurityHeaders(fromFetch(checkIn), '401 of POST /agent/v1/check-in');
    });

    it('on installer scripts: an unknown file (JSON 404) and a script for an unknown token', async () => {
      const missing = await t.fetch(`${t.server.url}/install/abcdefgh12345678/nothing.sh`);
      assertErrorBody(missing.status, missing.headers.get('content-type'), await missing.text(), 'NOT_FOUND');
      assertSecurityHeaders(fromFetch(missing), 'installer 404');
      const script = await t.fetch(`${t.server.url}/install/abcdefgh12345678/linux.sh`);
      assert.equal(script.status, 403);
      await script.arrayBuffer();
      assert.match(script.headers.get('content-type') ?? '', /text\/x-shellscript/);
      assertSecurityHeaders(fromFetch(script), 'installer script');
    });

    it("on /docs: the console's content security policy and framing rules, and no inline script or style that would need more", async () => {
      const docs = await t.fetch(`${t.server.url}/docs`);
      assert.equal(docs.status, 200);
      assert.match(docs.headers.get('content-type') ?? '', /text\/html/);
      assertConsoleHeaders(fromFetch(docs), '/docs');
      assertSecurityHeaders(fromFetch(docs), '/docs');
      const html = await docs.text();
      assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/i, 'every script is a file of the server');
      assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or event handler');
      for (const src of [...html.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!)) {
        const res = await t.fetch(new URL(src, `${t.server.url}/docs`).href);
        assert.equal(res.status, 200, src);
        await res.arrayBuffer();
        assertConsoleHeaders(fromFetch(res), src);
        assertSecurityHeaders(fromFetch(res), src, { noStore: false });
      }
      // Without the standalone layout's top bar: its inline SVG logo carries a <style> that this CSP refuses.
      const init = await t.fetch(`${t.server.url}/docs/static/swagger-initializer.js`);
      assert.match(await init.text(), /"layout":"BaseLayout"/);
      const spec = await t.fetch(`${t.server.url}/docs/json`);
      assert.equal(spec.status, 200);
      await spec.arrayBuffer();
      assertSecurityHeaders(fromFetch(spec), '/docs/json');
    });

    it('on the console page, which keeps its own caching rules', async () => {
      const root = await t.fetch(`${t.server.url}/`, { headers: { accept: 'text/html' } });
      assert.equal(root.status, 200);
      assertConsoleHeaders(fromFetch(root), '/');
      assertSecurityHeaders(fromFetch(root), '/', { noStore: !t.server.consoleBuilt });
      if (t.server.consoleBuilt) {
        assert.equal(root.headers.get('cache-control'), 'no-cache');
        const html = await root.text();
        const asset = /\/assets\/[^"]+\.js/.exec(html)?.[0];
        assert.ok(asset, 'the page loads a hashed asset');
        const js = await t.fetch(`${t.server.url}${asset}`);
        await js.arrayBuffer();
        assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
        assertSecurityHeaders(fromFetch(js), asset, { noStore: false });
      }
    });
  });
});
