// Node check of the gRPC-Web path: the page's own client code (connect-web over fetch) streams
// one generation through Envoy and prints each event as a JSON line with its arrival time, so a
// test can see that deltas arrive one by one and not all at the end.
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { streamGeneration } from "../src/client";

const { values } = parseArgs({
  options: {
    edge: { type: "string", default: "http://127.0.0.1:8080" },
    token: { type: "string", default: process.env.SESERAGI_TOKEN ?? "" },
    prompt: { type: "string", default: "Name three rivers." },
    "max-tokens": { type: "string", default: "24" },
    seed: { type: "string" },
  },
});

function print(record: object): void {
  const at = performance.now();
  process.stdout.write(JSON.stringify({ ...record, at }, (_, v) => (typeof v === "bigint" ? String(v) : v)) + "\n");
}

try {
  const input = {
    edgeUrl: values.edge,
    token: values.token,
    messages: [{ role: "user" as const, content: values.prompt }],
    temperature: 0,
    maxTokens: Number(values["max-tokens"]),
    seed: values.seed === undefined ? undefined : BigInt(values.seed),
  };
  for await (const event of streamGeneration(input, new AbortController().signal)) print(event);
} catch (error) {
  const e = ConnectError.from(error);
  print({ kind: "error", code: e.code, message: e.rawMessage });
  process.exitCode = 1;
}
