// Browser tests against a real `myelin serve` (its own data dir and port) in Debian's Chromium,
// driven by playwright-core. Screenshots go to $MYELIN_TEST_OUT (default web/test-output).
//
//   const server = await startServer(t);          // skips the test when nothing can run it
//   const page = await server.page();             // logged in through the printed URL
//   await shot(page, "home");
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const WEB = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(WEB);
export const OUT = process.env.MYELIN_TEST_OUT || join(WEB, "test-output");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** $MYELIN_BINARY, else the newest build*\/myelin. */
export function findBinary() {
  if (process.env.MYELIN_BINARY) return process.env.MYELIN_BINARY;
  const found = readdirSync(ROOT)
    .filter((d) => d.startsWith("build"))
    .map((d) => join(ROOT, d, "myelin"))
    .filter((p) => existsSync(p));
  found.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0];
}

/** Why these tests cannot run here, or null. */
export function missing() {
  if (!findBinary()) return "no myelin binary (build it, or set MYELIN_BINARY)";
  if (!existsSync(CHROMIUM))
    return `no Chromium at ${CHROMIUM} (scripts/install-deps.sh installs it)`;
  if (!existsSync(join(WEB, "dist", "index.html"))) return "web/dist is not built (npm run build)";
  return null;
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(
  predicate,
  { timeout = 30000, interval = 100, what = "a condition" } = {},
) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = await predicate();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

let browser = null;
async function theBrowser() {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  return browser;
}

/** Closes the shared browser; call from an after() hook. */
export async function closeBrowser() {
  await browser?.close();
  browser = null;
}

/**
 * Starts `myelin serve` for test `t` (skipping it when the binary, Chromium or the built UI is
 * missing) and stops it when the test ends. Returns the server's handle, or null when skipped.
 */
export async function startServer(t, flags = []) {
  const why = missing();
  if (why) {
    t.skip(why);
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), "myelin-web-"));
  const dataDir = join(dir, "data");
  const port = await freePort();
  const log = [];
  const proc = spawn(
    findBinary(),
    ["serve", "--data-dir", dataDir, "--port", String(port), ...flags],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  proc.stdout.on("data", (d) => log.push(String(d)));
  proc.stderr.on("data", (d) => log.push(String(d)));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`myelin serve exited:\n${log.join("")}`);
      return fetch(`${base}/api/v1/health`).then(
        (r) => r.ok,
        () => false,
      );
    },
    { what: "myelin serve to answer /health" },
  );
  const token = readFileSync(join(dataDir, "token"), "utf8").trim();
  const pages = [];
  const server = {
    base,
    port,
    token,
    dataDir,
    log,
    /** A JSON call with the token; throws on a non-2xx answer unless `expect` says otherwise. */
    async api(method, path, body, expect) {
      const r = await fetch(base + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? (method === "GET" ? undefined : "{}") : JSON.stringify(body),
      });
      const out = r.headers.get("content-type")?.startsWith("application/json")
        ? await r.json()
        : await r.text();
      if (expect ? r.status !== expect : !r.ok)
        throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(out)}`);
      return out;
    },
    /** A dataset from Fashion-MNIST (or `fields`), waited for until ready. */
    async dataset(fields = { name: "fashion", source: "fashion-mnist" }) {
      const { id } = await server.api("POST", "/api/v1/datasets", fields, 201);
      return waitFor(
        async () => {
          const d = await server.api("GET", `/api/v1/datasets/${id}`);
          if (d.state === "failed") throw new Error(`dataset failed: ${d.error}`);
          return d.state === "ready" && d;
        },
        { timeout: 240000, interval: 250, what: `dataset ${id}` },
      );
    },
    /** A page logged in the way a person does: the URL `myelin serve` printed. */
    async page(viewport = { width: 1400, height: 900 }) {
      const context = await (await theBrowser()).newContext({ viewport, acceptDownloads: true });
      const page = await context.newPage();
      page.errors = [];
      page.on("pageerror", (e) => page.errors.push(String(e)));
      await page.goto(`${base}/login?token=${token}`);
      pages.push(context);
      return page;
    },
    /** Aborts every running or queued job and waits for them to end. */
    async abortAll() {
      const busy = async () =>
        (await server.api("GET", "/api/v1/jobs?limit=100000")).jobs.filter(
          (j) => j.state === "running" || j.state === "queued",
        );
      for (const job of await busy())
        await server.api("POST", `/api/v1/jobs/${job.id}/abort`).catch(() => {});
      await waitFor(async () => (await busy()).length === 0, { what: "every job to end" });
    },
    async stop() {
      for (const c of pages) await c.close().catch(() => {});
      if (proc.exitCode === null) {
        // Jobs outlive their server (a restarted one adopts them): end them first, so no
        // trainer keeps writing into the data dir or runs on into the next test.
        await server.abortAll().catch((e) => console.log(`# ${e.message}`));
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
  t.after(() => server.stop());
  return server;
}

/** Saves a full-page screenshot as OUT/NAME.png: what users see, to be looked at. */
export async function shot(page, name) {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}
