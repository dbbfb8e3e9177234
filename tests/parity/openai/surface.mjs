// The official `openai` client against a running `aegaeon serve` (or controller), on the parts of
// the OpenAI surface beyond plain chat: n choices (streamed and not), lists of prompts, echo with
// the prompt scored and max_tokens 0 (an lm-evaluation-harness loglikelihood request), logprobs.
//   AEGAEON_URL=http://127.0.0.1:PORT/v1 node surface.mjs
// Exits 1 naming the first check that failed; prints one line per check.
import OpenAI from "openai";

const baseURL = process.env.AEGAEON_URL;
if (!baseURL) {
  console.error("surface.mjs: set AEGAEON_URL=http(s)://HOST:PORT/v1");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: process.env.AEGAEON_API_KEY ?? "none", maxRetries: 0 });

function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}: ${detail}`);
  if (!ok) process.exit(1);
}

const model = (await client.models.list()).data[0].id;
const messages = [{ role: "user", content: "Tell me about the sea" }];

const two = await client.chat.completions.create({ model, messages, n: 2, max_tokens: 8, temperature: 1, seed: 11,
                                                   logprobs: true, top_logprobs: 2 });
check("chat n=2", two.choices.length === 2 && two.choices.every((c, i) => c.index === i),
      two.choices.map((c) => JSON.stringify(c.message.content)).join(" | "));
check("chat n=2 logprobs", two.choices.every((c) => c.logprobs.content.every((t) => t.top_logprobs.length === 2)),
      `${two.choices[0].logprobs.content.length} tokens with 2 alternatives each`);

const texts = ["", ""];
let finishes = 0;
let usage = null;
for await (const chunk of await client.chat.completions.create({ model, messages, n: 2, max_tokens: 8, temperature: 1,
                                                                  seed: 11, stream: true,
                                                                  stream_options: { include_usage: true } })) {
  for (const choice of chunk.choices) {
    texts[choice.index] += choice.delta?.content ?? "";
    if (choice.finish_reason) finishes += 1;
  }
  usage = chunk.usage ?? usage;
}
check("chat n=2 stream", texts.every((t, i) => t === two.choices[i].message.content) && finishes === 2,
      `each choice's deltas add up to the non-streamed choice; usage ${JSON.stringify(usage)}`);

const prompts = ["Once upon a time", "The sea"];
const batch = await client.completions.create({ model, prompt: prompts, n: 2, max_tokens: 4, temperature: 0 });
check("completions prompt list", batch.choices.length === 4 &&
      batch.choices[0].text === batch.choices[1].text && batch.choices[2].text === batch.choices[3].text,
      batch.choices.map((c) => JSON.stringify(c.text)).join(" | "));

const scored = await client.completions.create({ model, prompt: "The sea and the sky", echo: true, max_tokens: 0,
                                                 logprobs: 1 });
const lp = scored.choices[0].logprobs;
check("loglikelihood (echo, max_tokens 0)",
      scored.choices[0].text === "The sea and the sky" && lp.token_logprobs[0] === null &&
      lp.token_logprobs.slice(1).every((x) => x <= 0) && scored.usage.completion_tokens === 0,
      `${lp.tokens.length} prompt tokens, sum of logprobs ${lp.token_logprobs.slice(1).reduce((a, b) => a + b, 0).toFixed(3)}`);
