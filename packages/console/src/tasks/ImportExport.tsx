/**
 * Import from an export file and "Export all", shared by the task and server task lists: the
 * buttons, the hidden file input, and the notice listing what an import created.
 */
import { useRef, useState, type ReactNode } from 'react';
import { Link } from 'wouter';
import { importServerTasks, importTasks } from '@garrison/protocol';
import { call, download } from '../api.ts';
import { useToast, type useBusy } from '../ui.tsx';
import { plural } from '../format.ts';

interface Named {
  id: string;
  name: string;
}

export function useImportExport<T extends Named>(o: {
  busy: ReturnType<typeof useBusy>;
  /** "task" or "server task", for messages and labels. */
  noun: string;
  importOp: typeof importTasks | typeof importServerTasks;
  exportPath: string;
  exportFile: string;
  hrefOf: (id: string) => string;
  refresh: () => Promise<unknown>;
  /** False when the administrator may not create them: only "Export all" is offered. */
  canImport?: boolean;
}): { actions: ReactNode; result: ReactNode } {
  const { busy } = o;
  const toast = useToast();
  const fileRef = useRef<HTMLInputElement>(null);
  const [imported, setImported] = useState<T[] | null>(null);
  const importFile = (file: File) =>
    busy.run(async () => {
      setImported(null);
      let doc: unknown;
      try {
        doc = JSON.parse(await file.text());
      } catch (err) {
        throw new Error(`${file.name} is not a JSON file: ${err instanceof Error ? err.message : String(err)}`);
      }
      const created = (await call(o.importOp, { body: doc })) as unknown as T[];
      setImported(created);
      toast(`Imported ${plural(created.length, o.noun)}`);
      await o.refresh();
    });
  const label = o.noun[0]!.toUpperCase() + o.noun.slice(1);
  const actions = (
    <>
      {o.canImport === false ? null : (
        <>
          <button type="button" disabled={busy.busy} onClick={() => fileRef.current?.click()}>
            Import
          </button>
          <input
            ref={fileRef}
            type="file"
            accept=".json,application/json"
            aria-label={`${label} export file to import`}
            hidden
            onChange={(e) => {
              const f = e.target.files?.[0];
              e.target.value = '';
              if (f) void importFile(f);
            }}
          />
        </>
      )}
      <button type="button" disabled={busy.busy} onClick={() => void busy.run(() => download(o.exportPath, o.exportFile))}>
        Export all
      </button>
    </>
  );
  const result = imported ? (
    <div className="notice import-result" role="status">
      <p>
        Imported {plural(imported.length, o.noun)}
        {imported.length ? ':' : '.'}
      </p>
      {imported.length ? (
        <ul>
          {imported.map((t) => (
            <li key={t.id}>
              <Link href={o.hrefOf(t.id)}>{t.name}</Link>
            </li>
          ))}
        </ul>
      ) : null}
      <button type="button" className="link" onClick={() => setImported(null)}>
        Dismiss
      </button>
    </div>
  ) : null;
  return { actions, result };
}
