import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Built into dist/, which `bot4 serve` serves at /. In development, `npm run dev` proxies /api to it.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1200 },
  server: { proxy: { "/api": "http://127.0.0.1:29200" } },
  test: { include: ["src/**/*.test.ts"], environment: "node", env: { TZ: "America/New_York" } },
});
