// The official `openai` client against a running `aegaeon serve` (or controller) over HTTPS.
//   AEGAEON_URL=https://127.0.0.1:PORT/v1 NODE_EXTRA_CA_CERTS=ca.pem node https.mjs
// Lists the models, then for the first one: a chat completion, a streamed chat completion and a
// streamed completion, each checked for what the client returns. Exits 1 naming the first
// check that failed; prints one line per check.
import OpenAI from "openai";

const baseURL = process.env.AEGAEON_URL;
if (!baseURL?.startsWith("https://")) {
  console.error("https.mjs: set AEGAEON_URL=https://HOST:PORT/v1 (and NODE_EXTRA_CA_CERTS to the CA)");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: process.env.AEGAEON_API_KEY ?? "none", maxRetries: 0 });

function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}: ${detail}`);
  if (!ok) process.exit(1);
}

const models = (await client.models.list()).data.map((m) => m.id);
check("models.list", models.length > 0, models.join(", "));
const model = models[0];
const messages = [{ role: "user", content: "Hello over TLS" }];

const chat = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
check("chat.completions", chat.choices.length === 1 && chat.usage.completion_tokens >= 1,
      `${chat.usage.completion_tokens} tokens, finish ${chat.choices[0].finish_reason}`);

let deltas = "";
let finish = null;
for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0,
                                                                  stream: true })) {
  deltas += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
check("chat.completions stream", deltas === chat.choices[0].message.content && finish !== null,
      `same text as the non-streamed answer (${JSON.stringify(deltas)}), finish ${finish}`);

let text = "";
for await (const chunk of await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8,
                                                             temperature: 0, stream: true })) {
  text += chunk.choices[0]?.text ?? "";
}
check("completions stream", text.length > 0, JSON.stringify(text));
