/**
 * Roles (ADR 0013): named sets of permissions that grants give on a group subtree. The built-in
 * ones are fixed (copy one to start a custom role); custom ones are created, changed (at once
 * for everyone who holds them) and deleted when nobody holds them. Permissions marked
 * server-wide take effect only from a grant on the root group.
 */
import { useState, type FormEvent } from 'react';
import { Link } from 'wouter';
import { createRole, deleteRole, listAdmins, listPermissions, listRoles, updateRole, type Permission as PermissionId, type RoleView } from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Page, Section, StateBadge, useToast } from '../ui.tsx';
import { checkError, Field, useAllPages } from '../admin/common.tsx';
import type { PermissionInfo } from '@garrison/protocol';

export function Roles() {
  const roles = useAllPages(listRoles);
  const permissions = useOp(listPermissions, {}, { staleTime: 5 * 60_000 });
  const access = useAccess();
  const manage = access.canOnRoot(Permission.manageAdmins);
  // Who holds each role, when the administrators can be read.
  const admins = useAllPages(listAdmins, { enabled: access.canOnRoot(Permission.read) });
  const [editing, setEditing] = useState<{ current?: RoleView; from?: RoleView } | null>(null);
  const toast = useToast();
  const holders = (roleId: string) => (admins.data ?? []).filter((a) => a.grants.some((g) => g.roleId === roleId)).length;
  const list = roles.data ?? [];
  const ordered = [...list.filter((r) => r.builtin), ...list.filter((r) => !r.builtin).sort((a, b) => a.name.localeCompare(b.name))];
  const info = new Map((permissions.data ?? []).map((p) => [p.id, p]));

  return (
    <Page
      title="Roles"
      subtitle={
        <>
          What a grant allows on a group and everything below it. <Link href="/administrators">Administrators</Link> hold roles on groups.
        </>
      }
      actions={
        manage ? (
          <button type="button" className="primary" onClick={() => setEditing({})}>
            New role
          </button>
        ) : null
      }
    >
      <Section title="Roles">
        <Async q={roles}>
          {() =>
            ordered.length === 0 ? (
              <Empty>No roles.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Role</th>
                      <th scope="col">Permissions</th>
                      <th scope="col" className="num">
                        Held by
                      </th>
                      {manage ? (
                        <th scope="col">
                          <span className="muted">Actions</span>
                        </th>
                      ) : null}
                    </tr>
                  </thead>
                  <tbody>
                    {ordered.map((r) => {
                      const n = holders(r.id);
                      return (
                        <tr key={r.id}>
                          <td>
                            <strong>{r.name}</strong> {r.builtin ? <span className="badge">built-in</span> : null}
                            {r.description ? <div className="muted small">{r.description}</div> : null}
                          </td>
                          <td>
                            <ul className="adm-permission-list" aria-label={`Permissions of ${r.name}`}>
                              {r.permissions.map((p) => (
                                <li key={p} title={info.get(p)?.description}>
                                  <code>{p}</code>
                                  {info.get(p)?.serverWide ? <span className="muted small"> server-wide</span> : null}
                                </li>
                              ))}
                            </ul>
                          </td>
                          <td className="num">{admins.data ? n : <span className="muted">—</span>}</td>
                          {manage ? (
                            <td>
                              <div className="actions">
                                {r.builtin ? null : (
                                  <button type="button" aria-label={`Edit ${r.name}`} onClick={() => setEditing({ current: r })}>
                                    Edit
                                  </button>
                                )}
                                <button type="button" aria-label={`Copy ${r.name} into a new role`} onClick={() => setEditing({ from: r })}>
                                  Copy
                                </button>
                                {r.builtin ? null : (
                                  <ConfirmButton
                                    label="Delete"
                                    ariaLabel={`Delete ${r.name}`}
                                    confirmLabel={`Delete ${r.name}`}
                                    danger
                                    disabled={n > 0}
                                    question={<p>Delete the role “{r.name}”? Nobody holds it.</p>}
                                    onConfirm={async () => {
                                      await call(deleteRole, { params: { id: r.id } });
                                      toast(`Role “${r.name}” deleted`);
                                      await roles.refetch();
                                    }}
                                  />
                                )}
                              </div>
                              {!r.builtin && n > 0 ? <div className="muted small">Held by {n}: take those grants away to delete it.</div> : null}
                            </td>
                          ) : null}
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
        {roles.error && roles.data ? <ErrorMessage error={roles.error} /> : null}
      </Section>

      <Dialog open={editing !== null} title={editing?.current ? `Edit role ${editing.current.name}` : 'New role'} onClose={() => setEditing(null)} wide>
        {editing ? (
          <RoleForm
            key={editing.current?.id ?? editing.from?.id ?? 'new'}
            current={editing.current}
            from={editing.from}
            permissions={permissions.data ?? []}
            onClose={() => setEditing(null)}
            onSaved={(r) => {
              setEditing(null);
              toast(editing.current ? `Role “${r.name}” saved; it applies at once` : `Role “${r.name}” created`);
              void roles.refetch();
            }}
          />
        ) : null}
      </Dialog>
    </Page>
  );
}

function RoleForm({ current, from, permissions, onClose, onSaved }: { current?: RoleView | undefined; from?: RoleView | undefined; permissions: PermissionInfo[]; onClose: () => void; onSaved: (r: RoleView) => void }) {
  const start = current ?? from;
  const [name, setName] = useState(current?.name ?? (from ? `${from.name} (copy)` : ''));
  const [description, setDescription] = useState(start?.description ?? '');
  const [chosen, setChosen] = useState<ReadonlySet<PermissionId>>(new Set(start?.permissions ?? []));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const toggle = (p: PermissionId, on: boolean) =>
    setChosen((s) => {
      const n = new Set(s);
      if (on) n.add(p);
      else n.delete(p);
      return n;
    });
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    // In the server's order, so that the role reads the same everywhere.
    const list = permissions.map((p) => p.id).filter((p) => chosen.has(p));
    if (!name.trim()) return setError(checkError('Give the role a name.'));
    if (list.length === 0) return setError(checkError('Choose at least one permission.'));
    setBusy(true);
    try {
      const body = { name: name.trim(), description: description.trim(), permissions: list };
      onSaved(current ? await call(updateRole, { params: { id: current.id }, body }) : await call(createRole, { body }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Saving…' : current ? 'Save role' : 'Create role'} disabled={busy} error={error} onDismissError={() => setError(null)}>
      {current ? <p className="notice">Changes apply at once to every administrator who holds this role.</p> : null}
      <div className="row adm-top">
        <Field label="Role name">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoFocus />
        </Field>
        <Field label="Description" optional>
          <input value={description} onChange={(e) => setDescription(e.target.value)} maxLength={500} />
        </Field>
      </div>
      <fieldset className="adm-permissions">
        <legend>Permissions</legend>
        {permissions.length === 0 ? <p className="loading">Loading…</p> : null}
        {permissions.map((p) => (
          <label key={p.id} className="adm-permission">
            <input type="checkbox" checked={chosen.has(p.id)} onChange={(e) => toggle(p.id, e.target.checked)} />
            <span>
              <code>{p.id}</code> {p.serverWide ? <StateBadge state="info" label="server-wide" /> : null}
              <br />
              <span className="small">{p.description}</span>
            </span>
          </label>
        ))}
        <p className="muted small">Server-wide permissions concern what belongs to no group (the repository, server tasks, settings, administrators): they take effect only from a grant on the root group.</p>
      </fieldset>
    </DialogForm>
  );
}
