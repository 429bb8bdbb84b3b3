// The page's two calls to Seseragi over gRPC-Web through Envoy: one streamed chat turn, as events
// the page (and the Node check) render, and the model's description. Shared by the browser bundle
// and the Node script, so both exercise the same code.
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  CachePolicy,
  GenerateStreamRequestSchema,
  GenerationService,
  StopReason,
} from "./gen/seseragi/v1/generation_pb";

export interface Connection {
  edgeUrl: string; // Envoy's listener, e.g. http://127.0.0.1:8080
  token: string; // a JWT Envoy accepts (`seseragi token --sub alice`)
}

export type Role = "system" | "user" | "assistant";

export interface Turn {
  role: Role;
  content: string;
}

export interface GenerationInput extends Connection {
  messages: Turn[]; // the whole conversation so far, ending with the user's turn
  temperature: number;
  maxTokens: number;
  seed?: bigint;
  fresh?: boolean; // skip the result cache's answer (Regenerate), but store the new one
}

export type GenerationEvent =
  | { kind: "started"; seed: bigint; inputTokens: number }
  | { kind: "delta"; text: string; generatedTokens: number }
  | { kind: "final"; stopReason: string; outputTokens: number; cached: boolean };

export interface ModelSummary {
  modelId: string;
  contextLength: number;
  maxInputTokens: number;
  maxNewTokens: number;
  defaultMaxNewTokens: number;
}

function connect(connection: Connection): {
  client: Client<typeof GenerationService>;
  headers: Record<string, string>;
} {
  const transport = createGrpcWebTransport({ baseUrl: connection.edgeUrl });
  const headers = { authorization: `Bearer ${connection.token}` };
  return { client: createClient(GenerationService, transport), headers };
}

/** Yields the stream's events as they arrive; aborting `signal` cancels the call upstream. */
export async function* streamGeneration(
  input: GenerationInput,
  signal: AbortSignal,
): AsyncGenerator<GenerationEvent> {
  const { client, headers } = connect(input);
  const request = create(GenerateStreamRequestSchema, {
    messages: input.messages,
    sampling: { temperature: input.temperature, seed: input.seed },
    stopping: { maxNewTokens: input.maxTokens },
    cache: input.fresh ? CachePolicy.REFRESH : CachePolicy.UNSPECIFIED,
  });
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

/** The served model's id and the limits a chat turn must respect. */
export async function modelSummary(connection: Connection): Promise<ModelSummary> {
  const { client, headers } = connect(connection);
  const info = await client.getModelInfo({}, { headers });
  return {
    modelId: info.modelId,
    contextLength: info.contextLength,
    maxInputTokens: info.limits?.maxInputTokens ?? 0,
    maxNewTokens: info.limits?.maxNewTokens ?? 0,
    defaultMaxNewTokens: info.limits?.defaultMaxNewTokens ?? 0,
  };
}
