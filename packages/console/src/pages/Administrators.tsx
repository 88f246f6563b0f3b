/**
 * Administrators (ADR 0013): who may sign in, with which grants (a role on a group subtree
 * each), whether they are disabled, have a second factor, and when they last signed in.
 * Managing them (create, change grants and details, disable and enable, reset a password,
 * remove a lost second factor, delete) needs admins:write on the root group; reading them,
 * read on the root group.
 */
import { useState, type FormEvent } from 'react';
import { Link } from 'wouter';
import {
  ADMIN_NAME_PATTERN,
  createAdmin,
  deleteAdmin,
  listAdmins,
  listPermissions,
  listRoles,
  removeAdminTotp,
  resetAdminPassword,
  updateAdmin,
  type AdminCreate,
  type AdminUpdate,
  type AdminView,
  type GrantInput,
  type RoleView,
} from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, GroupSelect, Page, Section, StateBadge, Time, useBusy, useGroups, useToast } from '../ui.tsx';
import { checkError, Field, useAllPages, useRootGroupId } from '../admin/common.tsx';

const NAME = new RegExp(ADMIN_NAME_PATTERN);

export function Administrators() {
  const admins = useAllPages(listAdmins);
  const roles = useAllPages(listRoles, { staleTime: 30_000 });
  const access = useAccess();
  const manage = access.canOnRoot(Permission.manageAdmins);
  const [dialog, setDialog] = useState<{ kind: 'new' } | { kind: 'edit' | 'password'; admin: AdminView } | null>(null);
  const toast = useToast();
  const action = useBusy();
  const close = () => setDialog(null);
  const list = [...(admins.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));

  const setDisabled = (a: AdminView, disabled: boolean) =>
    action.run(async () => {
      await call(updateAdmin, { params: { id: a.id }, body: { disabled } satisfies AdminUpdate });
      toast(disabled ? `${a.name} disabled; their sessions and tokens were revoked` : `${a.name} enabled`);
      await admins.refetch();
    });

  return (
    <Page
      title="Administrators"
      subtitle={
        <>
          Who may sign in, and what they may do: each grant is a <Link href="/roles">role</Link> on a group and everything below it.
        </>
      }
      actions={
        manage ? (
          <button type="button" className="primary" onClick={() => setDialog({ kind: 'new' })}>
            New administrator
          </button>
        ) : null
      }
    >
      <ErrorMessage error={action.error} onDismiss={() => action.setError(null)} />
      <Section title="Administrators">
        <Async q={admins}>
          {() =>
            list.length === 0 ? (
              <Empty>No administrators.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Grants</th>
                      <th scope="col">State</th>
                      <th scope="col">Second factor</th>
                      <th scope="col">Last sign-in</th>
                      {manage ? (
                        <th scope="col">
                          <span className="muted">Actions</span>
                        </th>
                      ) : null}
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((a) => (
                      <tr key={a.id}>
                        <td>
                          <strong>{a.name}</strong> {a.id === access.me?.adminId ? <span className="badge">you</span> : null}
                          {a.displayName ? <div>{a.displayName}</div> : null}
                          {a.email ? <div className="muted small">{a.email}</div> : null}
                          <div className="muted small">{a.oidcSubject ? 'signs in with the identity provider' : a.hasPassword ? 'signs in with a password' : 'no password set'}</div>
                        </td>
                        <td>
                          <GrantList grants={a.grants} />
                        </td>
                        <td>{a.disabled ? <StateBadge state="revoked" label="disabled" /> : <StateBadge state="active" label="enabled" />}</td>
                        <td>{a.totpEnabled ? <StateBadge state="active" label="on" /> : <span className="muted">off</span>}</td>
                        <td className="nowrap">{a.lastSignInAt ? <Time iso={a.lastSignInAt} /> : <span className="muted">never</span>}</td>
                        {manage ? (
                          <td>
                            <div className="actions">
                              <button type="button" aria-label={`Edit ${a.name}`} onClick={() => setDialog({ kind: 'edit', admin: a })}>
                                Edit
                              </button>
                              <button type="button" aria-label={`Reset password of ${a.name}`} onClick={() => setDialog({ kind: 'password', admin: a })}>
                                Reset password
                              </button>
                              {a.disabled ? (
                                <button type="button" disabled={action.busy} aria-label={`Enable ${a.name}`} onClick={() => void setDisabled(a, false)}>
                                  Enable
                                </button>
                              ) : (
                                <ConfirmButton
                                  label="Disable"
                                  ariaLabel={`Disable ${a.name}`}
                                  confirmLabel={`Disable ${a.name}`}
                                  danger
                                  question={<p>Disable {a.name}? They can no longer sign in, and their console sessions and API tokens are revoked at once. Enabling them again does not bring the tokens back.</p>}
                                  onConfirm={async () => {
                                    await call(updateAdmin, { params: { id: a.id }, body: { disabled: true } satisfies AdminUpdate });
                                    toast(`${a.name} disabled; their sessions and tokens were revoked`);
                                    await admins.refetch();
                                  }}
                                />
                              )}
                              {a.totpEnabled ? (
                                <ConfirmButton
                                  label="Remove second factor"
                                  ariaLabel={`Remove second factor of ${a.name}`}
                                  confirmLabel="Remove second factor"
                                  danger
                                  question={<p>Remove the second factor of {a.name} (a lost phone)? They sign in with their password alone until they set a new one under Account.</p>}
                                  onConfirm={async () => {
                                    await call(removeAdminTotp, { params: { id: a.id } });
                                    toast(`Second factor of ${a.name} removed`);
                                    await admins.refetch();
                                  }}
                                />
                              ) : null}
                              <ConfirmButton
                                label="Delete"
                                ariaLabel={`Delete ${a.name}`}
                                confirmLabel={`Delete ${a.name}`}
                                danger
                                question={<p>Delete the administrator {a.name}, their grants and API tokens? The audit trail keeps their name. This cannot be undone: to stop someone for a while, disable them instead.</p>}
                                onConfirm={async () => {
                                  await call(deleteAdmin, { params: { id: a.id } });
                                  toast(`${a.name} deleted`);
                                  await admins.refetch();
                                }}
                              />
                            </div>
                          </td>
                        ) : null}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
        {admins.error && admins.data ? <ErrorMessage error={admins.error} /> : null}
      </Section>

      <Dialog open={dialog?.kind === 'new' || dialog?.kind === 'edit'} title={dialog?.kind === 'edit' ? `Edit ${dialog.admin.name}` : 'New administrator'} onClose={close} wide>
        {dialog?.kind === 'new' || dialog?.kind === 'edit' ? (
          <AdminForm
            key={dialog.kind === 'edit' ? dialog.admin.id : 'new'}
            current={dialog.kind === 'edit' ? dialog.admin : undefined}
            roles={roles.data ?? []}
            onClose={close}
            onSaved={(a, created) => {
              close();
              toast(created ? `Administrator ${a.name} created` : `${a.name} saved`);
              void admins.refetch();
            }}
          />
        ) : null}
      </Dialog>
      <Dialog open={dialog?.kind === 'password'} title={dialog?.kind === 'password' ? `Reset the password of ${dialog.admin.name}` : 'Reset password'} onClose={close}>
        {dialog?.kind === 'password' ? (
          <ResetPassword
            admin={dialog.admin}
            onClose={close}
            onDone={() => {
              close();
              toast(`Password of ${dialog.admin.name} reset; their console sessions ended`);
            }}
          />
        ) : null}
      </Dialog>
    </Page>
  );
}

function GrantList({ grants }: { grants: AdminView['grants'] }) {
  if (grants.length === 0) return <span className="muted">none: may not do anything</span>;
  return (
    <ul className="plain-list">
      {grants.map((g) => (
        <li key={`${g.roleId}/${g.groupId}`}>
          <strong>{g.roleName}</strong> on {g.groupPath}
        </li>
      ))}
    </ul>
  );
}

/** Create an administrator (name, password) or change one; both set the details and the grants. */
function AdminForm({ current, roles, onClose, onSaved }: { current?: AdminView | undefined; roles: RoleView[]; onClose: () => void; onSaved: (a: AdminView, created: boolean) => void }) {
  const root = useRootGroupId();
  const [name, setName] = useState('');
  const [displayName, setDisplayName] = useState(current?.displayName ?? '');
  const [email, setEmail] = useState(current?.email ?? '');
  const [password, setPassword] = useState('');
  const [grants, setGrants] = useState<GrantInput[]>(current ? current.grants.map((g) => ({ roleId: g.roleId, groupId: g.groupId })) : [{ roleId: '', groupId: '' }]);
  const { busy, error, setError, run } = useBusy();
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!current && !NAME.test(name.trim())) return setError(checkError('A name is 1 to 100 letters, digits, ".", "_", "@" or "-", starting with a letter or a digit.'));
    if (!current && password && password.length < 10) return setError(checkError('A password has at least 10 characters.'));
    const chosen = grants.map((g) => ({ roleId: g.roleId, groupId: g.groupId || root }));
    if (chosen.some((g) => !g.roleId || !g.groupId)) return setError(checkError('Choose a role and a group for every grant, or remove the grant.'));
    const saved = await run(() =>
      current
        ? call(updateAdmin, { params: { id: current.id }, body: { displayName: displayName.trim() || null, email: email.trim() || null, grants: chosen } satisfies AdminUpdate })
        : call(createAdmin, {
            body: {
              name: name.trim(),
              ...(displayName.trim() ? { displayName: displayName.trim() } : {}),
              ...(email.trim() ? { email: email.trim() } : {}),
              ...(password ? { password } : {}),
              grants: chosen,
            } satisfies AdminCreate,
          }),
    );
    if (saved) onSaved(saved, !current);
  }
  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Saving…' : current ? 'Save administrator' : 'Create administrator'} disabled={busy} error={error} onDismissError={() => setError(null)}>
      {current ? null : (
        <div className="row adm-top">
          <Field label="Name" hint="What they sign in with: letters, digits, “.”, “_”, “@” and “-”.">
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="off" spellCheck={false} autoFocus />
          </Field>
          <Field label="Password" optional hint="At least 10 characters; tell it to them on another channel. Without one they sign in through the identity provider, or once you reset it.">
            <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} minLength={10} maxLength={1024} autoComplete="new-password" />
          </Field>
        </div>
      )}
      <div className="row adm-top">
        <Field label="Display name" optional>
          <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} maxLength={200} />
        </Field>
        <Field label="Email" optional>
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={320} />
        </Field>
      </div>
      <GrantsEditor value={grants} onChange={setGrants} roles={roles} />
    </DialogForm>
  );
}

/** Grants as rows of a role and a group of the tree; a role on a group covers its subgroups. */
function GrantsEditor({ value, onChange, roles }: { value: GrantInput[]; onChange: (g: GrantInput[]) => void; roles: RoleView[] }) {
  const root = useRootGroupId();
  const groups = useGroups();
  const permissions = useOp(listPermissions, {}, { staleTime: 5 * 60_000 });
  const serverWide = new Set((permissions.data ?? []).filter((p) => p.serverWide).map((p) => p.id));
  const set = (i: number, patch: Partial<GrantInput>) => onChange(value.map((g, n) => (n === i ? { ...g, ...patch } : g)));
  return (
    <fieldset className="adm-grants">
      <legend>Grants</legend>
      {value.length === 0 ? <p className="muted">No grant: this administrator may sign in but see and do nothing.</p> : null}
      {value.map((g, i) => {
        const role = roles.find((r) => r.id === g.roleId);
        const groupId = g.groupId || root;
        const onRoot = groups.data?.find((x) => x.id === groupId)?.parentId === null;
        const ignored = role && !onRoot ? role.permissions.filter((p) => serverWide.has(p)) : [];
        return (
          <div key={i} className="adm-grant">
            <div className="row adm-top">
              <Field label="Role" hint={role?.description}>
                <select value={g.roleId} onChange={(e) => set(i, { roleId: e.target.value })} required>
                  <option value="">Choose a role…</option>
                  {roles.map((r) => (
                    <option key={r.id} value={r.id}>
                      {r.name}
                    </option>
                  ))}
                </select>
              </Field>
              <GroupSelect label="On group" value={groupId} onChange={(id) => set(i, { groupId: id })} required />
              <div className="field">
                <button type="button" aria-label={`Remove grant ${i + 1}`} onClick={() => onChange(value.filter((_, n) => n !== i))}>
                  Remove
                </button>
              </div>
            </div>
            {ignored.length ? (
              <p className="muted small">
                Server-wide permissions of this role ({ignored.join(', ')}) take effect only on the root group.
              </p>
            ) : null}
          </div>
        );
      })}
      <button type="button" onClick={() => onChange([...value, { roleId: '', groupId: root }])}>
        Add grant
      </button>
    </fieldset>
  );
}

function ResetPassword({ admin, onClose, onDone }: { admin: AdminView; onClose: () => void; onDone: () => void }) {
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const { busy, error, setError, run } = useBusy();
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (password !== again) return setError(checkError('The two passwords differ.'));
    if (await run(async () => (await call(resetAdminPassword, { params: { id: admin.id }, body: { password } }), true))) onDone();
  }
  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Saving…' : 'Reset password'} disabled={busy} error={error} onDismissError={() => setError(null)}>
      <p>{admin.name}'s console sessions end; tell them the new password on another channel, and ask them to change it under Account.</p>
      <Field label="New password" hint="At least 10 characters.">
        <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={10} maxLength={1024} autoComplete="new-password" autoFocus />
      </Field>
      <Field label="New password again">
        <input type="password" value={again} onChange={(e) => setAgain(e.target.value)} required minLength={10} maxLength={1024} autoComplete="new-password" />
      </Field>
    </DialogForm>
  );
}
