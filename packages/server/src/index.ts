export { startServer, ADMIN_TOKEN_FILE, type GarrisonServer, type ServerConfig } from './app.ts';
export type { DatabaseConfig } from './storage/database.ts';
