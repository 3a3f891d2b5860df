// The New job page: a network written in the editor (its error underlined on its line, then
// fixed), its graph and memory, a job started from the form, and a learning-rate sweep.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

const TINY = (act) => `name: tiny
input: [1, 28, 28]
classes: 10
train: {lr: 0.05, batch: 32, epochs: 1}
layers:
  - conv: {name: hidden, filters: 64, kernel: 3}
  - ${act}: {name: act}
  - fc: {name: scores, outputs: 10}
`;

/** Replaces the editor's whole text, as a paste does. */
async function typeNetwork(page, text) {
  await page.click(".network-editor .cm-content");
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(text);
}

/** The 1-based line of the editor that holds the (first) error underline. */
function markedLine(page) {
  return page.evaluate(() => {
    const mark = document.querySelector(".cm-lintRange-error");
    const lines = [...document.querySelectorAll(".network-editor .cm-content .cm-line")];
    return mark ? lines.indexOf(mark.closest(".cm-line")) + 1 : 0;
  });
}

const layerNames = (page) =>
  page.$$eval(".network-graph .node:not(.kind-input)", (nodes) =>
    nodes.map((n) => n.dataset.layer),
  );

/** A tiny CPU run: the form's length and example limits. */
async function fillTinyRun(page) {
  await page.selectOption("select[name=lengthUnit]", "iterations");
  await page.fill("input[name=length]", "30");
  await page.fill("input[name=trainLimit]", "2000");
  await page.fill("input[name=testLimit]", "500");
}

async function landedOnJob(page) {
  await page.waitForFunction(() => /^#\/jobs\/\d+$/.test(location.hash));
  return Number(await page.evaluate(() => location.hash.split("/")[2]));
}

test("a network written in the editor: error on its line, fixed, graph, memory, job", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  const ds = await server.dataset();
  await page.goto(`${server.base}/#/new?dataset=${ds.id}`);
  await page.waitForSelector(".network-graph .node");
  assert.deepEqual(await layerNames(page), [
    "conv1",
    "pool1",
    "conv2",
    "pool2",
    "ip1",
    "relu1",
    "ip2",
  ]);

  await page.check("input[name=edit]");
  await typeNetwork(page, TINY("relux"));
  await page.waitForSelector(".cm-lintRange-error");
  assert.equal(await markedLine(page), 7);
  assert.match(await page.textContent(".editor-errors"), /Line 7.*unknown layer type 'relux'/);
  assert.ok(await page.isDisabled(".submit-bar button.primary"));
  await shot(page, "newjob-error");

  await typeNetwork(page, TINY("relu"));
  await waitFor(async () => (await layerNames(page)).join() === "hidden,act,scores", {
    what: "the graph of the fixed network",
  });
  assert.equal(await page.$(".cm-lintRange-error"), null);
  assert.equal(await page.$(".editor-errors"), null);
  assert.match(await page.textContent("[data-testid=memory-total]"), /^\d+(\.\d)? (KiB|MiB)$/);
  assert.match(await page.textContent(".memory-needed"), /at batch 32 on cpu/);
  await page.fill("input[name=batch]", "1000000");
  await waitFor(async () => /at batch 1000000 /.test(await page.textContent(".memory-needed")), {
    what: "the memory at the new batch",
  });
  assert.match(await page.textContent(".memory-needed"), /Does not fit/);
  await page.click(".submit-bar button.primary");
  await page.waitForSelector(".submit-bar .error");
  assert.match(
    await page.textContent(".submit-bar .error"),
    /Error 400: .*largest batch that fits/,
  );
  assert.doesNotMatch(await page.textContent(".submit-bar .error"), /[{}"]/);
  await shot(page, "newjob-memory-refused");

  await page.fill("input[name=batch]", "");
  await fillTinyRun(page);
  assert.equal(await page.$(".submit-bar .error"), null);
  // The form offers the values the server takes; how convolutions pick their algorithms
  // matters on GPUs only: offered, and off on the CPU.
  const { choices } = await server.api("GET", "/api/v1/networks");
  const offered = (name) =>
    page.$$eval(`select[name=${name}] option`, (os) => os.map((o) => o.value));
  assert.deepEqual(await offered("convSearch"), choices.conv_searches);
  assert.ok(choices.conv_searches.includes("tune"));
  assert.deepEqual(await offered("precision"), choices.precisions);
  assert.equal(await page.isDisabled("select[name=convSearch]"), true);
  await waitFor(async () => /at batch 32 on cpu/.test(await page.textContent(".memory-needed")), {
    what: "the memory back at the file's batch",
  });
  await page.waitForSelector(".lr-schedule .uplot");
  await shot(page, "newjob-valid");
  await page.click(".submit-bar button.primary");
  const id = await landedOnJob(page);
  const job = await server.api("GET", `/api/v1/jobs/${id}`);
  assert.equal(job.dataset, ds.id);
  assert.equal(job.spec.model, TINY("relu"));
  assert.deepEqual(job.spec.train, {
    iterations: 30,
    "train-limit": 2000,
    "test-limit": 500,
    precision: "fp32",
  });
  await page.waitForTimeout(500);
  await shot(page, "newjob-landed");
  assert.deepEqual(page.errors, []);
});

test("two learning rates make a sweep of two jobs", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  const ds = await server.dataset();
  await page.goto(`${server.base}/#/new?dataset=${ds.id}`);
  await page.waitForSelector(".network-graph .node");
  await page.fill("input[name=lr]", "0.01, 0.05");
  await fillTinyRun(page);
  await page.waitForSelector(".lr-schedule .uplot");
  assert.equal(await page.textContent(".submit-bar button.primary"), "Start 2 jobs");
  await shot(page, "newjob-sweep");
  await page.click(".submit-bar button.primary");
  const first = await landedOnJob(page);
  const { sweeps } = await server.api("GET", "/api/v1/sweeps");
  assert.equal(sweeps.length, 1);
  const sweep = await server.api("GET", `/api/v1/sweeps/${sweeps[0].id}`);
  assert.equal(sweep.jobs.length, 2);
  assert.ok(sweep.jobs.some((j) => j.id === first));
  const specs = await Promise.all(sweep.jobs.map((j) => server.api("GET", `/api/v1/jobs/${j.id}`)));
  const rates = specs.map((j) => j.spec.train.lr).sort();
  assert.deepEqual(rates, [0.01, 0.05]);
  assert.deepEqual(page.errors, []);
});
