/**
 * Administrators and roles: `garrison admin …` and `garrison role …`. An administrator holds
 * grants, each one role on one group subtree, written ROLE@GROUP on the command line (the role
 * by id or name, the group by id or path). Passwords never go on the command line: they are
 * read from standard input, or asked for without echo on a terminal.
 */
import { Option, type Command } from 'commander';
import { createAdmin, createRole, deleteAdmin, deleteRole, listAdmins, listPermissions, listRoles, PAGE_LIMIT_MAX, removeAdminTotp, resetAdminPassword, updateAdmin, updateRole } from '@garrison/protocol';
import { UsageError, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { promptHidden, readStdin } from '../files.ts';
import { formatTime, keyValues, table } from '../format.ts';
import { findGroup, findRole, Groups, resolveAdmin, Roles } from '../resolve.ts';
import type { AdminCreate, AdminUpdate, AdminView, GrantInput, GrantView, GroupView, PermissionInfo, RoleCreate, RoleUpdate, RoleView } from '../types.ts';

const collect = (v: string, prev?: string[]) => [...(prev ?? []), v];

/**
 * A grant written ROLE@GROUP: "operator@My Organization/Servers", "Operator@Servers". Names
 * may hold an "@" themselves, so every split is tried and the one where both the role and the
 * group exist wins; when none does, the first "@" splits, and what is unknown is passed on as
 * an id for the API to refuse.
 */
export function parseGrant(spec: string, roles: readonly RoleView[], groups: readonly GroupView[], option = '--grant'): GrantInput {
  const splits: [string, string][] = [];
  for (let i = spec.indexOf('@'); i >= 0; i = spec.indexOf('@', i + 1)) {
    const role = spec.slice(0, i).trim();
    const group = spec.slice(i + 1).trim();
    if (role && group) splits.push([role, group]);
  }
  if (splits.length === 0) throw new UsageError(`${option} "${spec}": give ROLE@GROUP, such as "operator@My Organization/Servers" (the role by id or name, the group by id or path)`);
  for (const [role, group] of splits) {
    const r = findRole(roles, role);
    const g = findGroup(groups, group);
    if (r && g) return { roleId: r.id, groupId: g.id };
  }
  const [role, group] = splits[0]!;
  return { roleId: findRole(roles, role)?.id ?? role, groupId: findGroup(groups, group)?.id ?? group };
}

export function grantText(g: GrantView): string {
  return `${g.roleName} on ${g.groupPath}`;
}
const sameGrant = (a: GrantInput, b: GrantInput) => a.roleId === b.roleId && a.groupId === b.groupId;

/** Resolves ROLE@GROUP specs with one role list and one group list. */
class GrantResolver {
  readonly #roles: Roles;
  readonly #groups: Groups;
  constructor(client: Client) {
    this.#roles = new Roles(client);
    this.#groups = new Groups(client);
  }
  async resolve(specs: readonly string[] | undefined, option: string): Promise<GrantInput[]> {
    if (!specs?.length) return [];
    const [roles, groups] = await Promise.all([this.#roles.list(), this.#groups.list()]);
    return specs.map((s) => parseGrant(s, roles, groups, option));
  }
}

/**
 * The grants an update leaves: --grant replaces them all, --clear-grants removes them all,
 * --add-grant and --remove-grant change the current ones. Undefined: the grants stay as they are.
 */
export function nextGrants(
  current: readonly GrantInput[],
  change: { replace?: GrantInput[]; clear?: boolean; add?: GrantInput[]; remove?: GrantInput[] },
  describe: (g: GrantInput) => string = (g) => `${g.roleId}@${g.groupId}`,
): GrantInput[] | undefined {
  const { replace, clear, add = [], remove = [] } = change;
  if (replace?.length && clear) throw new UsageError('give --grant (which replaces the grants) or --clear-grants, not both');
  if ((replace?.length || clear) && (add.length || remove.length)) throw new UsageError('--grant and --clear-grants replace the grants: give --add-grant/--remove-grant without them');
  if (clear) return [];
  if (replace?.length) return replace;
  if (!add.length && !remove.length) return undefined;
  for (const r of remove) if (!current.some((g) => sameGrant(g, r))) throw new UsageError(`--remove-grant: the administrator does not hold ${describe(r)}`);
  const next = current.filter((g) => !remove.some((r) => sameGrant(g, r))).map((g) => ({ roleId: g.roleId, groupId: g.groupId }));
  for (const a of add) if (!next.some((g) => sameGrant(g, a))) next.push(a);
  return next;
}

/**
 * A password from standard input (one trailing newline dropped), or asked for twice without
 * echo when standard input is a terminal.
 */
async function readPassword(stderr: NodeJS.WritableStream, what: string): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    const write = (t: string) => void stderr.write(t);
    password = await promptHidden(`${what}: `, write);
    if ((await promptHidden(`${what} again: `, write)) !== password) throw new UsageError('the passwords differ');
  } else {
    password = (await readStdin()).replace(/\r?\n$/, '');
  }
  if (!password) throw new UsageError('the password is empty');
  return password;
}

/** A password never goes on the command line: every user of the machine can read it there, and shell history keeps it. */
function refusePasswordOption(cmd: Command): Command {
  return cmd.addOption(new Option('--password <password>').hideHelp()).hook('preAction', (_this, action) => {
    if (action.opts().password !== undefined) throw new UsageError('a password never goes on the command line: pipe it in with --password-stdin (or type it when asked)');
  });
}

function signInText(a: AdminView): string {
  const ways = [a.hasPassword ? (a.totpEnabled ? 'password + second factor' : 'password') : '', a.oidcSubject ? 'OpenID' : ''].filter(Boolean);
  return ways.join(', ') || 'none';
}

function adminDetails(a: AdminView): string {
  return keyValues([
    ['Administrator', a.name],
    ['ID', a.id],
    ['Display name', a.displayName],
    ['Email', a.email],
    ['State', a.disabled ? 'disabled' : 'active'],
    ['Grants', a.grants.map(grantText).join('; ') || 'none'],
    ['Password', a.hasPassword ? 'set' : 'not set'],
    ['Second factor', a.totpEnabled ? 'on' : 'off'],
    ...(a.oidcSubject ? [['OpenID subject', a.oidcSubject] as const] : []),
    ['Created', formatTime(a.createdAt)],
    ['Last sign-in', a.lastSignInAt ? formatTime(a.lastSignInAt) : 'never'],
  ]);
}

function roleDetails(r: RoleView, info: ReadonlyMap<string, PermissionInfo>): string {
  return (
    keyValues([
      ['Role', r.name],
      ['ID', r.id],
      ['Description', r.description],
      ['Built-in', r.builtin ? 'yes (cannot be changed or deleted)' : 'no'],
      ['Created', formatTime(r.createdAt)],
      ['Updated', formatTime(r.updatedAt)],
    ]) +
    `Permissions:\n${r.permissions.map((p) => `  ${p.padEnd(20)}${info.get(p)?.serverWide ? ' (root group only)' : ''}  ${info.get(p)?.description ?? ''}`.trimEnd()).join('\n')}\n`
  );
}

/** "a,b" and repeated options → one list, checked against the server's permissions. */
async function permissionList(client: Client, given: readonly string[] | undefined, option: string): Promise<string[]> {
  const wanted = [...new Set((given ?? []).flatMap((p) => p.split(',')).map((p) => p.trim()).filter(Boolean))];
  if (wanted.length === 0) return [];
  const known = await client.api.call(listPermissions, {});
  const unknown = wanted.filter((p) => !known.some((k) => k.id === p));
  if (unknown.length) throw new UsageError(`${option}: unknown permission${unknown.length > 1 ? 's' : ''} ${unknown.map((p) => `"${p}"`).join(', ')}; the permissions are ${known.map((k) => k.id).join(', ')} (garrison role permissions)`);
  return wanted;
}

export function registerAdministratorCommands(program: Command, state: RunState): void {
  const admin = program.command('admin').description('Administrators: their grants (a role on a group subtree each), passwords, second factors');

  act(admin.command('list').description('Administrators with their grants'), state, async (io) => {
    const admins = await (await io.client()).api.all(listAdmins, { query: { limit: PAGE_LIMIT_MAX } });
    io.print(admins, () =>
      table(
        ['NAME', 'DISPLAY NAME', 'STATE', 'GRANTS', 'SIGN-IN', 'LAST SIGN-IN', 'ID'],
        admins.map((a) => [a.name, a.displayName, a.disabled ? 'disabled' : 'active', a.grants.map(grantText).join('; ') || 'none', signInText(a), a.lastSignInAt ? formatTime(a.lastSignInAt) : 'never', a.id]),
      ),
    );
  });

  act(admin.command('show').description('One administrator').argument('<admin>', 'id or name'), state, async (io, _opts, [ref]) => {
    const a = await resolveAdmin(await io.client(), ref!);
    io.print(a, () => adminDetails(a));
  });

  act(
    refusePasswordOption(
      admin
        .command('create')
        .description('Create an administrator; with --password-stdin they can sign in to the console with a password')
        .requiredOption('--name <name>', 'the sign-in name (letters, digits, . _ @ -)')
        .option('--display-name <name>', 'the name shown')
        .option('--email <address>', 'an email address')
        .option('--grant <ROLE@GROUP>', 'a role on a group subtree, such as "operator@My Organization/Servers" (repeatable)', collect)
        .option('--password-stdin', 'read a console password from standard input (asked for without echo on a terminal)'),
    ),
    state,
    async (io, opts) => {
      const client = await io.client();
      const grants = await new GrantResolver(client).resolve(opts.grant, '--grant');
      const body: AdminCreate = { name: opts.name, grants };
      if (opts.displayName !== undefined) body.displayName = opts.displayName;
      if (opts.email !== undefined) body.email = opts.email;
      if (opts.passwordStdin) body.password = await readPassword(state.streams.stderr, `password for ${opts.name}`);
      const a = await client.api.call(createAdmin, { body });
      io.print(
        a,
        () =>
          `created administrator ${a.name} (${a.id}) with ${a.grants.length ? a.grants.map(grantText).join('; ') : 'no grants'}\n` +
          (a.hasPassword ? '' : `no password: give one with "garrison admin reset-password ${a.name} --password-stdin" so that they can sign in\n`),
      );
    },
  );

  act(
    admin
      .command('update')
      .description("Change an administrator's grants, display name or email")
      .argument('<admin>', 'id or name')
      .option('--grant <ROLE@GROUP>', 'replace the grants with these (repeatable)', collect)
      .option('--add-grant <ROLE@GROUP>', 'add a grant (repeatable)', collect)
      .option('--remove-grant <ROLE@GROUP>', 'remove a grant (repeatable)', collect)
      .option('--clear-grants', 'remove every grant')
      .option('--display-name <name>', 'the name shown ("" clears it)')
      .option('--email <address>', 'the email address ("" clears it)'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const current = await resolveAdmin(client, ref!);
      const resolver = new GrantResolver(client);
      const [replace, add, remove] = await Promise.all([resolver.resolve(opts.grant, '--grant'), resolver.resolve(opts.addGrant, '--add-grant'), resolver.resolve(opts.removeGrant, '--remove-grant')]);
      const names = new Map(current.grants.map((g) => [`${g.roleId}\n${g.groupId}`, grantText(g)]));
      const body: AdminUpdate = {};
      const grants = nextGrants(current.grants, { replace, clear: !!opts.clearGrants, add, remove }, (g) => names.get(`${g.roleId}\n${g.groupId}`) ?? `${g.roleId}@${g.groupId}`);
      if (grants !== undefined) body.grants = grants;
      if (opts.displayName !== undefined) body.displayName = opts.displayName === '' ? null : opts.displayName;
      if (opts.email !== undefined) body.email = opts.email === '' ? null : opts.email;
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --grant, --add-grant, --remove-grant, --clear-grants, --display-name or --email');
      const a = await client.api.call(updateAdmin, { params: { id: current.id }, body });
      io.print(a, () => adminDetails(a));
    },
  );

  act(
    admin.command('disable').description('Disable an administrator: their API tokens and console sessions are revoked at once').argument('<admin>', 'id or name'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const a = await client.api.call(updateAdmin, { params: { id: (await resolveAdmin(client, ref!)).id }, body: { disabled: true } });
      io.print(a, () => `disabled administrator ${a.name}; their API tokens and console sessions were revoked\n`);
    },
  );
  act(
    admin.command('enable').description('Enable a disabled administrator (revoked tokens stay revoked)').argument('<admin>', 'id or name'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const a = await client.api.call(updateAdmin, { params: { id: (await resolveAdmin(client, ref!)).id }, body: { disabled: false } });
      io.print(a, () => `enabled administrator ${a.name}\n`);
    },
  );

  act(
    admin.command('delete').description('Delete an administrator with their grants and tokens (the audit trail keeps their name)').argument('<admin>', 'id or name'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const a = await resolveAdmin(client, ref!);
      await client.api.call(deleteAdmin, { params: { id: a.id } });
      io.print({ deleted: a.id }, () => `deleted administrator ${a.name} (${a.id})\n`);
    },
  );

  act(
    refusePasswordOption(
      admin
        .command('reset-password')
        .description("Set an administrator's console password (from standard input, or asked for on a terminal); their console sessions end")
        .argument('<admin>', 'id or name')
        .option('--password-stdin', 'read the password from standard input (the default when it is not a terminal)'),
    ),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const a = await resolveAdmin(client, ref!);
      const password = await readPassword(state.streams.stderr, `new password for ${a.name}`);
      await client.api.call(resetAdminPassword, { params: { id: a.id }, body: { password } });
      io.print({ id: a.id, name: a.name, passwordReset: true }, () => `password of ${a.name} set; their console sessions ended\n`);
    },
  );

  act(
    admin.command('remove-2fa').description("Remove an administrator's second factor (a lost phone); they sign in with the password alone until they set a new one").argument('<admin>', 'id or name'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const a = await resolveAdmin(client, ref!);
      await client.api.call(removeAdminTotp, { params: { id: a.id } });
      io.print({ id: a.id, name: a.name, totpEnabled: false }, () => `second factor of ${a.name} removed\n`);
    },
  );

  // Roles
  const role = program.command('role').description('Roles: named sets of permissions that grants give on a group subtree');

  act(role.command('list').description('Built-in and custom roles with their permissions'), state, async (io) => {
    const roles = await (await io.client()).api.all(listRoles, { query: { limit: PAGE_LIMIT_MAX } });
    io.print(roles, () => table(['NAME', 'BUILT-IN', 'PERMISSIONS', 'ID'], roles.map((r) => [r.name, r.builtin, r.permissions.join(', '), r.id])));
  });

  act(role.command('show').description('One role with what each of its permissions allows').argument('<role>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const r = await new Roles(client).get(ref!);
    if (io.json) return io.print(r, () => '');
    const info = new Map((await client.api.call(listPermissions, {})).map((p) => [p.id, p]));
    io.out(roleDetails(r, info));
  });

  act(
    role
      .command('create')
      .description('Create a custom role')
      .requiredOption('--name <name>', 'the role name')
      .option('--permission <permission>', 'a permission it gives (repeatable, or comma-separated; see garrison role permissions)', collect)
      .option('--from <role>', "start from this role's permissions and description (a built-in one, say); --permission adds to them")
      .option('--description <text>', 'what the role is for'),
    state,
    async (io, opts) => {
      if (!opts.permission?.length && opts.from === undefined) throw new UsageError('give at least one --permission (or --from ROLE)');
      const client = await io.client();
      const from = opts.from !== undefined ? await new Roles(client).get(opts.from) : undefined;
      const permissions = [...new Set([...(from?.permissions ?? []), ...(await permissionList(client, opts.permission, '--permission'))])];
      const body: RoleCreate = { name: opts.name, permissions: permissions as RoleCreate['permissions'] };
      const description = opts.description ?? from?.description;
      if (description !== undefined) body.description = description;
      const r = await client.api.call(createRole, { body });
      io.print(r, () => `created role ${r.name} (${r.id}): ${r.permissions.join(', ')}\n`);
    },
  );

  act(
    role
      .command('update')
      .description("Change a custom role; administrators holding it get the change at once")
      .argument('<role>', 'id or name')
      .option('--name <name>', 'a new name')
      .option('--description <text>', 'a new description')
      .option('--permission <permission>', 'replace the permissions with these (repeatable, or comma-separated)', collect)
      .option('--add-permission <permission>', 'add a permission (repeatable)', collect)
      .option('--remove-permission <permission>', 'remove a permission (repeatable)', collect),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const current = await new Roles(client).get(ref!);
      const body: RoleUpdate = {};
      const [replace, add, remove] = await Promise.all([
        permissionList(client, opts.permission, '--permission'),
        permissionList(client, opts.addPermission, '--add-permission'),
        permissionList(client, opts.removePermission, '--remove-permission'),
      ]);
      if (replace.length && (add.length || remove.length)) throw new UsageError('--permission replaces the permissions: give --add-permission/--remove-permission without it');
      if (replace.length) body.permissions = replace as RoleUpdate['permissions'];
      else if (add.length || remove.length) {
        const next = [...new Set([...current.permissions.filter((p) => !remove.includes(p)), ...add])];
        if (next.length === 0) throw new UsageError('a role keeps at least one permission');
        body.permissions = next as RoleUpdate['permissions'];
      }
      if (opts.name !== undefined) body.name = opts.name;
      if (opts.description !== undefined) body.description = opts.description;
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --name, --description, --permission, --add-permission or --remove-permission');
      const r = await client.api.call(updateRole, { params: { id: current.id }, body });
      io.print(r, () => `role ${r.name} (${r.id}): ${r.permissions.join(', ')}\n`);
    },
  );

  act(role.command('delete').description('Delete a custom role that nobody holds').argument('<role>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const r = await new Roles(client).get(ref!);
    await client.api.call(deleteRole, { params: { id: r.id } });
    io.print({ deleted: r.id }, () => `deleted role ${r.name} (${r.id})\n`);
  });

  act(role.command('permissions').description('Every permission a role can give, with what it allows'), state, async (io) => {
    const perms = await (await io.client()).api.call(listPermissions, {});
    io.print(perms, () => table(['PERMISSION', 'ROOT GROUP ONLY', 'ALLOWS'], perms.map((p) => [p.id, p.serverWide, p.description])));
  });
}
