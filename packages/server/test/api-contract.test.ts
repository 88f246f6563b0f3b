/**
 * The API contract (ADR 0021), checked on a real server: the OpenAPI document passes a standard
 * linter (Redocly's recommended rules) with no error; every documented operation has an id, its
 * success schema and its error answers; every operation of the protocol's table is served once;
 * request ids; and the paging convention on a list, through real HTTP.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { allOperations, API_PREFIX, type Page } from '@garrison/protocol';
import { GarrisonClient, ApiError } from '@garrison/client';
import { listGroups, createGroup } from '@garrison/protocol';
import { startTestServer, type TestServer } from './helpers.ts';

interface OpenApiOperation {
  operationId?: string;
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
type OpenApiDoc = { paths: Record<string, Record<string, OpenApiOperation>> };
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

describe('the API contract', () => {
  let t: TestServer;
  let doc: OpenApiDoc;
  before(async () => {
    t = await startTestServer();
    doc = (await t.api<OpenApiDoc>('GET', '/api/v1/openapi.json')).body;
  });
  after(() => t.close());

  it('passes the OpenAPI linter (Redocly, recommended rules) with no error', async () => {
    const config = await createConfig({ extends: ['recommended'] });
    const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: 'openapi.json', config });
    const errors = problems.filter((p) => p.severity === 'error');
    assert.deepEqual(
      errors.map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`),
      [],
    );
  });

  it('gives every documented operation an id, a success answer and its error answers', () => {
    const ids = new Map<string, string>();
    const missing: string[] = [];
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        const where = `${m.toUpperCase()} ${p}`;
        if (!op.operationId) {
          missing.push(`${where}: no operationId`);
          continue;
        }
        assert.ok(!ids.has(op.operationId), `${op.operationId} is the id of ${ids.get(op.operationId)} and ${where}`);
        ids.set(op.operationId, where);
        const statuses = Object.keys(op.responses ?? {});
        if (!statuses.some((s) => /^2/.test(s))) missing.push(`${where}: no success answer`);
        if (!statuses.some((s) => /^4/.test(s))) missing.push(`${where}: no error answer`);
        for (const s of statuses.filter((x) => /^[45]/.test(x))) {
          if (!op.responses![s]!.content?.['application/json']?.schema) missing.push(`${where}: the ${s} answer has no schema`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('serves every operation of the protocol table, each on its method and path', () => {
    const served = new Map<string, string>();
    for (const [p, item] of Object.entries(doc.paths)) for (const m of METHODS) if (item[m]?.operationId) served.set(item[m]!.operationId!, `${m.toUpperCase()} ${p}`);
    const seen = new Set<string>();
    for (const op of allOperations) {
      assert.ok(!seen.has(op.id), `two operations are called ${op.id}`);
      seen.add(op.id);
      assert.equal(served.get(op.id), `${op.method} ${op.base ?? API_PREFIX}${op.path}`, `${op.id} is not served where its definition says`);
      // A request body is documented: its JSON schema, or the media types of a raw one.
      const body = (doc.paths[`${op.base ?? API_PREFIX}${op.path}`]?.[op.method.toLowerCase()] as { requestBody?: { content?: Record<string, unknown> } } | undefined)?.requestBody;
      if (op.body || op.consumes) assert.deepEqual(Object.keys(body?.content ?? {}).sort(), op.consumes ? [...op.consumes].sort() : ['application/json'], `${op.id}'s request body`);
    }
  });

  it('answers with a request id: the caller\'s when it is a plain token, else a new one', async () => {
    const given = await t.fetch(`${t.server.url}/api/v1/health`, { headers: { 'x-request-id': 'lb-7f3a.42' } });
    assert.equal(given.headers.get('x-request-id'), 'lb-7f3a.42');
    for (const bad of ['a'.repeat(129), 'two words', 'a;b=c', '']) {
      const res = await t.fetch(`${t.server.url}/api/v1/health`, { headers: { 'x-request-id': bad } });
      const id = res.headers.get('x-request-id');
      assert.ok(id && id !== bad && /^[0-9a-f-]{36}$/.test(id), `"${bad}" was not replaced: ${id}`);
    }
    // An error's body names the same id as its header, also for a request no route matched.
    const denied = await t.fetch(`${t.server.url}/api/v1/groups`, { headers: { 'x-request-id': 'trace-1' } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('x-request-id'), 'trace-1');
    assert.equal(((await denied.json()) as { error: { requestId: string } }).error.requestId, 'trace-1');
    const nowhere = await t.fetch(`${t.server.url}/api/v1/no-such-thing`);
    const body = (await nowhere.json()) as { error: { requestId: string } };
    assert.equal(nowhere.headers.get('x-request-id'), body.error.requestId);
  });

  it('pages a list with a cursor: every item once, in order, and refuses a cursor it did not give', async () => {
    const api = new GarrisonClient({ baseUrl: t.server.url, token: t.token, fetch: t.fetch });
    for (let i = 0; i < 5; i++) await api.call(createGroup, { body: { name: `Paged ${i}` } });
    const first = await api.call(listGroups, { query: { limit: 2 } });
    assert.equal(first.items.length, 2);
    assert.equal(first.total, 6);
    assert.ok(first.nextCursor);
    const pages: Page<{ path: string }>[] = [];
    for await (const page of api.pages(listGroups, { query: { limit: 2 } })) pages.push(page);
    assert.deepEqual(pages.map((p) => p.items.length), [2, 2, 2]);
    assert.equal(pages.at(-1)!.nextCursor, null);
    const paths = pages.flatMap((p) => p.items.map((g) => g.path));
    assert.deepEqual(paths, [...paths].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    assert.equal(new Set(paths).size, 6);
    assert.deepEqual((await api.all(listGroups, {})).map((g) => g.path), paths);

    for (const cursor of ['not-a-cursor', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1,2,3]').toString('base64url')]) {
      await assert.rejects(api.call(listGroups, { query: { cursor } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400);
    }
    await assert.rejects(api.call(listGroups, { query: { limit: 1001 } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');
  });

  it('gives the typed client the API\'s coded errors, with the request id, and UNAVAILABLE when nothing answers', async () => {
    const stranger = new GarrisonClient({ baseUrl: t.server.url, token: 'gat.nobody.nothing', fetch: t.fetch });
    await assert.rejects(stranger.call(listGroups, {}), (e: ApiError) => e.code === 'UNAUTHENTICATED' && e.status === 401 && typeof e.requestId === 'string');
    const gone = new GarrisonClient({ baseUrl: 'https://127.0.0.1:1', token: t.token, fetch: t.fetch, timeoutMs: 5000 });
    await assert.rejects(gone.call(listGroups, {}), (e: ApiError) => e.code === 'UNAVAILABLE');
  });
});
