/**
 * Test support: a database's schema as plain, sorted data, so that two databases (one freshly
 * migrated, one upgraded from an older release) can be compared with `deepEqual` and a diff
 * names what differs.
 *
 * What is kept: tables; columns with type, nullability, default, primary-key position and
 * identity; indexes with name, columns (in index order, with direction), uniqueness and
 * predicate; constraints (primary key, unique, foreign keys, and on PostgreSQL checks); views
 * and triggers. What is dropped, because it says nothing about the schema a release expects:
 * the order of tables, columns and indexes (a column added by ALTER TABLE comes last, which a
 * squashed migration would not reproduce), the generated names of SQLite's automatic indexes
 * (numbered in creation order), and the schema name a PostgreSQL test runs in.
 *
 * Read with our own catalogue queries rather than Kysely's introspector, which on PostgreSQL
 * looks at every schema in the database and gives less than we compare (no indexes).
 *
 * SQLite keeps CHECK constraints only in the table's CREATE text, which ALTER TABLE edits in
 * place; none of our tables has one, so they are not read there (add it here with the first).
 */
import { sql } from 'kysely';
import type { Db } from '../../src/storage/database.ts';

export interface ColumnShape {
  type: string;
  notNull: boolean;
  default: string | null;
  /** 1-based position in the primary key; 0 when not part of it. */
  primaryKey: number;
  identity: string | null;
}
export interface IndexShape {
  /** Null for SQLite's automatic indexes of constraints, whose generated names are numbered in creation order. */
  name: string | null;
  columns: string[];
  unique: boolean;
  /** What made it: an explicit CREATE INDEX, a UNIQUE constraint or the primary key. */
  origin: 'index' | 'unique' | 'primary key';
  predicate: string | null;
}
export interface TableShape {
  columns: Record<string, ColumnShape>;
  indexes: IndexShape[];
  /** Constraints as text, sorted (foreign keys, checks; uniqueness is in `indexes`). */
  constraints: string[];
}
export interface SchemaSnapshot {
  tables: Record<string, TableShape>;
  /** Views and triggers as `kind name: definition`, sorted. */
  others: string[];
}

export async function schemaSnapshot(db: Db): Promise<SchemaSnapshot> {
  return db.dialect.name === 'sqlite' ? sqliteSnapshot(db) : postgresSnapshot(db);
}

/** The user tables of a snapshot whose names do not start with one of `except`. */
export function tableNames(snapshot: SchemaSnapshot, except: string[] = []): string[] {
  return Object.keys(snapshot.tables).filter((t) => !except.some((p) => t.startsWith(p)));
}

const byName = <T extends { name: string | null; columns: string[] }>(a: T, b: T) => cmp(a.name ?? '', b.name ?? '') || cmp(a.columns.join(), b.columns.join());
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sortedRecord = <T>(entries: [string, T][]): Record<string, T> => Object.fromEntries(entries.sort(([a], [b]) => cmp(a, b)));
const squash = (text: string) => text.replace(/\s+/g, ' ').trim();

async function sqliteSnapshot(db: Db): Promise<SchemaSnapshot> {
  const run = async <R>(query: string) => (await sql<R>`${sql.raw(query)}`.execute(db.kysely)).rows;
  const quote = (name: string) => `'${name.replaceAll("'", "''")}'`;
  const master = await run<{ type: string; name: string; tbl_name: string; sql: string | null }>(`select type, name, tbl_name, sql from sqlite_master where name not like 'sqlite_%'`);
  const tables: [string, TableShape][] = [];
  for (const { name: table } of master.filter((m) => m.type === 'table')) {
    const columns = await run<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number; hidden: number }>(`select * from pragma_table_xinfo(${quote(table)})`);
    // SQLite's `integer primary key autoincrement` is its identity column: rowid, sequence-numbered.
    const autoincrement = /\bautoincrement\b/i.test(master.find((m) => m.type === 'table' && m.name === table)!.sql ?? '');
    const indexes: IndexShape[] = [];
    for (const ix of await run<{ name: string; unique: number; origin: string; partial: number }>(`select * from pragma_index_list(${quote(table)})`)) {
      const keys = await run<{ seqno: number; name: string | null; desc: number; key: number }>(`select * from pragma_index_xinfo(${quote(ix.name)})`);
      const text = master.find((m) => m.type === 'index' && m.name === ix.name)?.sql ?? '';
      indexes.push({
        name: ix.origin === 'c' ? ix.name : null,
        columns: keys.filter((k) => k.key === 1).sort((a, b) => a.seqno - b.seqno).map((k) => `${k.name ?? '(expression)'}${k.desc ? ' desc' : ''}`),
        unique: ix.unique === 1,
        origin: ix.origin === 'c' ? 'index' : ix.origin === 'pk' ? 'primary key' : 'unique',
        predicate: ix.partial ? squash(text.replace(/^.*?\bwhere\b/is, '')).toLowerCase() : null,
      });
    }
    const foreignKeys = await run<{ id: number; seq: number; table: string; from: string; to: string | null; on_update: string; on_delete: string }>(`select * from pragma_foreign_key_list(${quote(table)})`);
    const constraints = [...new Set(foreignKeys.map((fk) => fk.id))].map((id) => {
      const parts = foreignKeys.filter((fk) => fk.id === id).sort((a, b) => a.seq - b.seq);
      return `foreign key (${parts.map((p) => p.from).join(', ')}) references ${parts[0]!.table} (${parts.map((p) => p.to ?? '').join(', ')}) on update ${parts[0]!.on_update} on delete ${parts[0]!.on_delete}`.toLowerCase();
    });
    tables.push([
      table,
      {
        columns: sortedRecord(
          columns
            .filter((c) => c.hidden === 0)
            .map((c): [string, ColumnShape] => [
              c.name,
              { type: c.type.toLowerCase(), notNull: c.notnull === 1, default: c.dflt_value, primaryKey: c.pk, identity: autoincrement && c.pk === 1 ? 'autoincrement' : null },
            ]),
        ),
        indexes: indexes.sort(byName),
        constraints: constraints.sort(),
      },
    ]);
  }
  const others = master.filter((m) => m.type === 'view' || m.type === 'trigger').map((m) => `${m.type} ${m.name}: ${squash(m.sql ?? '').toLowerCase()}`);
  return { tables: sortedRecord(tables), others: others.sort() };
}

async function postgresSnapshot(db: Db): Promise<SchemaSnapshot> {
  const k = db.kysely;
  const tableRows = (await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(k)).rows;
  const columnRows = (
    await sql<{ table: string; name: string; type: string; nullable: string; default: string | null; identity: string | null; pk: number | null }>`
      select c.table_name as table, c.column_name as name,
             c.data_type || coalesce('(' || c.character_maximum_length || ')', '') as type, c.is_nullable as nullable, c.column_default as default,
             case when c.is_identity = 'YES' then 'generated ' || lower(c.identity_generation) || ' as identity' end as identity,
             (select k.ordinal_position from information_schema.table_constraints tc
                join information_schema.key_column_usage k on k.constraint_schema = tc.constraint_schema and k.constraint_name = tc.constraint_name and k.table_name = tc.table_name
               where tc.table_schema = c.table_schema and tc.table_name = c.table_name and tc.constraint_type = 'PRIMARY KEY' and k.column_name = c.column_name) as pk
        from information_schema.columns c
       where c.table_schema = current_schema()`.execute(k)
  ).rows;
  // pg_get_indexdef(oid, n, true) is the n-th key column (or expression) as written.
  const indexRows = (
    await sql<{ table: string; name: string; columns: string[]; options: number[]; unique: boolean; primary: boolean; constraint: string | null; predicate: string | null }>`
      select t.relname as table, i.relname as name,
             array(select pg_get_indexdef(x.indexrelid, n, true) from generate_series(1, x.indnkeyatts) n order by n) as columns,
             x.indoption::int2[] as options, x.indisunique as unique, x.indisprimary as primary,
             (select c.contype::text from pg_constraint c where c.conindid = x.indexrelid and c.conrelid = x.indrelid) as constraint,
             pg_get_expr(x.indpred, x.indrelid, true) as predicate
        from pg_index x
        join pg_class i on i.oid = x.indexrelid
        join pg_class t on t.oid = x.indrelid
       where t.relnamespace = (select oid from pg_namespace where nspname = current_schema())`.execute(k)
  ).rows;
  const constraintRows = (
    await sql<{ table: string; name: string; def: string }>`
      select t.relname as table, c.conname as name, pg_get_constraintdef(c.oid, true) as def
        from pg_constraint c join pg_class t on t.oid = c.conrelid
       where c.connamespace = (select oid from pg_namespace where nspname = current_schema()) and c.contype not in ('p', 'u')`.execute(k)
  ).rows;
  const schemaRow = (await sql<{ schema: string }>`select current_schema() as schema`.execute(k)).rows[0]!;
  const unqualified = (text: string) => text.replaceAll(`${schemaRow.schema}.`, '');
  const viewRows = (await sql<{ name: string; def: string }>`select table_name as name, view_definition as def from information_schema.views where table_schema = current_schema()`.execute(k)).rows;
  const triggerRows = (
    await sql<{ name: string; def: string }>`
      select g.tgname as name, pg_get_triggerdef(g.oid, true) as def from pg_trigger g join pg_class t on t.oid = g.tgrelid
       where t.relnamespace = (select oid from pg_namespace where nspname = current_schema()) and not g.tgisinternal`.execute(k)
  ).rows;

  const tables = tableRows.map(({ name: table }): [string, TableShape] => [
    table,
    {
      columns: sortedRecord(
        columnRows
          .filter((c) => c.table === table)
          .map((c): [string, ColumnShape] => [c.name, { type: c.type, notNull: c.nullable === 'NO', default: c.default === null ? null : unqualified(c.default), primaryKey: c.pk ?? 0, identity: c.identity }]),
      ),
      indexes: indexRows
        .filter((i) => i.table === table)
        .map((i): IndexShape => ({
          // The names PostgreSQL gives constraint indexes (`…_pkey`, `…_key`) are derived from the
          // table and columns, so they are kept like any other.
          name: i.name,
          // indoption bit 0 is DESC.
          columns: i.columns.map((c, n) => `${c}${(i.options[n] ?? 0) & 1 ? ' desc' : ''}`),
          unique: i.unique,
          origin: i.primary ? 'primary key' : i.constraint === 'u' ? 'unique' : 'index',
          predicate: i.predicate === null ? null : unqualified(i.predicate),
        }))
        .sort(byName),
      constraints: constraintRows
        .filter((c) => c.table === table)
        .map((c) => `${c.name}: ${unqualified(c.def)}`)
        .sort(),
    },
  ]);
  const others = [...viewRows.map((v) => `view ${v.name}: ${squash(unqualified(v.def))}`), ...triggerRows.map((t) => `trigger ${t.name}: ${unqualified(t.def)}`)];
  return { tables: sortedRecord(tables), others: others.sort() };
}

/**
 * A snapshot as one sorted line per fact (`table t: column c text not null`, `table t: index
 * i (a, b) unique`, …): comparing two of these with `deepEqual` shows exactly the facts one
 * database has and the other lacks, rather than a diff of two large objects.
 */
export function schemaFacts(snapshot: SchemaSnapshot): string[] {
  const facts: string[] = [];
  for (const [table, shape] of Object.entries(snapshot.tables)) {
    facts.push(`table ${table}`);
    for (const [name, c] of Object.entries(shape.columns)) {
      const parts = [c.type, c.notNull ? 'not null' : 'null', c.default === null ? '' : `default ${c.default}`, c.primaryKey ? `primary key #${c.primaryKey}` : '', c.identity ?? ''];
      facts.push(`table ${table}: column ${name} ${parts.filter(Boolean).join(' ')}`);
    }
    for (const i of shape.indexes) {
      const what = i.origin === 'index' ? `${i.unique ? 'unique ' : ''}index` : i.origin === 'unique' ? 'unique constraint' : 'primary key';
      facts.push(`table ${table}: ${what} ${i.name === null ? '' : `${i.name} `}(${i.columns.join(', ')})${i.predicate ? ` where ${i.predicate}` : ''}`);
    }
    for (const c of shape.constraints) facts.push(`table ${table}: constraint ${c}`);
  }
  return [...facts, ...snapshot.others].sort();
}
