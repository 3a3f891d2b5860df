import { defineConfig } from "vite";

// The UI is served by `myelin serve` from web/dist; `npm run dev` proxies the API to a
// server on :5000 (start it with `build/myelin serve`).
export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
    rollupOptions: { input: ["index.html", "perf.html"] },
  },
  server: { proxy: { "/api": "http://127.0.0.1:5000", "/login": "http://127.0.0.1:5000" } },
});
