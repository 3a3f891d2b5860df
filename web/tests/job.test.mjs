// A real job's page, live: the chart gains points as the trainer logs them, abort and resume
// (the chart goes on without repeats), clone, delete; then the compare and GPUs pages.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

const ITERATIONS = 2000; // about 40 s on 2 cores: time to abort and resume it
const LOG_EVERY = 10;

/** Records when each metrics event reaches the page (wrapping EventSource before the app runs). */
function recordArrivals() {
  window.__arrivals = [];
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (type, listener, options) {
    const wrapped =
      type === "metrics"
        ? (e) => {
            const d = JSON.parse(e.data);
            window.__arrivals.push({ key: `${d.event}:${d.iter}`, at: Date.now() });
            listener(e);
          }
        : listener;
    return add.call(this, type, wrapped, options);
  };
}

/** Records when each line of metrics.jsonl appears (polled every 5 ms); stop() ends it. */
function watchMetricsFile(path) {
  const written = new Map();
  let offset = 0;
  const timer = setInterval(() => {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      return;
    }
    if (size < offset) offset = 0; // cut back by a resume
    if (size === offset) return;
    const text = readFileSync(path, "utf8").slice(offset);
    const end = text.lastIndexOf("\n") + 1;
    for (const line of text.slice(0, end).split("\n").filter(Boolean)) {
      const e = JSON.parse(line);
      const key = `${e.event}:${e.iter}`;
      if (!written.has(key)) written.set(key, Date.now());
    }
    offset += Buffer.byteLength(text.slice(0, end));
  }, 5);
  return { written, stop: () => clearInterval(timer) };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const chartPoints = (page, name) =>
  page.evaluate(
    (n) => Number(document.querySelector(`[data-chart=${n}] .chart-plot`)?.dataset.points ?? 0),
    name,
  );
const stateOf = (page) => page.textContent(".job-stats .badge");

test("a job's page follows it live through abort, resume, clone and delete", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const dataset = await server.dataset();
  const page = await server.page();
  await page.addInitScript(recordArrivals);
  await page.goto(`${server.base}/#/jobs/999`);
  await page.reload(); // a new document, so that recordArrivals runs first
  await page.waitForSelector(".error");
  assert.match(await page.textContent(".error"), /404/);
  await shot(page, "job-missing");

  const job = await server.api(
    "POST",
    "/api/v1/jobs",
    {
      dataset: dataset.id,
      model: "lenet",
      name: "live chart",
      iterations: ITERATIONS,
      "log-every": LOG_EVERY,
      "eval-every": 250,
      "train-limit": 2000,
      "test-limit": 500,
    },
    201,
  );
  const { run_dir } = await server.api("GET", `/api/v1/jobs/${job.id}`);
  const file = watchMetricsFile(join(run_dir, "metrics.jsonl"));
  t.after(file.stop);

  await page.goto(`${server.base}/#/jobs/${job.id}`);
  await page.waitForSelector("[data-chart=loss] .chart-plot[data-points]");
  await shot(page, "job-start");

  // The chart gains points while the job runs, without a reload.
  const first = await waitFor(async () => (await chartPoints(page, "loss")) || false, {
    timeout: 240000,
    what: "the first points",
  });
  const more = await waitFor(
    async () => {
      const n = await chartPoints(page, "loss");
      return n >= first + 3 && n;
    },
    { timeout: 120000, what: "more points" },
  );
  assert.equal(await stateOf(page), "running");
  await shot(page, "job-running");

  // Abort: the state changes on the page by itself; the points logged so far stay.
  await page.click("button:text-is('Abort')");
  await waitFor(async () => (await stateOf(page)) === "aborted", {
    timeout: 60000,
    what: "state aborted",
  });
  const atAbort = await chartPoints(page, "loss");
  assert.ok(atAbort >= more);
  await shot(page, "job-aborted");

  // Resume: it runs on to the end, the chart continuing where it stopped.
  await page.click("button:text-is('Resume')");
  await waitFor(async () => (await stateOf(page)) === "done", {
    timeout: 300000,
    interval: 250,
    what: "state done",
  });
  const history = await server.api("GET", `/api/v1/jobs/${job.id}/metrics`);
  const train = history.events.filter((e) => e.event === "train");
  const tests = history.events.filter((e) => e.event === "test");
  assert.equal(new Set(train.map((e) => e.iter)).size, train.length, "repeated train events");
  assert.equal(train.length, ITERATIONS / LOG_EVERY);
  await waitFor(async () => (await chartPoints(page, "loss")) === train.length + tests.length, {
    timeout: 10000,
    what: `the loss chart to hold ${train.length} + ${tests.length} points`,
  });
  assert.equal(await chartPoints(page, "accuracy"), train.length + tests.length);
  assert.equal(await chartPoints(page, "lr"), train.length);
  assert.match(await page.textContent(".job-log"), /lenet/);
  await page.waitForSelector(".card svg");
  assert.equal(await page.locator('text=/^\\s*[{[]"/').count(), 0, "raw JSON on the page");
  await shot(page, "job-done");

  // How soon a line the trainer wrote reached the page (same clock: one machine).
  file.stop();
  const arrivals = await page.evaluate(() => window.__arrivals);
  const delays = arrivals
    .filter((a) => file.written.has(a.key))
    .map((a) => a.at - file.written.get(a.key))
    .filter((d) => d >= 0 && d < 10000);
  const liveSpan = (arrivals.at(-1).at - arrivals[0].at) / 1000;
  console.log(
    `events: ${arrivals.length} metrics events at ${(arrivals.length / liveSpan).toFixed(1)}/s; ` +
      `file-to-page latency median ${median(delays)} ms, max ${Math.max(...delays)} ms ` +
      `(${delays.length} events timed)`,
  );
  assert.ok(delays.length >= 10, `only ${delays.length} events timed`);

  // Clone: a new job with this request, its page opened; abort it, compare both, delete it.
  await page.click("button:text-is('Clone')");
  await page.waitForFunction((id) => !location.hash.endsWith(`/jobs/${id}`), job.id);
  const clone = Number(await page.evaluate(() => location.hash.split("/").at(-1)));
  assert.ok(clone > job.id);
  await page.waitForSelector(`.job-title .crumbs:has-text('#${clone}')`);
  await shot(page, "job-clone");
  await page.click("button:text-is('Abort')");
  await waitFor(async () => (await stateOf(page)) === "aborted", { what: "the clone aborted" });

  await page.goto(`${server.base}/#/compare?jobs=${job.id},${clone}`);
  await page.waitForSelector("[data-chart=compare] .chart-plot[data-points]");
  await waitFor(async () => (await chartPoints(page, "compare")) >= tests.length, {
    what: "the compared test accuracy",
  });
  assert.match(await page.textContent(".compare-chart"), /live chart/);
  await page.click(".compare-chart button:text-is('train loss')");
  await waitFor(async () => (await chartPoints(page, "compare")) >= train.length, {
    what: "the compared train loss",
  });
  await shot(page, "compare");

  await page.goto(`${server.base}/#/gpus`);
  await page.waitForSelector("[data-pool=cpu]");
  const gpus = await server.api("GET", "/api/v1/system");
  if (gpus.gpus.length === 0) assert.match(await page.textContent(".no-gpu"), /No GPU/);
  await waitFor(async () => (await chartPoints(page, "cpu")) >= 4, { what: "CPU samples" });
  await shot(page, "gpus");

  await page.goto(`${server.base}/#/jobs/${clone}`);
  page.once("dialog", (d) => d.accept());
  await page.click("button:text-is('Delete')");
  await page.waitForFunction(() => location.hash === "#/");
  await server.api("GET", `/api/v1/jobs/${clone}`, undefined, 404);
  assert.deepEqual(page.errors, []);
});
