// The chat page: keeps the conversation, streams each answer, shows the model and live timings.
// The Envoy URL and a token may come in the URL fragment (#edge=...&token=...), which `make run`
// prints; a fragment never reaches any server, so the token stays in this browser.
import { modelSummary, streamGeneration, type Connection, type Turn } from "./client";
import { Conversation } from "./conversation";
import { explain } from "./errors";
import { Transcript } from "./transcript";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const field = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
const button = (id: string): HTMLButtonElement => $<HTMLButtonElement>(id);

const conversation = new Conversation();
const transcript = new Transcript($<HTMLOListElement>("transcript"));
let running: AbortController | null = null;

function fromFragment(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const edge = params.get("edge");
  const token = params.get("token");
  if (edge) field("edge").value = edge;
  if (token) field("token").value = token;
  if (edge || token) history.replaceState(null, "", location.pathname); // keep the token out of history
}

function connection(): Connection {
  return { edgeUrl: field("edge").value.replace(/\/$/, ""), token: field("token").value.trim() };
}

/** The model's id and limits; a failure here is shown beside the model, not as the chat's state. */
async function describeModel(): Promise<void> {
  const model = $("model");
  try {
    const info = await modelSummary(connection());
    model.textContent =
      `Model: ${info.modelId} · context ${info.contextLength} tokens · ` +
      `input ≤ ${info.maxInputTokens} · answer ≤ ${info.maxNewTokens} tokens`;
    field("max-tokens").max = String(info.maxNewTokens);
  } catch (error) {
    model.textContent = `Model: unknown (${explain(error).message})`;
  }
}

type State = "streaming" | "done" | "stopped" | "error";

function setState(state: State, message = ""): void {
  document.body.dataset.state = state;
  $("message").textContent = message;
  button("send").disabled = state === "streaming";
  button("stop").disabled = state !== "streaming";
  button("regenerate").disabled = state === "streaming" || !conversation.canReask();
  button("clear").disabled = state === "streaming";
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

/** Streams `answer` (the conversation's open turn) from the turns before it. */
async function generate(answer: Turn, fresh: boolean): Promise<void> {
  const seed = field("seed").value.trim();
  const input = {
    ...connection(), // with no token Envoy refuses the call, and the page says so
    messages: conversation.messages($<HTMLTextAreaElement>("system").value),
    temperature: Number(field("temperature").value || 0),
    maxTokens: Number(field("max-tokens").value || 64),
    seed: seed === "" ? undefined : BigInt(seed),
    fresh,
  };
  running = new AbortController();
  transcript.render(conversation.turns);
  for (const id of ["ttft", "tps", "tokens", "reason"]) $(id).textContent = "–";
  delete document.body.dataset.failure;
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
        answer.content += event.text;
        transcript.update(answer);
        showTimings(sentAt, first, event.generatedTokens);
      } else {
        $("reason").textContent = event.cached ? `${event.stopReason} (cached)` : event.stopReason;
      }
    }
    setState("done", started);
  } catch (error) {
    const { failure, message } = explain(error);
    conversation.dropEmptyAnswer();
    transcript.render(conversation.turns);
    if (failure === "stopped" && answer.content !== "") transcript.update(answer, "stopped");
    document.body.dataset.failure = failure;
    setState(failure === "stopped" ? "stopped" : "error", message);
  } finally {
    running = null;
    document.body.dataset.runs = String(Number(document.body.dataset.runs) + 1);
  }
}

function send(): void {
  const prompt = $<HTMLTextAreaElement>("prompt");
  const text = prompt.value.trim();
  if (running !== null || text === "") return;
  prompt.value = "";
  void generate(conversation.ask(text), false);
}

fromFragment();
void describeModel();
for (const id of ["edge", "token"]) field(id).addEventListener("change", () => void describeModel());
$<HTMLFormElement>("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
$("stop").addEventListener("click", () => running?.abort());
$("regenerate").addEventListener("click", () => {
  if (running === null && conversation.canReask()) void generate(conversation.reask(), true);
});
$("clear").addEventListener("click", () => {
  conversation.clear();
  transcript.render(conversation.turns);
  setState("done");
});
