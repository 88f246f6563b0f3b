/**
 * The master repository: packages (product versions) in the branches current, previous and
 * evaluation; check in an archive (the server signs it), move a package between branches,
 * remove it; the server's package-signing public key.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { addPackage, deletePackage, getSigningKey, listPackages, MAX_PACKAGE_BYTES, operationPath, promotePackage, type Branch, type RepositoryPackage } from '@garrison/protocol';
import { call, request, useOp } from '../api.ts';
import { formatBytes, plural } from '../format.ts';
import { Async, ConfirmButton, CopyButton, Dialog, DialogForm, Empty, ErrorMessage, Loading, Page, PageNav, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import { BRANCHES, checkError, Field } from '../admin/common.tsx';
import { Permission, useAccess } from '../access.tsx';

const PACKAGES = operationPath(listPackages);
const PAGE = 50;
/** Refreshes every cached page of the package list. */
function useRefreshPackages() {
  const qc = useQueryClient();
  return () => qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith(PACKAGES) });
}

type BranchChoice = Branch | 'none';

function BranchBadge({ branch }: { branch: Branch | null }) {
  return branch ? <StateBadge state={branch} /> : <span className="badge state-none">no branch</span>;
}

export function Repository() {
  const [product, setProduct] = useState('');
  const [branch, setBranch] = useState<'' | BranchChoice>('');
  // Paged by the server (by product, newest version first), filtered there.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const packages = useOp(listPackages, { query: { limit: PAGE, ...(product ? { product } : {}), ...(branch ? { branch } : {}), ...(cursor ? { cursor } : {}) } }, { placeholderData: (prev) => prev });
  const refresh = useRefreshPackages();
  const [seen, setSeen] = useState<string[]>([]);
  const [details, setDetails] = useState<RepositoryPackage | null>(null);
  const [promoting, setPromoting] = useState<RepositoryPackage | null>(null);
  const toast = useToast();
  // The master repository belongs to no group: changing it needs repository:write on the root group.
  const manage = useAccess().canOnRoot(Permission.manageRepository);

  // The product picker offers the products of the pages read so far (and the one chosen).
  useEffect(() => {
    const items = packages.data?.items ?? [];
    setSeen((prev) => {
      const all = new Set([...prev, ...items.map((p) => p.product)]);
      return all.size === prev.length ? prev : [...all].sort();
    });
  }, [packages.data]);
  const products = seen;
  const filtered = product !== '' || branch !== '';
  const filter = (set: () => void) => {
    set();
    setCursors([]);
  };

  return (
    <Page title="Repository" subtitle="The master repository: signed packages of the agent and the managed products, in the branches current, previous and evaluation.">
      {manage ? <Upload /> : null}

      <Section title="Packages">
        <div className="toolbar">
          <Field label="Product">
            <select value={product} onChange={(e) => filter(() => setProduct(e.target.value))}>
              <option value="">All products</option>
              {products.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
              {product && !products.includes(product) ? <option value={product}>{product}</option> : null}
            </select>
          </Field>
          <Field label="Branch">
            <select value={branch} onChange={(e) => filter(() => setBranch(e.target.value as '' | BranchChoice))}>
              <option value="">All branches</option>
              {BRANCHES.map((b) => (
                <option key={b} value={b}>
                  {b}
                </option>
              ))}
              <option value="none">No branch</option>
            </select>
          </Field>
          {packages.data ? (
            <p className="muted small" role="status">
              {plural(packages.data.total ?? packages.data.items.length, filtered ? 'matching package' : 'package')}
              {packages.data.items.length && (cursors.length > 0 || packages.data.nextCursor) ? ` · showing ${(cursors.length * PAGE + 1).toLocaleString()}–${(cursors.length * PAGE + packages.data.items.length).toLocaleString()}` : ''}
            </p>
          ) : null}
        </div>
        <Async q={packages}>
          {(page) =>
            page.items.length === 0 && !filtered && cursors.length === 0 ? (
              <Empty>{manage ? 'The repository is empty. Check in a package archive above.' : 'The repository is empty.'}</Empty>
            ) : page.items.length === 0 ? (
              <Empty>No package matches these filters.</Empty>
            ) : (
              <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Product</th>
                      <th scope="col">Version</th>
                      <th scope="col">Branch</th>
                      <th scope="col" className="num">
                        Size
                      </th>
                      <th scope="col">Platforms</th>
                      <th scope="col">Signed</th>
                      <th scope="col">Added</th>
                      <th scope="col">
                        <span className="muted">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.items.map((p) => (
                      <tr key={p.id}>
                        <td>
                          <strong className="nowrap">{p.product}</strong>
                          <br />
                          <span className="muted small">
                            {p.manifest.name} · {p.kind}
                            {p.manifest.contentFor ? ` for ${p.manifest.contentFor}` : ''}
                          </span>
                        </td>
                        <td>
                          <code>{p.version}</code>
                        </td>
                        <td>
                          <BranchBadge branch={p.branch} />
                        </td>
                        <td className="num nowrap">{formatBytes(p.size)}</td>
                        <td>{p.platforms.join(', ')}</td>
                        <td>
                          <span className="badge state-ok" title="Ed25519 signature by this server; agents verify it and the SHA-256 before anything runs">
                            signed
                          </span>
                          <br />
                          <code className="small" title={`SHA-256 ${p.sha256}`}>
                            sha256:{p.sha256.slice(0, 12)}…
                          </code>
                        </td>
                        <td className="nowrap">
                          <Time iso={p.createdAt} />
                          <br />
                          <span className="muted small">by {p.createdBy}</span>
                        </td>
                        <td>
                          <div className="actions">
                            <button type="button" onClick={() => setDetails(p)} aria-label={`Details of ${p.product} ${p.version}`}>
                              Details
                            </button>
                            {manage ? (
                              <>
                                <button type="button" onClick={() => setPromoting(p)} aria-label={`Change the branch of ${p.product} ${p.version}`}>
                                  Branch…
                                </button>
                                <ConfirmButton
                                  label="Delete"
                                  danger
                                  confirmLabel={`Delete ${p.product} ${p.version}`}
                                  question={
                                    <>
                                      <p>
                                        Remove <strong>{p.product} {p.version}</strong> from the repository?
                                      </p>
                                      {p.branch ? (
                                        <p className="notice">
                                          It is the <strong>{p.branch}</strong> package of {p.product}: groups deploying that branch will no longer get it.
                                        </p>
                                      ) : null}
                                    </>
                                  }
                                  onConfirm={async () => {
                                    await call(deletePackage, { params: { id: p.id } });
                                    toast(`${p.product} ${p.version} removed from the repository`);
                                    await refresh();
                                  }}
                                />
                              </>
                            ) : null}
                          </div>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <PageNav label="Package pages" cursors={cursors} setCursors={setCursors} nextCursor={page.nextCursor} />
              </>
            )
          }
        </Async>
        {packages.error && packages.data ? <ErrorMessage error={packages.error} /> : null}
      </Section>

      <SigningKey />

      <PackageDetails pkg={details} onClose={() => setDetails(null)} />
      <Promote pkg={promoting} onClose={() => setPromoting(null)} onDone={() => void refresh()} />
    </Page>
  );
}

function Upload() {
  const refresh = useRefreshPackages();
  const [file, setFile] = useState<File | null>(null);
  const [branch, setBranch] = useState<BranchChoice>('current');
  const [inputKey, setInputKey] = useState(0);
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  const fileRef = useRef<HTMLInputElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) {
      setError(checkError('Choose a package archive (.tar.gz) first.'));
      fileRef.current?.focus();
      return;
    }
    if (file.size === 0) return setError(checkError(`${file.name} is empty.`));
    if (file.size > MAX_PACKAGE_BYTES) return setError(checkError(`${file.name} is ${formatBytes(file.size)}; a package is at most ${formatBytes(MAX_PACKAGE_BYTES)}.`));
    // The archive is the body itself (addPackage has no JSON body): sent raw on the operation's path.
    const pkg = await run(() => request<RepositoryPackage>(addPackage.method, `${operationPath(addPackage)}?branch=${branch}`, file, { contentType: 'application/gzip' }));
    if (pkg) {
      toast(`${pkg.product} ${pkg.version} checked in${pkg.branch ? ` to ${pkg.branch}` : ''} and signed`);
      setFile(null);
      setInputKey((k) => k + 1);
      await refresh();
    }
  };

  return (
    <Section title="Check in a package">
      <form onSubmit={submit} aria-label="Check in a package">
        <p className="muted small">
          A package is a <code>.tar.gz</code> archive with <code>garrison-package.json</code> (its manifest) at its root. The server checks the manifest, computes the SHA-256 and signs the package.
          Checking into <strong>current</strong> moves the product's current package to previous.
        </p>
        <div className="row adm-top">
          <Field label="Package archive" hint={file ? `${file.name}, ${formatBytes(file.size)}` : `At most ${formatBytes(MAX_PACKAGE_BYTES)}.`}>
            <input
              key={inputKey}
              ref={fileRef}
              type="file"
                    className="adm-file"
              accept=".tar.gz,.tgz,application/gzip,application/x-gzip"
              onChange={(e) => {
                setFile(e.target.files?.[0] ?? null);
                setError(null);
              }}
            />
          </Field>
          <Field label="Into branch">
            <select value={branch} onChange={(e) => setBranch(e.target.value as BranchChoice)}>
              {BRANCHES.map((b) => (
                <option key={b} value={b}>
                  {b}
                </option>
              ))}
              <option value="none">none (keep out of the branches)</option>
            </select>
          </Field>
        </div>
        <ErrorMessage error={error} onDismiss={() => setError(null)} />
        <div className="adm-form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Uploading…' : 'Upload package'}
          </button>
          {busy ? <Loading label={`Uploading ${file?.name ?? 'the package'}…`} /> : null}
        </div>
      </form>
    </Section>
  );
}

function Promote({ pkg, onClose, onDone }: { pkg: RepositoryPackage | null; onClose: () => void; onDone: () => void }) {
  return (
    <Dialog open={pkg !== null} title={pkg ? `Branch of ${pkg.product} ${pkg.version}` : 'Branch'} onClose={onClose}>
      {pkg ? <PromoteForm key={pkg.id} pkg={pkg} onClose={onClose} onDone={onDone} /> : null}
    </Dialog>
  );
}

const BRANCH_HELP: Record<BranchChoice, string> = {
  current: 'What groups deploy by default. The current package of this product moves to previous, and the previous one leaves the branches.',
  previous: 'The rollback branch: groups assigned "previous" install it. The package now in previous leaves the branches.',
  evaluation: 'For pilot groups that test new versions first. The package now in evaluation leaves the branches.',
  none: 'Kept in the repository, deployed only where a group pins this version.',
};

function PromoteForm({ pkg, onClose, onDone }: { pkg: RepositoryPackage; onClose: () => void; onDone: () => void }) {
  // The dialog opens on the package's own branch.
  const [choice, setChoice] = useState<BranchChoice>(pkg.branch ?? 'none');
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const moved = await run(() => call(promotePackage, { params: { id: pkg.id }, body: { branch: choice === 'none' ? null : choice } }));
    if (moved) {
      toast(`${moved.product} ${moved.version} ${moved.branch ? `is now in ${moved.branch}` : 'is out of the branches'}`);
      onDone();
      onClose();
    }
  };
  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={choice === 'none' ? 'Remove from branches' : `Move to ${choice}`} disabled={busy || choice === (pkg.branch ?? 'none')} error={error} onDismissError={() => setError(null)}>
      <fieldset>
        <legend>Move to</legend>
        {([...BRANCHES, 'none'] as BranchChoice[]).map((b) => (
          <label key={b} className="field inline">
            <input type="radio" name="branch" value={b} checked={choice === b} onChange={() => setChoice(b)} />
            <span>
              <strong>{b === 'none' ? 'No branch' : b}</strong>
              {(pkg.branch ?? 'none') === b ? <span className="muted"> (now)</span> : null}
              <br />
              <small className="hint">{BRANCH_HELP[b]}</small>
            </span>
          </label>
        ))}
      </fieldset>
    </DialogForm>
  );
}

function PackageDetails({ pkg, onClose }: { pkg: RepositoryPackage | null; onClose: () => void }) {
  return (
    <Dialog open={pkg !== null} title={pkg ? `${pkg.product} ${pkg.version}` : 'Package'} onClose={onClose} wide>
      {pkg ? (
        <div className="dialog-body">
          <dl className="props">
            <dt>Name</dt>
            <dd>{pkg.manifest.name}</dd>
            <dt>Kind</dt>
            <dd>
              {pkg.kind}
              {pkg.manifest.contentFor ? ` for ${pkg.manifest.contentFor}` : ''}
            </dd>
            {pkg.manifest.description ? (
              <>
                <dt>Description</dt>
                <dd>{pkg.manifest.description}</dd>
              </>
            ) : null}
            <dt>Branch</dt>
            <dd>
              <BranchBadge branch={pkg.branch} />
            </dd>
            <dt>Platforms</dt>
            <dd>{pkg.platforms.join(', ')}</dd>
            <dt>Size</dt>
            <dd>
              {formatBytes(pkg.size)} ({pkg.size.toLocaleString()} bytes)
            </dd>
            {pkg.manifest.dependencies?.length ? (
              <>
                <dt>Dependencies</dt>
                <dd>{pkg.manifest.dependencies.map((d) => (d.minVersion ? `${d.product} ≥ ${d.minVersion}` : d.product)).join(', ')}</dd>
              </>
            ) : null}
            {pkg.manifest.conflicts?.length ? (
              <>
                <dt>Conflicts with</dt>
                <dd>{pkg.manifest.conflicts.join(', ')}</dd>
              </>
            ) : null}
            <dt>SHA-256</dt>
            <dd>
              <span className="adm-mono">{pkg.sha256}</span> <CopyButton text={pkg.sha256} label="Copy SHA-256" />
            </dd>
            <dt>Signature</dt>
            <dd>
              <span className="adm-mono">{pkg.signature}</span>
            </dd>
            <dt>Added</dt>
            <dd>
              <Time iso={pkg.createdAt} /> by {pkg.createdBy}
            </dd>
            <dt>Id</dt>
            <dd>
              <code>{pkg.id}</code>
            </dd>
          </dl>
          <h3>Manifest</h3>
          <pre>{JSON.stringify(pkg.manifest, null, 2)}</pre>
        </div>
      ) : null}
    </Dialog>
  );
}

function SigningKey() {
  const [open, setOpen] = useState(false);
  const key = useOp(getSigningKey, open ? {} : null, { staleTime: 300_000 });
  return (
    <section className="card" aria-label="Package-signing key">
      <details className="adm-disclosure" onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
        <summary>Package-signing public key</summary>
        <p className="muted small">The server signs every package with this Ed25519 key; agents verify each package against it before anything of it runs.</p>
        {open ? (
          <Async q={key}>
            {(k) => (
              <>
                <pre>{k.publicKey}</pre>
                <CopyButton text={k.publicKey} label="Copy public key" />
              </>
            )}
          </Async>
        ) : null}
      </details>
    </section>
  );
}
