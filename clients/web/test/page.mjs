// Drives the chat page in Debian's headless Chromium (playwright-core) for
// tests/e2e/test_web_page.py, and prints what it saw as one JSON object.
//
//   node test/page.mjs '{"url": "...", "prompt": "...", "maxTokens": 24, "temperature": 0,
//                        "seed": "7", "stopAfterFirstDelta": false, "screenshot": "x.png"}'
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const ENDED = ["done", "error", "stopped"];
const timeout = 120_000;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
  await page.goto(options.url);
  await page.fill("#prompt", options.prompt);
  await page.fill("#temperature", String(options.temperature ?? 0));
  await page.fill("#max-tokens", String(options.maxTokens ?? 24));
  if (options.seed !== undefined) await page.fill("#seed", String(options.seed));
  // Record every change of the output and when the call ended, in page time.
  await page.evaluate(() => {
    const updates = [];
    const record = { updates, endedAt: null };
    window.__seen = record;
    const output = document.getElementById("output");
    new MutationObserver(() => updates.push({ at: performance.now(), text: output.textContent }))
      .observe(output, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => {
      const state = document.body.dataset.state;
      if (["done", "error", "stopped"].includes(state) && record.endedAt === null) {
        record.endedAt = performance.now();
      }
    }).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
  });
  await page.click("#send");
  if (options.stopAfterFirstDelta) {
    await page.waitForFunction(() => document.getElementById("output").textContent.length > 0,
      null, { timeout });
    await page.click("#stop");
  }
  await page.waitForFunction((ended) => ended.includes(document.body.dataset.state), ENDED,
    { timeout });
  const seen = await page.evaluate(() => ({
    ...window.__seen,
    state: document.body.dataset.state,
    failure: document.body.dataset.failure ?? null,
    text: document.getElementById("output").textContent,
    message: document.getElementById("message").textContent,
    ttft: document.getElementById("ttft").textContent,
    tps: document.getElementById("tps").textContent,
    reason: document.getElementById("reason").textContent,
  }));
  if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
  process.stdout.write(JSON.stringify({ ...seen, consoleErrors }) + "\n");
} finally {
  await browser.close();
}
