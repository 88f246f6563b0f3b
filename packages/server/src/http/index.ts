export { buildHttpApp, API_VERSION } from './app.ts';
export { DEFAULT_SETTINGS } from './admin-routes.ts';
