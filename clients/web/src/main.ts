// The chat page: reads the form, streams one generation, renders tokens and live timings.
// The Envoy URL and a token may come in the URL fragment (#edge=...&token=...), which `make run`
// prints; a fragment never reaches any server, so the token stays in this browser.
import { streamGeneration, type GenerationInput } from "./client";
import { explain } from "./errors";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const field = (id: string): HTMLInputElement => $<HTMLInputElement>(id);

let running: AbortController | null = null;

function fromFragment(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const edge = params.get("edge");
  const token = params.get("token");
  if (edge) field("edge").value = edge;
  if (token) field("token").value = token;
  if (edge || token) history.replaceState(null, "", location.pathname); // keep the token out of history
}

function readInput(): GenerationInput {
  const seed = field("seed").value.trim();
  return {
    edgeUrl: field("edge").value.replace(/\/$/, ""),
    token: field("token").value.trim(),
    prompt: $<HTMLTextAreaElement>("prompt").value,
    temperature: Number(field("temperature").value || 0),
    maxTokens: Number(field("max-tokens").value || 64),
    seed: seed === "" ? undefined : BigInt(seed),
  };
}

function setState(state: "streaming" | "done" | "stopped" | "error", message = ""): void {
  document.body.dataset.state = state;
  $("message").textContent = message;
  $<HTMLButtonElement>("send").disabled = state === "streaming";
  $<HTMLButtonElement>("stop").disabled = state !== "streaming";
}

function showTimings(sentAt: number, firstAt: number | null, tokens: number): void {
  if (firstAt === null) return;
  $("ttft").textContent = `${Math.round(firstAt - sentAt)} ms`;
  const seconds = (performance.now() - firstAt) / 1000;
  $("tps").textContent = seconds > 0 && tokens > 1 ? ((tokens - 1) / seconds).toFixed(1) : "–";
  $("tokens").textContent = String(tokens);
}

async function generate(): Promise<void> {
  const input = readInput(); // with no token Envoy refuses the call, and the page says so
  running = new AbortController();
  const output = $("output");
  output.textContent = "";
  for (const id of ["ttft", "tps", "tokens", "reason"]) $(id).textContent = "–";
  setState("streaming");
  const sentAt = performance.now();
  let firstAt: number | null = null;
  let started = "";
  try {
    for await (const event of streamGeneration(input, running.signal)) {
      if (event.kind === "started") {
        started = `seed ${event.seed}, ${event.inputTokens} input tokens`;
        $("message").textContent = started;
      } else if (event.kind === "delta") {
        firstAt ??= performance.now();
        output.textContent += event.text;
        showTimings(sentAt, firstAt, event.generatedTokens);
      } else {
        $("reason").textContent = event.cached ? `${event.stopReason} (cached)` : event.stopReason;
      }
    }
    setState("done", started);
  } catch (error) {
    const { failure, message } = explain(error);
    setState(failure === "stopped" ? "stopped" : "error", message);
    document.body.dataset.failure = failure;
  } finally {
    running = null;
  }
}

fromFragment();
$<HTMLFormElement>("form").addEventListener("submit", (event) => {
  event.preventDefault();
  delete document.body.dataset.failure;
  void generate();
});
$("stop").addEventListener("click", () => running?.abort());
