// A job's model page: classifying an image, the test set's evaluation, filters, activations,
// the bundle's download, and a job without weights.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

const TINY_JOB = { model: "lenet", iterations: 60, "train-limit": 2000, "test-limit": 500 };

async function finishedJob(server, dataset) {
  const { id } = await server.api(
    "POST",
    "/api/v1/jobs",
    { ...TINY_JOB, dataset, name: "tiny" },
    201,
  );
  return waitFor(
    async () => {
      const job = await server.api("GET", `/api/v1/jobs/${id}`);
      if (["failed", "aborted"].includes(job.state))
        throw new Error(`job ${job.state}: ${job.error}`);
      return job.state === "done" && job;
    },
    { timeout: 240000, interval: 250, what: `job ${id} to finish` },
  );
}

/** Test example `index` of `dataset` as a PNG file in `dir`. */
async function examplePng(server, dataset, index, dir) {
  const r = await fetch(`${server.base}/api/v1/datasets/${dataset}/examples/${index}.png`, {
    headers: { Authorization: `Bearer ${server.token}` },
  });
  assert.equal(r.status, 200);
  const file = join(dir, `example-${index}.png`);
  writeFileSync(file, Buffer.from(await r.arrayBuffer()));
  return file;
}

async function imageLoaded(page, selector) {
  return page.$$eval(selector, (imgs) => imgs.length > 0 && imgs.every((i) => i.naturalWidth > 0));
}

/** The probabilities of the top-5 bars once there are five. */
async function topFive(page) {
  await waitFor(async () => (await page.$$(".probability-bars li")).length === 5, {
    what: "five bars",
  });
  return page.$$eval(".probability-bars .probability", (s) =>
    s.map((e) => Number(e.dataset.probability)),
  );
}

test("a trained model: classify, evaluate the test set, filters, activations, download", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const dataset = await server.dataset();
  const job = await finishedJob(server, dataset.id);
  const dir = mkdtempSync(join(tmpdir(), "myelin-model-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const page = await server.page();
  await page.goto(`${server.base}/#/jobs/${job.id}/model`);
  assert.equal(await page.getAttribute(".crumbs a", "href"), `#/jobs/${job.id}`);

  await waitFor(() => imageLoaded(page, "img[alt^='Filters of conv1']"), { what: "filters" });
  await page.setInputFiles("input[name=image]", await examplePng(server, dataset.id, 0, dir));
  const probabilities = await topFive(page);
  const sum = probabilities.reduce((a, b) => a + b, 0);
  assert.ok(sum > 0 && sum <= 1 + 1e-9, `the top 5 sum to ${sum}`);
  assert.deepEqual(
    probabilities,
    [...probabilities].sort((a, b) => b - a),
  );
  await waitFor(() => imageLoaded(page, "img[alt='Activations of conv1']"), { what: "conv1" });
  await page.selectOption("select[name=layer]", "pool2");
  await waitFor(() => imageLoaded(page, "img[alt='Activations of pool2']"), { what: "pool2" });

  // A second image, dropped onto the zone, is classified in turn.
  const dropped = readFileSync(await examplePng(server, dataset.id, 1, dir)).toString("base64");
  await page.evaluate((png) => {
    const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
    const files = new DataTransfer();
    files.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
    const zone = document.querySelectorAll(".drop-zone")[0];
    zone.dispatchEvent(
      new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }),
    );
  }, dropped);
  await page.waitForSelector("img[alt='dropped.png']");
  assert.equal((await topFive(page)).length, 5);

  await page.click("button:has-text('Classify the test set')");
  await page.waitForSelector("svg.confusion", { timeout: 120000 });
  assert.equal((await page.$$("svg.confusion rect.cell")).length, 100);
  const axes = await page.$$eval("svg.confusion .axis-label", (l) => l.map((e) => e.textContent));
  assert.equal(axes.filter((a) => a === "Ankle boot").length, 2, "names on both axes");
  await page.hover("svg.confusion rect.cell >> nth=1");
  assert.match(await page.textContent(".confusion-hover"), /T-shirt\/top taken for Trouser: \d+/);
  assert.match(await page.textContent(".evaluation-stats"), /\d+\.\d\d%accuracy/);
  assert.equal((await page.$$("table.per-class tbody tr")).length, 10);
  await waitFor(() => imageLoaded(page, ".mistake img"), { timeout: 30000, what: "mistakes" });
  assert.ok((await page.$$(".mistake img")).length > 0);
  await shot(page, "model");
  await page.setViewportSize({ width: 860, height: 900 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a narrow window`);
  await shot(page, "model-narrow");

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("a.download-button"),
  ]);
  assert.equal(download.suggestedFilename(), `myelin-job-${job.id}.tar.gz`);
  const bundle = readFileSync(await download.path());
  assert.ok(bundle.length > 0);
  assert.deepEqual([...bundle.subarray(0, 2)], [0x1f, 0x8b], "a gzip file");

  // The dataset is in use: deleting it is refused in words.
  await page.goto(`${server.base}/#/datasets/${dataset.id}`);
  await page.click("button:has-text('Delete')");
  await page.click("button:has-text('Yes, delete')");
  await page.waitForSelector(".page-title .error");
  assert.match(await page.textContent(".page-title .error"), /used by jobs 1/);
  await shot(page, "dataset-in-use");
  assert.deepEqual(page.errors, []);
});

test("a job without weights says so instead of an error", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  // A job queued on a dataset still building waits; aborted then, it never wrote weights.
  const { id: dataset } = await server.api(
    "POST",
    "/api/v1/datasets",
    { name: "fashion", source: "fashion-mnist" },
    201,
  );
  const { id } = await server.api("POST", "/api/v1/jobs", { ...TINY_JOB, dataset }, 201);
  await server.api("POST", `/api/v1/jobs/${id}/abort`, {});
  const refusal = await server.api("GET", `/api/v1/jobs/${id}/filters.png`, undefined, 409);
  assert.match(refusal.error, /no weights/);

  const page = await server.page();
  await page.goto(`${server.base}/#/jobs/${id}/model`);
  await page.waitForSelector("p.no-weights");
  assert.match(
    await page.textContent("main"),
    /No weights yet — the job must write a checkpoint first/,
  );
  assert.equal(await page.$(".error"), null, "no error box");
  assert.ok(await page.isDisabled("button:has-text('Classify the test set')"));
  assert.ok(await page.isDisabled("button:has-text('Download the bundle')"));
  await shot(page, "model-no-weights");
  assert.deepEqual(page.errors, []);
});
