/**
 * Secrets: values tasks refer to by name ({"$secret": "name"}). The API never returns a value,
 * and neither does this page: a value is typed into a password field, sent once and cleared.
 */
import { useRef, useState, type FormEvent } from 'react';
import { deleteSecret, listSecrets, putSecret, type SecretMeta } from '@garrison/protocol';
import { call } from '../api.ts';
import { Async, ConfirmButton, Empty, ErrorMessage, Page, Section, Time, useBusy, useToast } from '../ui.tsx';
import { checkError, Field, useAllPages } from '../admin/common.tsx';
import { Permission, useAccess } from '../access.tsx';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function Secrets() {
  const secrets = useAllPages(listSecrets);
  const toast = useToast();
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [description, setDescription] = useState('');
  const { busy, error, setError, run } = useBusy();
  const valueRef = useRef<HTMLInputElement>(null);
  const formRef = useRef<HTMLFormElement>(null);
  const existing = secrets.data?.find((s) => s.name === name.trim());
  const access = useAccess();
  // A secret of no group belongs to the root group.
  const mayChange = (s: SecretMeta) => access.canIn(Permission.manageSecrets, s.groupId ?? []);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const n = name.trim();
    if (!NAME.test(n)) return setError(checkError('A secret name is 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit.'));
    if (!value) return setError(checkError('Type the secret value.'));
    const ok = await run(async () => {
      await call(putSecret, { params: { name: n }, body: { value, description } });
      return true;
    });
    if (ok) {
      // The value is not kept anywhere once it is saved.
      setValue('');
      setName('');
      setDescription('');
      toast(existing ? `The value of secret "${n}" was replaced` : `Secret "${n}" saved`);
      await secrets.refetch();
    }
  };

  const replace = (s: SecretMeta) => {
    setName(s.name);
    // The description is sent again with the value: PUT replaces both.
    setDescription(s.description);
    setValue('');
    setError(null);
    formRef.current?.scrollIntoView({ block: 'nearest' });
    valueRef.current?.focus();
  };

  return (
    <Page title="Secrets" subtitle="Passwords and keys that task settings refer to by name. Values are write-only: they are never shown again, here, in the API or in exports.">
      {access.can(Permission.manageSecrets) ? (
        <Section title={existing ? `Replace the value of “${existing.name}”` : 'Set a secret'}>
          <form ref={formRef} onSubmit={save} autoComplete="off" aria-label="Set a secret">
            <div className="row adm-top">
              <Field label="Name" hint={existing ? 'A secret of this name exists: saving replaces its value and description.' : 'Letters, digits, ".", "_" and "-"; tasks refer to it by this name.'}>
                <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="off" spellCheck={false} />
              </Field>
              <Field label="Value" hint="Write-only: it is encrypted on the server and never displayed.">
                <input ref={valueRef} type="password" value={value} onChange={(e) => setValue(e.target.value)} required maxLength={65536} autoComplete="new-password" spellCheck={false} />
              </Field>
            </div>
            <Field label="Description">
              <input value={description} onChange={(e) => setDescription(e.target.value)} maxLength={500} className="adm-wide" />
            </Field>
            <ErrorMessage error={error} onDismiss={() => setError(null)} />
            <div className="adm-form-actions">
              <button type="submit" className="primary" disabled={busy}>
                {busy ? 'Saving…' : 'Save secret'}
              </button>
              {name || description || value ? (
                <button
                  type="button"
                  onClick={() => {
                    setName('');
                    setValue('');
                    setDescription('');
                    setError(null);
                  }}
                >
                  Clear
                </button>
              ) : null}
            </div>
          </form>
        </Section>
      ) : null}

      <Section title="Secrets">
        <Async q={secrets}>
          {(list) =>
            list.length === 0 ? (
              <Empty>No secrets yet.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Description</th>
                      <th scope="col">Updated</th>
                      <th scope="col">Created</th>
                      <th scope="col">
                        <span className="muted">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {[...list]
                      .sort((a, b) => a.name.localeCompare(b.name))
                      .map((s) => (
                        <tr key={s.name}>
                          <td>
                            <code>{s.name}</code>
                          </td>
                          <td>{s.description || <span className="muted">—</span>}</td>
                          <td className="nowrap">
                            <Time iso={s.updatedAt} />
                          </td>
                          <td className="nowrap">
                            <Time iso={s.createdAt} />
                          </td>
                          <td>
                            {mayChange(s) ? (
                              <div className="actions">
                                <button type="button" onClick={() => replace(s)} aria-label={`Replace value of ${s.name}`}>
                                  Replace value
                                </button>
                                <DeleteSecret name={s.name} onDeleted={() => toast(`Secret "${s.name}" deleted`)} />
                              </div>
                            ) : null}
                          </td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
        {secrets.error && secrets.data ? <ErrorMessage error={secrets.error} /> : null}
      </Section>
    </Page>
  );
}

function DeleteSecret({ name, onDeleted }: { name: string; onDeleted: () => void }) {
  const secrets = useAllPages(listSecrets);
  return (
    <ConfirmButton
      label="Delete"
      danger
      question={
        <p>
          Delete secret <code>{name}</code>? Tasks that refer to it can no longer be handed to agents until a secret of that name is set again.
        </p>
      }
      confirmLabel={`Delete ${name}`}
      onConfirm={async () => {
        await call(deleteSecret, { params: { name } });
        onDeleted();
        await secrets.refetch();
      }}
    />
  );
}
