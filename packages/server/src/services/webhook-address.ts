/**
 * Where a notification's webhook may connect (ADR 0022). Default-deny for the server itself and
 * its link: loopback, link-local (cloud metadata services live there), unspecified, multicast
 * and reserved addresses, in IPv4 and IPv6 (IPv4-mapped ones too). Private networks are allowed:
 * an intranet receiver (a ticketing system, a chat bridge) is the common case. The operator
 * allows more with `--webhook-allow CIDR` (GARRISON_WEBHOOK_ALLOW).
 *
 * The check is made on the address the connection goes to, in the socket's own lookup, so a name
 * that resolves to an allowed address when a rule is saved and to a denied one when it fires (DNS
 * rebinding) is refused too. A literal address in the URL is checked before connecting (the
 * socket does not look it up) and when the rule is saved. A kept-alive socket that is reused was
 * checked when it opened, and still goes to that address.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const DENIED: [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
  // AWS's IPv6 metadata address (inside fc00::/7, which is otherwise allowed as private).
  ['fd00:ec2::254', 128, 'ipv6'],
];

export class WebhookAddresses {
  readonly #denied = new BlockList();
  readonly #allowed = new BlockList();
  readonly allowed: readonly string[];

  /** `allow`: CIDRs (or single addresses) let through though denied; a bad one throws. */
  constructor(allow: readonly string[] = []) {
    for (const [net, prefix, family] of DENIED) this.#denied.addSubnet(net, prefix, family);
    for (const cidr of allow) {
      const [net = '', bits] = cidr.trim().split('/');
      const family = isIP(net);
      const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
      if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new Error(`${JSON.stringify(cidr)} is not an address or a CIDR network (such as 10.0.0.0/8 or fd00::/8)`);
      this.#allowed.addSubnet(net, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
    this.allowed = allow;
  }

  /** Why a webhook may not connect to this address, or null when it may. */
  refusal(address: string): string | null {
    const family = isIP(address);
    if (!family) return null;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (!this.#denied.check(address, type) || this.#allowed.check(address, type)) return null;
    return `${address} is an address of the server itself or its link (loopback, link-local, metadata, multicast or reserved); the server allows it only when started with --webhook-allow`;
  }

  /** The URL's host when it is a literal address the webhook may not reach. */
  literalRefusal(url: URL): string | null {
    return this.refusal(url.hostname.replace(/^\[|\]$/g, ''));
  }

  /** A socket lookup that fails on a denied address (every address a name resolves to is checked). */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const denied = addresses.map((a) => this.refusal(a.address)).find((r) => r !== null);
      if (denied) return callback(Object.assign(new Error(`${hostname}: ${denied}`), { code: 'WEBHOOK_ADDRESS_DENIED' }), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}
