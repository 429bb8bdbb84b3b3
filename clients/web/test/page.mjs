// Drives the chat page in Debian's headless Chromium (playwright-core) for
// tests/e2e/test_web_page.py, and prints what it saw as one JSON object.
//
//   node test/page.mjs '{"url": "...", "temperature": 0, "maxTokens": 24, "seed": "7",
//     "system": "...", "screenshot": "x.png",
//     "steps": [{"send": "Hi"}, {"send": "Again", "enter": true, "stopAfterFirstDelta": true},
//               {"regenerate": true, "seed": "8"}]}'
//
// After each step it records the page (state, transcript, timings); it also records the body of
// every GenerateStream request the page sent (gRPC-Web frames, base64) for the test to decode.
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const timeout = 120_000;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  const requests = [];
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
  page.on("request", (request) => {
    if (request.url().endsWith("/GenerateStream") && request.method() === "POST") {
      requests.push(request.postDataBuffer()?.toString("base64") ?? "");
    }
  });
  await page.goto(options.url);
  await page.waitForFunction(() => !document.getElementById("model").textContent.endsWith("not connected"),
    null, { timeout });
  await page.click("summary"); // open Settings, as a person would
  await page.fill("#temperature", String(options.temperature ?? 0));
  await page.fill("#max-tokens", String(options.maxTokens ?? 24));
  if (options.seed !== undefined) await page.fill("#seed", String(options.seed));
  if (options.system !== undefined) await page.fill("#system", options.system);
  await page.evaluate(watchTheAnswer);
  const steps = [];
  for (const step of options.steps) steps.push(await run(page, step));
  if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
  const model = await page.textContent("#model");
  const maxTokensLimit = await page.getAttribute("#max-tokens", "max");
  process.stdout.write(JSON.stringify({ steps, model, maxTokensLimit, requests, consoleErrors }) + "\n");
} finally {
  await browser.close();
}

/** One step: type and send a message, or press Regenerate; then wait for the answer to end. */
async function run(page, step) {
  if (step.seed !== undefined) await page.fill("#seed", String(step.seed));
  const runs = Number(await page.getAttribute("body", "data-runs"));
  await page.evaluate(() => { window.__seen.updates.splice(0); window.__seen.endedAt = null; });
  if (step.regenerate) {
    await page.click("#regenerate");
  } else {
    await page.fill("#prompt", step.send);
    if (step.enter) await page.press("#prompt", "Enter"); // the keyboard path
    else await page.click("#send");
  }
  if (step.stopAfterFirstDelta) {
    await page.waitForFunction(() => window.__seen.updates.some((u) => u.text.length > 0), null, { timeout });
    await page.click("#stop");
  }
  await page.waitForFunction((before) => Number(document.body.dataset.runs) > before, runs, { timeout });
  return await page.evaluate(() => ({
    updates: window.__seen.updates.slice(),
    endedAt: window.__seen.endedAt,
    state: document.body.dataset.state,
    failure: document.body.dataset.failure ?? null,
    transcript: [...document.querySelectorAll("#transcript .turn")].map((li) => ({
      role: li.dataset.role,
      text: li.querySelector(".text").textContent,
      note: li.querySelector(".note").textContent,
    })),
    message: document.getElementById("message").textContent,
    ttft: document.getElementById("ttft").textContent,
    tps: document.getElementById("tps").textContent,
    reason: document.getElementById("reason").textContent,
    regenerateEnabled: !document.getElementById("regenerate").disabled,
  }));
}

/** Records every change of the last turn's text and when each answer ended, in page time. */
function watchTheAnswer() {
  const updates = [];
  const seen = (window.__seen = { updates, endedAt: null });
  new MutationObserver(() => (seen.endedAt = performance.now()))
    .observe(document.body, { attributes: true, attributeFilter: ["data-runs"] });
  const transcript = document.getElementById("transcript");
  new MutationObserver(() => {
    const last = transcript.lastElementChild;
    if (last?.dataset.role === "assistant") {
      updates.push({ at: performance.now(), text: last.querySelector(".text").textContent });
    }
  }).observe(transcript, { childList: true, characterData: true, subtree: true });
}
