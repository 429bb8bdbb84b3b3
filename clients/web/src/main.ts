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

interface First {
  at: number; // when the first delta arrived
  tokens: number; // tokens it carried
}

/** Tokens/s counts tokens after the first delta, so a cached answer (one delta) shows none. */
function showTimings(sentAt: number, first: First, tokens: number): void {
  $("ttft").textContent = `${Math.round(first.at - sentAt)} ms`;
  const seconds = (performance.now() - first.at) / 1000;
  const later = tokens - first.tokens;
  $("tps").textContent = later > 0 && seconds > 0 ? (later / seconds).toFixed(1) : "–";
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
  let first: First | null = null;
  let started = "";
  try {
    for await (const event of streamGeneration(input, running.signal)) {
      if (event.kind === "started") {
        started = `seed ${event.seed}, ${event.inputTokens} input tokens`;
        $("message").textContent = started;
      } else if (event.kind === "delta") {
        first ??= { at: performance.now(), tokens: event.generatedTokens };
        output.textContent += event.text;
        showTimings(sentAt, first, event.generatedTokens);
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
