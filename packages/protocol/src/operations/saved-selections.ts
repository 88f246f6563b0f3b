/**
 * Saved selections: a named set of list filters an administrator keeps for a console page (the
 * device list, the event log), like KSC's event selections. Each administrator has their own;
 * the built-in ones (`builtIn: true`, ids starting `builtin:`) are the same for everyone and
 * cannot be deleted. The query is the page's URL query (filter name to value), applied as given.
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { IdParams } from './common.ts';

export const SAVED_SELECTION_PAGES = ['devices', 'events'] as const;
export const SavedSelectionPage = Type.Enum([...SAVED_SELECTION_PAGES]);
export type SavedSelectionPage = (typeof SAVED_SELECTION_PAGES)[number];
const SelectionQuery = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 500 }), { maxProperties: 32 });

export const SavedSelection = Type.Object(
  {
    id: Type.String(),
    page: SavedSelectionPage,
    name: Type.String(),
    query: Type.Record(Type.String(), Type.String()),
    builtIn: Type.Boolean(),
    createdAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type SavedSelection = Static<typeof SavedSelection>;
export const SavedSelectionCreate = Type.Object(
  { page: SavedSelectionPage, name: Type.String({ minLength: 1, maxLength: 100 }), query: SelectionQuery },
  { additionalProperties: false },
);
export type SavedSelectionCreate = Static<typeof SavedSelectionCreate>;

export const listSavedSelections = operation({
  id: 'listSavedSelections',
  method: 'GET',
  path: '/saved-selections',
  tag: 'console',
  summary: "The caller's saved selections for a page, built-in ones first, then by name",
  query: Type.Object({ page: SavedSelectionPage, ...PageQuery }, { additionalProperties: false }),
  response: Page(SavedSelection),
});
export const createSavedSelection = operation({
  id: 'createSavedSelection',
  method: 'POST',
  path: '/saved-selections',
  tag: 'console',
  summary: 'Save a selection under a name (a name already used on that page is replaced)',
  body: SavedSelectionCreate,
  status: 201,
  response: SavedSelection,
});
export const deleteSavedSelection = operation({
  id: 'deleteSavedSelection',
  method: 'DELETE',
  path: '/saved-selections/{id}',
  tag: 'console',
  summary: 'Delete one of your saved selections',
  params: IdParams,
  status: 204,
  response: null,
});
