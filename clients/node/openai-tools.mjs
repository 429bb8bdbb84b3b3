#!/usr/bin/env node
// A tool call through Seseragi's OpenAI-compatible API with the official `openai` npm package.
// The request names the function (`tool_choice`), so the server enforces the call's JSON by
// grammar and even the small default model answers with a valid `tool_calls` entry.
//   SESERAGI_TOKEN=... node openai-tools.mjs [--base-url http://127.0.0.1:8080/v1] "question"
import OpenAI from "openai";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: {
    "base-url": { type: "string", default: "http://127.0.0.1:8080/v1" },
    model: { type: "string", default: "smollm2-135m-instruct" },
  },
  allowPositionals: true,
});
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
      additionalProperties: false,
    },
  },
};
const client = new OpenAI({
  baseURL: values["base-url"],
  apiKey: process.env.SESERAGI_TOKEN,
  maxRetries: 0,
});
try {
  const reply = await client.chat.completions.create({
    model: values.model,
    messages: [{ role: "user", content: positionals[0] ?? "What is the weather in Tokyo?" }],
    tools: [weather],
    tool_choice: { type: "function", function: { name: "get_weather" } },
    temperature: 0,
    max_tokens: 64,
  });
  const [choice] = reply.choices;
  for (const call of choice.message.tool_calls ?? []) {
    console.log(`${call.function.name} ${call.function.arguments}`);
  }
  console.log(`finish_reason: ${choice.finish_reason}`);
} catch (error) {
  if (error instanceof OpenAI.APIError) {
    console.error(`${error.constructor.name} ${error.status}: ${error.message}`);
    process.exit(2);
  }
  throw error;
}
