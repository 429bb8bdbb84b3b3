#!/usr/bin/env node
// Stream one Seseragi generation through Envoy and print the text as it arrives, then the stop
// reason and token counts. The protos are loaded at run time from the repository's protos/
// (@grpc/proto-loader), so there is no generated code to keep current.
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTOS = fileURLToPath(new URL("../../protos", import.meta.url));

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    addr: { type: "string", default: "127.0.0.1:8080" },
    token: { type: "string", default: process.env.SESERAGI_TOKEN ?? "" },
    "max-tokens": { type: "string", default: "64" },
    temperature: { type: "string", default: "0" },
    seed: { type: "string" },
    timeout: { type: "string", default: "120" },
  },
});
if (positionals.length !== 1 || !values.token) {
  console.error("usage: node stream.mjs [--addr H:P] [--token T | $SESERAGI_TOKEN] [--max-tokens N]");
  console.error("                       [--temperature T] [--seed S] PROMPT");
  process.exit(2);
}

const definition = protoLoader.loadSync("seseragi/v1/generation.proto", {
  includeDirs: [PROTOS],
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { GenerationService } = grpc.loadPackageDefinition(definition).seseragi.v1;
// Plaintext to Envoy on loopback; use grpc.credentials.createSsl() for a TLS edge.
const client = new GenerationService(values.addr, grpc.credentials.createInsecure());

const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${values.token}`);
const request = {
  messages: [{ role: "user", content: positionals[0] }],
  sampling: { temperature: Number(values.temperature), ...(values.seed ? { seed: values.seed } : {}) },
  stopping: { maxNewTokens: Number(values["max-tokens"]) },
};
const deadline = new Date(Date.now() + Number(values.timeout) * 1000);
const call = client.generateStream(request, metadata, { deadline });
// Ctrl-C cancels the call, which stops the generation on the server.
process.once("SIGINT", () => call.cancel());

call.on("data", (event) => {
  if (event.event === "delta") process.stdout.write(event.delta.text);
  if (event.event === "final") {
    const { stopReason, usage } = event.final;
    const reason = stopReason.replace("STOP_REASON_", "");
    process.stdout.write(
      `\n[${reason}, ${usage.inputTokens} input tokens, ${usage.outputTokens} output tokens]\n`,
    );
  }
});
call.on("error", (error) => {
  console.error(`error: ${grpc.status[error.code]}: ${error.details}`);
  process.exitCode = 1;
});
call.on("status", () => client.close());
