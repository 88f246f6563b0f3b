/** Which addresses a notification webhook may reach (services/webhook-address.ts, ADR 0022). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhookAddresses } from '../src/services/webhook-address.ts';

describe('webhook addresses', () => {
  it("refuses the server's own and its link's addresses, IPv4-mapped ones too, and lets private networks through", () => {
    const w = new WebhookAddresses();
    for (const a of ['127.0.0.1', '127.8.9.10', '0.0.0.0', '169.254.169.254', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', 'fd00:ec2::254']) {
      assert.match(w.refusal(a) ?? '', /the server itself or its link/, a);
    }
    for (const a of ['10.1.2.3', '172.16.0.1', '192.168.1.1', '192.0.2.1', '8.8.8.8', 'fd12:3456::1', '2001:db8::1']) assert.equal(w.refusal(a), null, a);
    assert.match(w.literalRefusal(new URL('http://[::1]:8080/x')) ?? '', /::1/);
    assert.equal(w.literalRefusal(new URL('https://hooks.example.com/x')), null, 'names are checked as the socket connects');
  });

  it('lets the networks the operator allows through, and refuses a bad network', () => {
    const w = new WebhookAddresses(['127.0.0.1/32', 'fe80::/64']);
    assert.equal(w.refusal('127.0.0.1'), null);
    assert.notEqual(w.refusal('127.0.0.2'), null);
    assert.equal(w.refusal('fe80::1'), null);
    assert.equal(new WebhookAddresses(['::1']).refusal('::1'), null, 'a single address');
    for (const bad of ['localhost', '10.0.0.0/33', '10.0.0.0/x', 'fe80::/129', '']) assert.throws(() => new WebhookAddresses([bad]), /not an address or a CIDR network/, bad);
  });

  it('checks every address a name resolves to as the socket connects', async () => {
    const w = new WebhookAddresses();
    const looked = await new Promise<{ err: (Error & { code?: string }) | null }>((resolve) => w.lookup('localhost', {}, (err) => resolve({ err })));
    assert.equal(looked.err?.code, 'WEBHOOK_ADDRESS_DENIED');
    const allowed = new WebhookAddresses(['127.0.0.0/8', '::1']);
    const ok = await new Promise<{ err: Error | null; address: string }>((resolve) => allowed.lookup('localhost', {}, (err, address) => resolve({ err, address: String(address) })));
    assert.equal(ok.err, null);
    assert.match(ok.address, /^(127\.0\.0\.1|::1)$/);
  });

  it("works as a real socket's lookup: a name reaches an allowed address, and a denied one is never connected to", async () => {
    let reached = 0;
    const server = createServer((_req, res) => {
      reached++;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const get = (w: WebhookAddresses) =>
      new Promise<number | string>((resolve) => {
        // A new socket each time (a pooled one was checked when it opened), with the default
        // family selection, which asks the lookup for every address.
        const req = request(`http://localhost:${port}/`, { lookup: w.lookup, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
        req.end();
      });
    try {
      assert.equal(await get(new WebhookAddresses(['127.0.0.0/8', '::1'])), 200);
      assert.equal(await get(new WebhookAddresses()), 'WEBHOOK_ADDRESS_DENIED');
      assert.equal(reached, 1, 'the denied request never reached the server');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
