// Text in the UI: a text dataset made from a corpus file on the server (its facts, symbols and
// excerpts; no pictures), another from an uploaded text file, a binary file refused in words;
// then a short char-lstm job on the CPU from the New job page, whose Samples card gains text as
// the network writes it.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

const WORDS = (
  "the cat sat on a mat and the dog ran to the red door while a bird sang " +
  "over old green hills near quiet water"
).split(" ");

/** Sentences of common words, one per line (a fixed pseudo-random sequence). */
function corpus(lines, seed = 7) {
  let state = seed;
  const next = (n) => ((state = (state * 1103515245 + 12345) % 2147483648), state % n);
  const out = [];
  for (let i = 0; i < lines; i++) {
    const words = Array.from({ length: 4 + next(6) }, () => WORDS[next(WORDS.length)]);
    const line = words.join(" ");
    out.push(line[0].toUpperCase() + line.slice(1) + ".!?"[next(3)]);
  }
  return out.join("\n") + "\n";
}

async function datasetIdOf(page) {
  await page.waitForURL(/#\/datasets\/\d+$/);
  return Number(page.url().split("/").pop());
}

const samplesShown = (page) =>
  page.evaluate(() => Number(document.querySelector(".samples")?.dataset.samples ?? 0));

test("text datasets, and a char-lstm job's samples arriving live", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const folder = join(server.dataDir, "corpus");
  mkdirSync(folder, { recursive: true });
  const text = corpus(400);
  writeFileSync(join(folder, "story.txt"), text);
  writeFileSync(join(folder, "blob.bin"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
  const page = await server.page();

  // A binary file is refused in words.
  await page.goto(`${server.base}/#/datasets`);
  await page.click("[role=radio]:text-is('Text')");
  assert.equal(await page.$("input[name=size]"), null, "no image options for text");
  assert.equal(await page.$("button:has-text('Preview')"), null, "no image preview for text");
  await page.fill("input[name=path]", join(folder, "blob.bin"));
  await page.click("button[type=submit]");
  await page.waitForSelector(".dataset-form .error");
  const refusal = await page.textContent(".dataset-form .error");
  assert.match(refusal, /binary/);
  assert.doesNotMatch(refusal, /[{}]/, "no raw JSON");

  // The corpus by characters, a tenth held out.
  await page.fill("input[name=path]", join(folder, "story.txt"));
  assert.equal(await page.getAttribute("input[name=name]", "placeholder"), "story");
  await page.selectOption("select[name=level]", "char");
  await page.fill("input[name=validation]", "10");
  await shot(page, "text-dataset-form");
  await page.click("button[type=submit]");
  const id = await datasetIdOf(page);
  await page.waitForSelector("pre.excerpt", { timeout: 60000 });
  await page.waitForSelector("ol.symbols li");
  const stats = await page.textContent(".stats");
  assert.match(stats, /characters/);
  assert.match(stats, new RegExp(`${new Set(text).size} symbols`));
  assert.match(stats, /10% held out/);
  assert.equal(await page.$(".gallery"), null, "no image gallery");
  assert.equal(await page.$("img"), null, "no pictures");
  const excerpt = await page.textContent("pre.excerpt");
  assert.ok(excerpt.length > 500 && text.startsWith(excerpt), "the excerpt is the text's start");
  assert.match(await page.textContent("ol.symbols"), /␣ space/);
  assert.match(await page.textContent("ol.symbols"), /↵ newline/);
  await shot(page, "text-dataset");
  await page.click("button:has-text('Another excerpt')");
  await waitFor(async () => !/^Tokens 0 /.test(await page.textContent(".excerpt-about")), {
    what: "another excerpt",
  });
  const later = await page.textContent("pre.excerpt");
  assert.ok(text.includes(later), "a later excerpt is the text too");
  await page.click(".card .tabs button:text-is('validation')");
  await waitFor(async () => /validation text/.test(await page.textContent(".excerpt-about")), {
    what: "the validation excerpt",
  });
  assert.ok(text.endsWith(await page.textContent("pre.excerpt")), "validation is the end");

  // An uploaded text file, by words.
  await page.goto(`${server.base}/#/datasets`);
  await page.click("[role=radio]:text-is('Text')");
  await page.click("[role=radio]:has-text('Upload a text file')");
  await page.setInputFiles("input[name=textfile]", {
    name: "lines.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(corpus(60, 3)),
  });
  await page.waitForSelector(".upload-done");
  await page.selectOption("select[name=level]", "word");
  await page.click("button[type=submit]");
  await datasetIdOf(page);
  await page.waitForSelector("pre.excerpt", { timeout: 60000 });
  assert.match(await page.textContent(".stats"), /words/);
  await page.goto(`${server.base}/#/datasets`);
  await page.waitForSelector("table.datasets tbody tr:nth-child(2)");
  assert.match(
    await page.textContent("table.datasets"),
    /text \(words\)[\s\S]*text \(characters\)/,
  );
  await shot(page, "text-datasets-list");

  // New job: the text networks for a text dataset.
  await page.goto(`${server.base}/#/new?dataset=${id}`);
  await page.waitForSelector("select[name=network]");
  assert.equal(await page.inputValue("select[name=network]"), "char-lstm");
  const offered = await page.$$eval("select[name=network] option", (o) => o.map((e) => e.value));
  assert.ok(!offered.includes("lenet"), `image networks offered for text: ${offered}`);
  await page.fill("input[name=name]", "story lstm");
  await page.fill("input[name=batch]", "2");
  await page.selectOption("select[name=lengthUnit]", "iterations");
  await page.fill("input[name=length]", "30");
  await page.fill("input[name=trainLimit]", "2600"); // 10 batches of 2 x 128 an epoch
  await page.fill("input[name=testLimit]", "800");
  await page.waitForSelector(".submit-bar button.primary:not([disabled])");
  await page.click(".submit-bar button.primary");
  await page.waitForURL(/#\/jobs\/\d+$/);
  const job = Number(page.url().split("/").pop());

  // The Samples card gains text as the test passes come (every epoch: 10 iterations).
  await page.waitForSelector(".samples");
  await waitFor(async () => (await samplesShown(page)) >= 1, {
    timeout: 300000,
    interval: 250,
    what: "the first sample",
  });
  const first = await page.textContent("pre.sample-text");
  assert.ok(first.length > 0);
  assert.match(await page.textContent(".sample-about"), /iteration 10\b/);
  await shot(page, "text-job-first-sample");
  await waitFor(async () => (await samplesShown(page)) >= 2, {
    timeout: 300000,
    interval: 250,
    what: "a second sample",
  });
  assert.match(await page.textContent(".sample-about"), /iteration 20\b/);
  await waitFor(async () => (await page.textContent(".job-stats .badge")) === "done", {
    timeout: 300000,
    interval: 250,
    what: "the job to finish",
  });
  await waitFor(async () => (await samplesShown(page)) === 3, { what: "the third sample" });
  assert.match(await page.textContent(".sample-about"), /iteration 30\b/);
  const jobStats = await page.textContent(".job-stats");
  assert.match(jobStats, /tokens\/s/);
  assert.match(jobStats, /\d\.\d{3}\s*bits per character/);
  const bitsPoints = await page.evaluate(() =>
    Number(document.querySelector("[data-chart=bits] .chart-plot")?.dataset.points ?? 0),
  );
  assert.equal(bitsPoints, 3);
  assert.equal(await page.$("a.button-link:text-is('Model')"), null, "no image model page");
  assert.equal(await page.locator('text=/^\\s*[{[]"/').count(), 0, "raw JSON on the page");
  await shot(page, "text-job");

  // Older samples stay a click away.
  await page.click("button:has-text('Older')");
  assert.match(await page.textContent(".sample-about"), /iteration 20\b/);
  assert.match(await page.textContent(".sample-count"), /2 of 3/);
  const events = (await server.api("GET", `/api/v1/jobs/${job}/metrics`)).events;
  const samples = events.filter((e) => e.event === "sample");
  assert.equal(samples.length, 3);
  assert.equal(
    await page.textContent("pre.sample-text"),
    samples[1].text.replace(/\r/g, "\\r"),
    "the sample as the trainer wrote it",
  );
  assert.deepEqual(page.errors, []);
});
