// The app shell: logging in, the token page, the home page's lists and the nav.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

test("a wrong token is refused with a message; the right one logs in", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.context().clearCookies();
  await page.goto(server.base + "/");
  await page.fill("input[name=token]", "not-the-token");
  await page.click("button[type=submit]");
  await page.waitForSelector(".error");
  assert.match(await page.textContent(".error"), /401/);
  await shot(page, "login-error");
  await page.fill("input[name=token]", server.token);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.top");
  assert.match(await page.textContent("main"), /No jobs yet|Jobs/);
  await shot(page, "home-empty");
  assert.deepEqual(page.errors, []);
});

test("the home page shows a new job and its changes without a reload", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.waitForSelector("nav.top");
  const ds = await server.api(
    "POST",
    "/api/v1/datasets",
    { name: "fashion", source: "fashion-mnist" },
    201,
  );
  await page.waitForSelector(`a[href="#/datasets/${ds.id}"]`);
  const job = await server.api(
    "POST",
    "/api/v1/jobs",
    {
      dataset: ds.id,
      model: "lenet",
      iterations: 30,
      "train-limit": 2000,
      "test-limit": 500,
      name: "live row",
    },
    201,
  );
  await page.waitForSelector(`a[href="#/jobs/${job.id}"]`);
  await waitFor(async () => /done/.test(await page.textContent("table.jobs")), {
    timeout: 240000,
    what: "the row to say done",
  });
  await shot(page, "home");
  assert.deepEqual(page.errors, []);
});
