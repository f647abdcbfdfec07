import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the dashboard on :5173 and forwards the API to the Rust server,
// so the browser sees a single origin and no CORS is needed.
// SSE_URL overrides where the server listens (default http://127.0.0.1:3000).
const server = process.env.SSE_URL ?? 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [react()],
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    proxy: {
      // /v1–/v3 for the stream inspector (/inspect), /v4 for the board and the inspector
      '/v1': { target: server, changeOrigin: true },
      '/v2': { target: server, changeOrigin: true },
      '/v3': { target: server, changeOrigin: true },
      '/v4': { target: server, changeOrigin: true },
      '/healthz': { target: server, changeOrigin: true },
      '/readyz': { target: server, changeOrigin: true },
      '/auth': { target: server, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
