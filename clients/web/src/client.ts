// One streamed generation over gRPC-Web through Envoy, as events the page (and the Node check)
// render. Shared by the browser bundle and the Node script, so both exercise the same code.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  GenerateStreamRequestSchema,
  GenerationService,
  StopReason,
} from "./gen/seseragi/v1/generation_pb";

export interface GenerationInput {
  edgeUrl: string; // Envoy's listener, e.g. http://127.0.0.1:8080
  token: string; // a JWT Envoy accepts (`seseragi token --sub alice`)
  prompt: string;
  temperature: number;
  maxTokens: number;
  seed?: bigint;
}

export type GenerationEvent =
  | { kind: "started"; seed: bigint; inputTokens: number }
  | { kind: "delta"; text: string; generatedTokens: number }
  | { kind: "final"; stopReason: string; outputTokens: number; cached: boolean };

/** Yields the stream's events as they arrive; aborting `signal` cancels the call upstream. */
export async function* streamGeneration(
  input: GenerationInput,
  signal: AbortSignal,
): AsyncGenerator<GenerationEvent> {
  const transport = createGrpcWebTransport({ baseUrl: input.edgeUrl });
  const client = createClient(GenerationService, transport);
  const request = create(GenerateStreamRequestSchema, {
    messages: [{ role: "user", content: input.prompt }],
    sampling: { temperature: input.temperature, seed: input.seed },
    stopping: { maxNewTokens: input.maxTokens },
  });
  const headers = { authorization: `Bearer ${input.token}` };
  for await (const message of client.generateStream(request, { signal, headers })) {
    const event = message.event;
    if (event.case === "started") {
      yield { kind: "started", seed: event.value.seed, inputTokens: event.value.inputTokenCount };
    } else if (event.case === "delta") {
      yield { kind: "delta", text: event.value.text, generatedTokens: event.value.generatedTokenCount };
    } else if (event.case === "final") {
      yield {
        kind: "final",
        stopReason: StopReason[event.value.stopReason].replace("STOP_REASON_", ""),
        outputTokens: event.value.usage?.outputTokens ?? 0,
        cached: event.value.cached,
      };
    }
  }
}
