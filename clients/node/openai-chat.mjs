#!/usr/bin/env node
// Chat with Seseragi through Envoy with the official `openai` npm package: the Seseragi token is
// the API key. Streams the answer, then prints the usage line.
//   SESERAGI_TOKEN=... node openai-chat.mjs [--base-url http://127.0.0.1:8080/v1] "question"
import OpenAI from "openai";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: {
    "base-url": { type: "string", default: "http://127.0.0.1:8080/v1" },
    model: { type: "string", default: "smollm2-135m-instruct" },
    "max-tokens": { type: "string", default: "64" },
  },
  allowPositionals: true,
});
const client = new OpenAI({
  baseURL: values["base-url"],
  apiKey: process.env.SESERAGI_TOKEN,
  maxRetries: 0,
});
try {
  const stream = await client.chat.completions.create({
    model: values.model,
    messages: [{ role: "user", content: positionals[0] ?? "What is the capital of France?" }],
    temperature: 0,
    max_tokens: Number(values["max-tokens"]),
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (chunk.choices.length) process.stdout.write(chunk.choices[0].delta.content ?? "");
    else console.log(`\nusage: ${chunk.usage.prompt_tokens} in, ${chunk.usage.completion_tokens} out`);
  }
} catch (error) {
  if (error instanceof OpenAI.APIError) {
    console.error(`${error.constructor.name} ${error.status}: ${error.message}`);
    process.exit(2);
  }
  throw error;
}
