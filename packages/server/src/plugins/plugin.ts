/**
 * The server half of a management plug-in: the product it manages and the task types it
 * offers, each with a JSON Schema for its settings. The agent half (detect, running state,
 * install, start/stop, executors) lives in the agent package under the same product id.
 * Third-party plug-ins implement this interface (see docs/plugins.md).
 */
import type { TSchema } from 'typebox';

export interface TaskTypeDefinition {
  /** Unique within the product, e.g. "script", "scan". */
  id: string;
  name: string;
  description: string;
  /** JSON Schema (TypeBox) of the settings; also drives the console's settings form. */
  settingsSchema: TSchema;
  /** Extra rules beyond the schema; return human-readable problems. */
  validate?(settings: Record<string, unknown>): string[];
}

/**
 * The product's policy type (docs/plugins.md, ADR 0020): how the product must be configured.
 * Each top-level property of the schema is one setting; locks, origins and drift are per
 * setting. `defaults` must be complete and valid against the schema.
 */
export interface PolicyTypeDefinition {
  /** An object schema (TypeBox); also drives the console's policy editor. */
  settingsSchema: TSchema;
  defaults: Record<string, unknown>;
  /** The settings a policy may lock; every setting when absent. */
  lockable?: string[];
  /** Rules across settings the schema cannot express, on the complete effective settings. */
  validate?(settings: Record<string, unknown>): string[];
}

export interface ServerPlugin {
  product: { id: string; name: string; description: string };
  taskTypes: TaskTypeDefinition[];
  policyType?: PolicyTypeDefinition;
}
