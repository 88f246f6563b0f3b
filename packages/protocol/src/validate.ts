import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';

export interface ValidationIssue {
  path: string;
  message: string;
}

export interface Checker<T extends TSchema> {
  schema: T;
  check(value: unknown): value is Static<T>;
  /** Human-readable issues, at most `limit`, for an error's details. */
  issues(value: unknown, limit?: number): ValidationIssue[];
}

/** Compiles a schema once; `check` is the fast path used on every agent message. */
export function checker<T extends TSchema>(schema: T): Checker<T> {
  const validator = Compile(schema);
  return {
    schema,
    check: (value: unknown): value is Static<T> => validator.Check(value),
    issues: (value, limit = 10) =>
      validator
        .Errors(value)
        .slice(0, limit)
        .map((e) => ({ path: e.instancePath || '/', message: e.message })),
  };
}
