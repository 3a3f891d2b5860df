// The datasets pages: making a dataset from Fashion-MNIST, from an uploaded archive and from a
// server path; a dataset's build, classes, mean image and examples.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

/** Whether every <img> matching `selector` has loaded a real image; how many there are. */
async function loadedImages(page, selector) {
  return page.$$eval(selector, (imgs) =>
    imgs.every((img) => img.complete && img.naturalWidth > 0) ? imgs.length : 0,
  );
}

/** The dataset id in the page's #/datasets/ID. */
async function datasetIdOf(page) {
  await page.waitForURL(/#\/datasets\/\d+$/);
  return Number(page.url().split("/").pop());
}

test("Fashion-MNIST through the form: preview, build progress, classes, mean, gallery", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.goto(`${server.base}/#/datasets`);
  await page.waitForSelector(".dataset-form");
  assert.equal(await page.getAttribute("[role=radio][aria-checked=true]", "aria-checked"), "true");
  assert.equal(await page.$("input[name=size]"), null, "no size option for Fashion-MNIST");

  await page.click("button:has-text('Preview')");
  await page.waitForSelector(".preview img");
  await waitFor(() => loadedImages(page, ".preview img"), { what: "the preview image" });
  await shot(page, "datasets-preview");

  // The real build takes half a second: the page is shown "building" (40%) until released,
  // so the progress bar can be seen; then the page must find the ready dataset by itself.
  let building = true;
  await page.route(/\/api\/v1\/datasets(\/\d+)?$/, async (route) => {
    if (route.request().method() !== "GET") return route.fallback();
    const response = await route.fetch();
    const asBuilding = (d) => ({ ...d, state: "building", progress: 0.4, classes: [] });
    const body = await response.json();
    const json = !building ? body : Array.isArray(body) ? body.map(asBuilding) : asBuilding(body);
    await route.fulfill({ response, json });
  });
  await page.fill("input[name=name]", "fashion");
  await page.click("button[type=submit]");
  const id = await datasetIdOf(page);
  const bar = await page.waitForSelector("main [role=progressbar]");
  assert.equal(await bar.getAttribute("aria-valuenow"), "40");
  await shot(page, "dataset-building");
  building = false;

  await page.waitForSelector(".histogram-row", { timeout: 60000 });
  const rows = await page.$$eval(".histogram-row", (rs) =>
    rs.map((r) => [r.querySelector(".class-name").textContent, r.querySelectorAll(".bar").length]),
  );
  assert.equal(rows.length, 10);
  assert.deepEqual(rows[9], ["Ankle boot", 2]);
  assert.match(await page.textContent(".histogram"), /6,000[\s\S]*1,000/);
  await waitFor(() => loadedImages(page, "img[alt^='The training split']"), { what: "the mean" });
  await waitFor(async () => (await loadedImages(page, ".gallery img")) === 10, {
    what: "a gallery row per class",
  });
  assert.match(await page.textContent(".stats"), /1 × 28 × 28[\s\S]*train 60,000 · test 10,000/);
  assert.equal(await page.getAttribute("a:has-text('Train on it')", "href"), `#/new?dataset=${id}`);
  await shot(page, "dataset-fashion");

  await page.goto(`${server.base}/#/datasets`);
  const row = await page.waitForSelector(`table.datasets tr:has(a[href="#/datasets/${id}"])`);
  assert.match(await row.textContent(), /fashion.*ready.*1 × 28 × 28.*10.*train 60,000/);
  await shot(page, "datasets-list");
  assert.deepEqual(page.errors, []);
});

/** A .tar.gz of three class folders of four real PNGs each (Fashion-MNIST's examples). */
async function classArchive(server, t) {
  const fashion = await server.dataset();
  const dir = mkdtempSync(join(tmpdir(), "myelin-archive-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const classes = ["boots", "coats", "dresses"];
  for (const [k, name] of classes.entries()) {
    mkdirSync(join(dir, "classes", name), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const r = await fetch(
        `${server.base}/api/v1/datasets/${fashion.id}/examples/${k * 4 + i}.png?split=train`,
        { headers: { Authorization: `Bearer ${server.token}` } },
      );
      assert.equal(r.status, 200);
      writeFileSync(join(dir, "classes", name, `${i}.png`), Buffer.from(await r.arrayBuffer()));
    }
  }
  const archive = join(dir, "classes.tar.gz");
  execFileSync("tar", ["czf", archive, "-C", join(dir, "classes"), "."]);
  return { archive, classes };
}

test("a dataset from an uploaded archive, with size, channels and validation", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const { archive, classes } = await classArchive(server, t);
  const page = await server.page();
  await page.goto(`${server.base}/#/datasets`);
  await page.click("[role=radio]:has-text('Upload an archive')");
  await page.setInputFiles("input[name=archive]", archive);
  await page.waitForSelector(".upload-done");
  assert.match(await page.textContent(".upload-done"), /classes\.tar\.gz/);
  assert.equal(await page.getAttribute("input[name=name]", "placeholder"), "classes");
  await page.fill("input[name=size]", "32x32");
  await page.selectOption("select[name=channels]", "3");
  await page.fill("input[name=validation]", "25");
  await page.click("button:has-text('Preview')");
  await waitFor(() => loadedImages(page, ".preview img"), { what: "the preview image" });
  await shot(page, "datasets-archive-form");

  await page.click("button[type=submit]");
  const id = await datasetIdOf(page);
  await page.waitForSelector(".histogram-row", { timeout: 60000 });
  const names = await page.$$eval(".histogram-row .class-name", (s) => s.map((e) => e.textContent));
  assert.deepEqual(names, classes);
  assert.match(await page.textContent(".stats"), /3 × 32 × 32[\s\S]*train 9 · test 3/);
  await waitFor(async () => (await loadedImages(page, ".gallery img")) === 3, {
    what: "the gallery",
  });
  const stored = await server.api("GET", `/api/v1/datasets/${id}`);
  assert.deepEqual(stored.options.size, "32x32");
  await shot(page, "dataset-archive");
  assert.deepEqual(page.errors, []);
});

test("a server path outside --allow-dir, or missing, is refused in words", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.goto(`${server.base}/#/datasets`);
  await page.click("[role=radio]:has-text('Folder on the server')");
  await page.fill("input[name=path]", "/etc");
  await page.click("button[type=submit]");
  await page.waitForSelector(".dataset-form .error");
  const refusal = await page.textContent(".dataset-form .error");
  assert.match(refusal, /'\/etc' is outside the allowed folders/);
  assert.match(refusal, /--allow-dir/);
  assert.doesNotMatch(refusal, /[{}]/, "no raw JSON");
  await shot(page, "datasets-path-refused");

  await page.fill("input[name=path]", join(server.dataDir, "no-such-folder"));
  await page.click("button:has-text('Preview')");
  await waitFor(async () => /does not exist/.test(await page.textContent(".dataset-form .error")), {
    what: "the missing folder's message",
  });
  assert.match(page.url(), /#\/datasets$/, "nothing was made");
  assert.deepEqual(page.errors, []);
});
