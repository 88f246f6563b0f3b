/**
 * Push installation on the wire (the Sophos "Protect computers" wizard): the administrator
 * gives hosts, a target group and SSH credentials once; the server connects to each host,
 * checks it, runs the agent installer and reports each host's outcome and return code.
 *
 * The host-list grammar is parsed here, without I/O, so that the CLI (and the console) can
 * check a list before sending it; the server parses it again and is the authority.
 */
import { Type, type Static } from 'typebox';
import { PageQuery } from './contract.ts';

export const PUSH_MAX_HOSTS = 4096;
export const PUSH_MAX_PARALLEL = 50;
export const PUSH_DEFAULT_PARALLEL = 10;
export const PUSH_DEFAULT_PORT = 22;
export const PUSH_DEFAULT_INSTALL_DIR = '/opt/garrison-agent';
export const PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS = 20;
export const PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES = 30;
/** Smallest IPv4 CIDR prefix accepted: a /22 is 1,024 addresses. */
export const PUSH_MIN_IPV4_PREFIX = 22;
/** Smallest IPv6 CIDR prefix accepted: a /118 is 1,024 addresses too. */
export const PUSH_MIN_IPV6_PREFIX = 118;
/** Free space the install folder's filesystem needs, in bytes. */
export const PUSH_MIN_FREE_BYTES = 300 * 1024 * 1024;
/** What the installer prints once the agent has enrolled: `garrison-install: enrolled device <id>`. */
export const PUSH_ENROLLED_MARKER = 'garrison-install: enrolled device ';
/** An optional line the installer may print to move the host's progress: `garrison-install: progress <0-100>`. */
export const PUSH_PROGRESS_MARKER = 'garrison-install: progress ';

export const PushJobState = {
  running: 'running',
  completed: 'completed',
  cancelled: 'cancelled',
  /** The server stopped (or crashed) while the job ran; what was unfinished is marked INTERRUPTED. */
  interrupted: 'interrupted',
} as const;
export type PushJobState = (typeof PushJobState)[keyof typeof PushJobState];

export const PushHostState = { pending: 'pending', running: 'running', succeeded: 'succeeded', failed: 'failed' } as const;
export type PushHostState = (typeof PushHostState)[keyof typeof PushHostState];

/** Why a host ended as it did. Clients branch on these, never on the message. */
export const PushOutcome = {
  SUCCEEDED: 'SUCCEEDED',
  /** No TCP connection or no SSH server: refused, no route, unknown name, handshake failure. */
  UNREACHABLE: 'UNREACHABLE',
  /** No SSH handshake within the connect timeout, or the installer ran past its timeout. */
  TIMEOUT: 'TIMEOUT',
  /** The SSH server refused the username with this password or key. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** Not an operating system and architecture push installation supports (Linux x86_64 for now). */
  UNSUPPORTED_PLATFORM: 'UNSUPPORTED_PLATFORM',
  /** No root or sudo, no curl, or too little free space. */
  REQUIREMENTS_NOT_MET: 'REQUIREMENTS_NOT_MET',
  /** The previous agent's uninstall.sh failed. */
  CONFLICT_REMOVAL_FAILED: 'CONFLICT_REMOVAL_FAILED',
  /** The installer exited non-zero, or exited 0 without reporting an enrolled device. */
  INSTALL_FAILED: 'INSTALL_FAILED',
  /** The SSH connection dropped while a step ran; the host's state is unknown. */
  CONNECTION_LOST: 'CONNECTION_LOST',
  CANCELLED: 'CANCELLED',
  /** The server stopped while this host was pending or running. */
  INTERRUPTED: 'INTERRUPTED',
  /** An unexpected error on the server; its log has the details. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
} as const;
export type PushOutcome = (typeof PushOutcome)[keyof typeof PushOutcome];

export const PushStepName = { connect: 'connect', requirements: 'requirements', removeConflicts: 'remove-conflicts', install: 'install', report: 'report' } as const;
export type PushStepName = (typeof PushStepName)[keyof typeof PushStepName];
export const PUSH_STEPS: readonly PushStepName[] = ['connect', 'requirements', 'remove-conflicts', 'install', 'report'];

export const PushStepState = { pending: 'pending', running: 'running', succeeded: 'succeeded', failed: 'failed', skipped: 'skipped' } as const;
export type PushStepState = (typeof PushStepState)[keyof typeof PushStepState];

const NullableString = Type.Union([Type.String(), Type.Null()]);
export const PushJobStateSchema = Type.Enum(PushJobState);
export const PushHostStateSchema = Type.Enum(PushHostState);
export const PushOutcomeSchema = Type.Enum(PushOutcome);
export const PushStepNameSchema = Type.Enum(PushStepName);
export const PushStepStateSchema = Type.Enum(PushStepState);

export const PushStepView = Type.Object(
  { name: PushStepNameSchema, state: PushStepStateSchema, startedAt: NullableString, finishedAt: NullableString, message: NullableString },
  { additionalProperties: false },
);
export type PushStepView = Static<typeof PushStepView>;

export const PushHostView = Type.Object(
  {
    address: Type.String(),
    port: Type.Integer(),
    state: PushHostStateSchema,
    outcome: Type.Union([PushOutcomeSchema, Type.Null()]),
    message: Type.Union([Type.String(), Type.Null()], { description: 'A human-readable reason; never parse it (see `outcome`)' }),
    step: Type.Union([PushStepNameSchema, Type.Null()], { description: 'The step running now, or the last one that ran' }),
    percent: Type.Number(),
    steps: Type.Array(PushStepView),
    exitCode: Type.Union([Type.Integer(), Type.Null()], { description: "The installer's (or uninstaller's) exit code, when it ran to the end" }),
    outputTail: Type.Union([Type.String(), Type.Null()], { description: "The last few kilobytes of the installer's output (stdout and stderr interleaved)" }),
    deviceId: NullableString,
    hostKeySha256: Type.Union([Type.String(), Type.Null()], { description: "The SSH host key's SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`)" }),
    platform: Type.Union([Type.String(), Type.Null()], { description: '`uname -s`/`uname -m`, e.g. "Linux x86_64"' }),
    startedAt: NullableString,
    finishedAt: NullableString,
  },
  { additionalProperties: false },
);
export type PushHostView = Static<typeof PushHostView>;

/** The job's options as stored and shown: never the credentials, only which kind was given. */
export const PushJobOptions = Type.Object(
  {
    port: Type.Integer(),
    parallel: Type.Integer(),
    removeConflicting: Type.Boolean(),
    installDir: Type.String(),
    auth: Type.Union([Type.Literal('password'), Type.Literal('key')]),
    connectTimeoutSeconds: Type.Integer(),
    installTimeoutMinutes: Type.Integer(),
  },
  { additionalProperties: false },
);
export type PushJobOptions = Static<typeof PushJobOptions>;

export const PushJobSummary = Type.Object(
  {
    total: Type.Integer(),
    pending: Type.Integer(),
    running: Type.Integer(),
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    outcomes: Type.Partial(Type.Record(PushOutcomeSchema, Type.Integer()), { description: 'Finished hosts per outcome', additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type PushJobSummary = Static<typeof PushJobSummary>;

export const PushJobView = Type.Object(
  {
    id: Type.String(),
    groupId: Type.String(),
    groupPath: Type.String(),
    requestedBy: Type.String(),
    state: PushJobStateSchema,
    options: PushJobOptions,
    enrolmentTokenId: Type.Union([Type.String(), Type.Null()], { description: 'The enrolment token created for this job (revoked when the job ends)' }),
    summary: PushJobSummary,
    createdAt: Type.String(),
    finishedAt: NullableString,
    hosts: Type.Optional(Type.Array(PushHostView, { description: 'Every host, in the order given; absent from listings' })),
  },
  { additionalProperties: false },
);
export type PushJobView = Static<typeof PushJobView>;

export const PushInstallCreate = Type.Object(
  {
    groupId: Type.String({ minLength: 1, maxLength: 100, description: 'The group the hosts enrol into' }),
    hosts: Type.Array(Type.String({ minLength: 1, maxLength: 10_000 }), {
      minItems: 1,
      maxItems: PUSH_MAX_HOSTS,
      description:
        'Host names, IPv4/IPv6 addresses, ranges (10.0.0.5-20, 10.0.0.5-10.0.1.20) and CIDR blocks up to /22 (IPv6 /118), each with an optional :port ([v6]:port); an item may hold several, separated by commas or spaces. At most 4,096 hosts in all.',
    }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'SSH port of hosts given without one (default 22)' })),
    username: Type.String({ minLength: 1, maxLength: 256 }),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Used for this job only (SSH login and sudo); never stored' })),
    privateKey: Type.Optional(Type.String({ minLength: 1, maxLength: 65536, description: 'An OpenSSH or PEM private key; used for this job only, never stored' })),
    passphrase: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "The private key's passphrase" })),
    parallel: Type.Optional(Type.Integer({ minimum: 1, maximum: PUSH_MAX_PARALLEL, description: 'Hosts installed at once (default 10)' })),
    removeConflicting: Type.Optional(Type.Boolean({ description: "Run a previous agent's <installDir>/uninstall.sh first" })),
    installDir: Type.Optional(
      Type.String({ minLength: 2, maxLength: 200, pattern: '^(?!.*/\\.\\.?(/|$))/[A-Za-z0-9._+@-]+(/[A-Za-z0-9._+@-]+)*$', description: 'Absolute install folder without . or .. parts (default /opt/garrison)' }),
    ),
    connectTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300 })),
    installTimeoutMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 240 })),
  },
  { additionalProperties: false },
);
export type PushInstallCreate = Static<typeof PushInstallCreate>;

export const PushInstallListQuery = Type.Object(
  {
    state: Type.Optional(PushJobStateSchema),
    groupId: Type.Optional(Type.String({ maxLength: 100 })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type PushInstallListQuery = Static<typeof PushInstallListQuery>;

// ---------------------------------------------------------------------------------------------
// Host lists
// ---------------------------------------------------------------------------------------------

export interface PushTarget {
  /** An IPv4 address, an IPv6 address (compressed, without brackets) or a lower-case host name. */
  address: string;
  port: number;
}

export type HostListResult = { ok: true; hosts: PushTarget[] } | { ok: false; entry: string; reason: string };

/** Splits free text (a CLI option, a pasted list) into entries: commas, semicolons and white space separate. */
export function splitHostList(text: string): string[] {
  return text.split(/[\s,;]+/).filter(Boolean);
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HOST_LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const HOSTNAME = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*\\.?$`);

function ipv4ToInt(s: string): number | null {
  const m = IPV4.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    n = n * 256 + o;
  }
  return n;
}
function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The compressed form of an IPv6 address, or null; uses URL so that it runs in browsers too. */
function normalizeIpv6(s: string): string | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(':')) return null;
  try {
    const host = new URL(`http://[${s}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return null;
  }
}
function ipv6ToBigInt(compressed: string): bigint {
  // URL has already turned an embedded IPv4 part into hex groups.
  const [head, tail] = compressed.includes('::') ? compressed.split('::') : [compressed, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}
function bigIntToIpv6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return normalizeIpv6(groups.join(':'))!;
}

function parsePort(text: string | undefined, fallback: number): number | string {
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text)) return `"${text}" is not a port`;
  const p = Number(text);
  return p >= 1 && p <= 65535 ? p : `port ${p} is not 1 to 65535`;
}

/**
 * Expands host entries into targets, in order, without duplicates. An entry is a host name,
 * an IPv4 or IPv6 address, a range (`10.0.0.5-20`, `10.0.0.5-10.0.1.20`) or a CIDR block
 * (`10.0.0.0/24`, at most a /22; `fd00::/120`, at most a /118), with an optional `:port`
 * (`[fd00::1]:2222` for IPv6). Of an IPv4 block of /30 or larger, the network and broadcast
 * addresses are left out. The first invalid entry stops the expansion, as does passing `max`.
 */
export function expandHostList(entries: readonly string[], opts: { defaultPort?: number; max?: number } = {}): HostListResult {
  const defaultPort = opts.defaultPort ?? PUSH_DEFAULT_PORT;
  const max = opts.max ?? PUSH_MAX_HOSTS;
  const out: PushTarget[] = [];
  const seen = new Set<string>();
  const add = (address: string, port: number): boolean => {
    const key = `${address}|${port}`;
    if (seen.has(key)) return true;
    seen.add(key);
    out.push({ address, port });
    return out.length <= max;
  };
  const tooMany = (entry: string): HostListResult => ({ ok: false, entry, reason: `the list expands to more than ${max} hosts` });

  for (const raw of entries.flatMap(splitHostList)) {
    const entry = raw;
    const fail = (reason: string): HostListResult => ({ ok: false, entry, reason });
    let base: string;
    let portText: string | undefined;
    let v6 = false;
    const bracket = /^\[([^\]]+)\](?::([^:]*))?$/.exec(entry);
    if (bracket) {
      [base, portText, v6] = [bracket[1]!, bracket[2], true];
      if (portText === '') return fail('a port must follow ":"');
    } else if (entry.startsWith('[')) {
      return fail('an IPv6 address in brackets is written [address] or [address]:port');
    } else if ((entry.match(/:/g) ?? []).length >= 2) {
      [base, v6] = [entry, true];
    } else {
      const i = entry.lastIndexOf(':');
      [base, portText] = i >= 0 ? [entry.slice(0, i), entry.slice(i + 1)] : [entry, undefined];
      if (portText === '') return fail('a port must follow ":"');
    }
    const port = parsePort(portText, defaultPort);
    if (typeof port === 'string') return fail(port);
    if (!base) return fail('no host before the port');

    if (v6) {
      const slash = base.indexOf('/');
      const addr = normalizeIpv6(slash >= 0 ? base.slice(0, slash) : base);
      if (!addr) return fail('not an IPv6 address');
      if (slash < 0) {
        if (!add(addr, port)) return tooMany(entry);
        continue;
      }
      const prefixText = base.slice(slash + 1);
      if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > 128) return fail(`"/${prefixText}" is not an IPv6 prefix length`);
      const prefix = Number(prefixText);
      if (prefix < PUSH_MIN_IPV6_PREFIX) return fail(`an IPv6 block may be at most a /${PUSH_MIN_IPV6_PREFIX} (1,024 addresses)`);
      const size = 1n << BigInt(128 - prefix);
      const start = (ipv6ToBigInt(addr) / size) * size;
      for (let i = 0n; i < size; i++) if (!add(bigIntToIpv6(start + i), port)) return tooMany(entry);
      continue;
    }

    const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(base);
    if (cidr) {
      const a = ipv4ToInt(cidr[1]!);
      if (a === null) return fail(`${cidr[1]} is not an IPv4 address`);
      const prefix = Number(cidr[2]);
      if (prefix > 32) return fail(`"/${prefix}" is not an IPv4 prefix length`);
      if (prefix < PUSH_MIN_IPV4_PREFIX) return fail(`an IPv4 block may be at most a /${PUSH_MIN_IPV4_PREFIX} (1,024 addresses)`);
      const size = 2 ** (32 - prefix);
      const start = Math.floor(a / size) * size;
      // Of a /30 and larger, the first and last addresses are the network and broadcast ones.
      const [from, to] = size >= 4 ? [start + 1, start + size - 2] : [start, start + size - 1];
      for (let n = from; n <= to; n++) if (!add(intToIpv4(n), port)) return tooMany(entry);
      continue;
    }
    const range = /^([\d.]+)-([\d.]+)$/.exec(base);
    if (range) {
      const a = ipv4ToInt(range[1]!);
      if (a === null) return fail(`${range[1]} is not an IPv4 address`);
      let b: number | null;
      if (/^\d{1,3}$/.test(range[2]!)) {
        const last = Number(range[2]);
        b = last <= 255 ? a - (a % 256) + last : null;
        if (b === null) return fail(`${range[2]} is not 0 to 255`);
      } else {
        b = ipv4ToInt(range[2]!);
        if (b === null) return fail(`${range[2]} is not an IPv4 address`);
      }
      if (b < a) return fail('the range ends before it starts');
      // Checked before expanding, so that 0.0.0.0-255.255.255.255 costs nothing.
      if (b - a + 1 > max) return tooMany(entry);
      for (let n = a; n <= b; n++) if (!add(intToIpv4(n), port)) return tooMany(entry);
      continue;
    }
    if (/^[\d.]+$/.test(base)) {
      const a = ipv4ToInt(base);
      if (a === null) return fail('not an IPv4 address');
      if (!add(intToIpv4(a), port)) return tooMany(entry);
      continue;
    }
    const name = base.toLowerCase();
    if (name.length > 253 || !HOSTNAME.test(name)) return fail('not a host name, address, range or CIDR block');
    if (!add(name.replace(/\.$/, ''), port)) return tooMany(entry);
  }
  if (out.length === 0) return { ok: false, entry: '', reason: 'no hosts given' };
  return { ok: true, hosts: out };
}
