// The charts stay smooth with long runs: /perf.html draws the Compare page's chart with 5 jobs
// of 100,000 points each, then appends 5 × 100 points every 100 ms and times every frame.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeBrowser, shot, startServer, waitFor } from "./harness.mjs";

after(closeBrowser);

// The frame times it prints are checked against their goals by bench/web-ui.sh.

test("5 jobs × 100,000 points render fast and update without freezing", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.goto(`${server.base}/perf.html`);
  const perf = await waitFor(() => page.evaluate(() => window.__perf), {
    timeout: 60000,
    what: "the perf page's measurements",
  });
  await shot(page, "perf");
  console.log(
    `perf: first render ${perf.firstRenderMs.toFixed(0)} ms (data ${perf.dataMs.toFixed(0)} ms), ` +
      `${perf.frames} frames in ${perf.updateMs.toFixed(0)} ms, worst frame ${perf.worstFrameMs.toFixed(0)} ms, ` +
      `p95 ${perf.p95FrameMs.toFixed(0)} ms, longest task ${perf.longestTaskMs.toFixed(0)} ms, ` +
      `${perf.pointsInChart} points in the chart`,
  );
  assert.deepEqual(page.errors, []);
  assert.equal(perf.jobs, 5);
  assert.equal(perf.pointsPerJob, 100000);
  // Every appended point reached the chart: 5 × (100,000 + at least 40 batches of 100).
  assert.ok(perf.pointsInChart >= 5 * (100000 + 40 * 100), `${perf.pointsInChart} points`);
  assert.ok(perf.frames >= 30, `only ${perf.frames} frames in ${perf.updateMs} ms`);
});

/** The epoch the legend shows for the cursor at `share` of the plot's width. */
async function epochAt(page, share) {
  const box = await page.locator(".u-over").boundingBox();
  await page.mouse.move(box.x + box.width * share, box.y + box.height / 2);
  return Number(await page.textContent(".u-legend .u-series:first-child .u-value"));
}

test("drag zooms into the long series, double-click shows it whole", async (t) => {
  const server = await startServer(t);
  if (!server) return;
  const page = await server.page();
  await page.goto(`${server.base}/perf.html?seconds=0.5`);
  await waitFor(() => page.evaluate(() => window.__perf), { what: "the perf page" });
  const whole = await epochAt(page, 0.5);
  assert.ok(whole > 45 && whole < 60, `middle of the whole run at epoch ${whole}`);

  const box = await page.locator(".u-over").boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.3, box.y + 40, { steps: 5 });
  await page.mouse.up();
  await page.waitForSelector("text=double-click: whole range");
  const zoomed = await epochAt(page, 0.5);
  assert.ok(zoomed > whole * 0.4 && zoomed < whole * 0.6, `zoomed middle at epoch ${zoomed}`);
  await shot(page, "perf-zoomed");

  await page.dblclick(".u-over");
  await page.waitForSelector("text=drag: zoom");
  assert.ok(Math.abs((await epochAt(page, 0.5)) - whole) < 1);
  assert.deepEqual(page.errors, []);
});
