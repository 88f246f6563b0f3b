import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The console is served by the Garrison server at `/`; `npm run dev -w @garrison/console`
// proxies the API to a server started with `npm start` (https on 8420 by default).
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    // The wire contract's modules declare TypeBox schemas at top level; the console uses their
    // constants and types only, so schema construction (pure) is dropped when unused.
    rolldownOptions: { treeshake: { manualPureFunctions: ['Type'] } },
  },
  server: { proxy: { '/api': { target: process.env.GARRISON_SERVER ?? 'https://127.0.0.1:8420', secure: false } } },
});
