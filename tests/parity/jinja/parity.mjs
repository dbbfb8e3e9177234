// Renders real chat templates with the official JavaScript implementation, @huggingface/jinja,
// and writes what it returns, so the C++ Jinja engine tests can compare outputs exactly.
// Regenerate (after `npm ci` in this folder):
//   node tests/parity/jinja/parity.mjs
// Writes tests/text/testdata/chat_templates/{templates,conversations,expected}.json.
//
// The templates are the `gguf` fields (the chat_template stored in GGUF metadata, i.e. the Hugging
// Face template) of OLLAMA_CHAT_TEMPLATE_MAPPING in @huggingface/ollama-utils. The package does not
// export that array, so it is read from dist/index.js: the source is sliced from
// `var OLLAMA_CHAT_TEMPLATE_MAPPING = [` to the first line that is exactly `];` after it, and that
// array literal (plain JSON-like data: objects, strings, arrays) is evaluated.
//
// "Now" is pinned to 2024-07-26T00:00:00Z (see pinNow below and the README).
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Template } from '@huggingface/jinja';
import { kConversations } from './conversations.mjs';

const require = createRequire(import.meta.url);
// Neither package exports ./package.json; read it next to the resolved entry point (dist/).
const packageVersion = (pkg) =>
  JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve(pkg)), '..', 'package.json'), 'utf8')).version;
const kJinjaVersion = packageVersion('@huggingface/jinja');
const kOllamaUtilsVersion = packageVersion('@huggingface/ollama-utils');

const here = path.dirname(fileURLToPath(import.meta.url));
const kOutDir = path.resolve(here, '../../text/testdata/chat_templates');
const kMaxExpectedBytes = 1.5 * 1024 * 1024;

// --- "now" -------------------------------------------------------------------------------------
// @huggingface/jinja declares `strftime_now` itself (setupGlobals) and Template.render throws
// "Variable already declared: strftime_now" if the context passes one, so the library's own
// strftime_now is kept and what it reads is pinned instead: it calls `new Date()` and formats with
// the local-time getters (getFullYear, getMonth, getDate, getHours, getMinutes) and, for %b / %B,
// `new Intl.DateTimeFormat(undefined, {month: 'short' | 'long'})`. So: the time zone is UTC,
// `new Date()` / Date.now() return 2024-07-26T00:00:00Z, and an Intl.DateTimeFormat built without a
// locale uses en-US in UTC. A probe render checks the result before anything is written.
const kNow = Date.UTC(2024, 6, 26, 0, 0, 0);

function pinNow() {
  process.env.TZ = 'UTC';
  const RealDate = Date;
  class FixedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(kNow);
      else super(...args);
    }
    static now() {
      return kNow;
    }
  }
  globalThis.Date = FixedDate;

  const RealDateTimeFormat = Intl.DateTimeFormat;
  function PinnedDateTimeFormat(locales, options) {
    return new RealDateTimeFormat(locales ?? 'en-US', { timeZone: 'UTC', ...options });
  }
  PinnedDateTimeFormat.prototype = RealDateTimeFormat.prototype;
  PinnedDateTimeFormat.supportedLocalesOf = RealDateTimeFormat.supportedLocalesOf;
  Intl.DateTimeFormat = PinnedDateTimeFormat;

  const probe = new Template('{{ strftime_now("%Y-%m-%d %H:%M") }}|{{ strftime_now("%d %b %Y") }}|' +
    '{{ strftime_now("%B %d, %Y") }}|{{ strftime_now("%%") }}').render({});
  const want = '2024-07-26 00:00|26 Jul 2024|July 26, 2024|%';
  if (probe !== want) throw new Error(`pinning "now" failed: got ${JSON.stringify(probe)}, want ${JSON.stringify(want)}`);
}

// --- templates ---------------------------------------------------------------------------------
function loadOllamaMapping() {
  const file = require.resolve('@huggingface/ollama-utils').replace(/index\.m?js$/, 'index.js');
  const src = fs.readFileSync(file, 'utf8');
  const head = 'var OLLAMA_CHAT_TEMPLATE_MAPPING = ';
  const start = src.indexOf(head);
  const end = src.indexOf('\n];', start);
  if (start < 0 || end < 0) throw new Error(`OLLAMA_CHAT_TEMPLATE_MAPPING not found in ${file}`);
  const mapping = vm.runInNewContext(`(${src.slice(start + head.length, end + 2)})`);
  if (!Array.isArray(mapping) || mapping.some((e) => typeof e.model !== 'string' || typeof e.gguf !== 'string')) {
    throw new Error('unexpected OLLAMA_CHAT_TEMPLATE_MAPPING shape');
  }
  return mapping;
}

// "library/llama3.1:8b" -> "llama3.1-8b"; repeated names get "-2", "-3", ... in mapping order.
function shortName(model, used) {
  const base = model.replace(/^library\//, '').replace(/[:/]/g, '-');
  let name = base;
  for (let i = 2; used.has(name); ++i) name = `${base}-${i}`;
  used.add(name);
  return name;
}

// Realistic bos/eos strings per family. Only consistency matters (both implementations get the
// same strings), but every template must match a rule: there is no silent default.
const kSpecialTokenRules = [
  [/^llama4/, '<|begin_of_text|>', '<|eot|>'],
  [/^(llama3|llama-guard3|cogito-3b|nemotron-70b|dolphin-llama3|firefunction|rnj-1)/, '<|begin_of_text|>', '<|eot_id|>'],
  [/^hermes3/, '<|begin_of_text|>', '<|im_end|>'],
  [/^tulu3/, '<|begin_of_text|>', '<|end_of_text|>'],
  [/^(llama2|mistral|mixtral|devstral|llava-7b|tinyllama|llama-pro|internlm2|nemotron-mini)/, '<s>', '</s>'],
  [/^(dolphin-mixtral|nous-hermes2-mixtral)/, '<s>', '<|im_end|>'],
  [/^openchat/, '<s>', '<|end_of_turn|>'],
  [/^(phi3|llava-phi3|nuextract)/, '<s>', '<|endoftext|>'],
  [/^(phi4|dolphin-phi|dbrx)/, '<|endoftext|>', '<|im_end|>'],
  [/^(gemma|shieldgemma)/, '<bos>', '<eos>'],
  [/^(qwen|qwq|cogito-14b|marco-o1|sailor2|smallthinker|opencoder)/, '', '<|im_end|>'],
  [/^(deepseek|r1-1776|deepcoder)/, '<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>'],
  [/^(command-|aya)/, '<BOS_TOKEN>', '<|END_OF_TURN_TOKEN|>'],
  [/^granite/, '<|end_of_text|>', '<|end_of_text|>'],
  [/^glm4/, '', '<|endoftext|>'],
  [/^(olmo2|stable-code|falcon2)/, '<|endoftext|>', '<|endoftext|>'],
  [/^smollm/, '<|im_start|>', '<|im_end|>'],
  [/^(yi|llava-34b)/, '<|startoftext|>', '<|im_end|>'],
  [/^exaone/, '[BOS]', '[|endofturn|]'],
];

function specialTokens(name) {
  for (const [re, bos, eos] of kSpecialTokenRules) if (re.test(name)) return { bos_token: bos, eos_token: eos };
  throw new Error(`no bos/eos rule for template ${name}; add one to kSpecialTokenRules`);
}

function loadTemplates() {
  const seen = new Map();
  const used = new Set();
  const templates = [];
  for (const entry of loadOllamaMapping()) {
    if (seen.has(entry.gguf)) continue; // identical template text: keep the first model's name
    const name = shortName(entry.model, used);
    seen.set(entry.gguf, name);
    templates.push({ name, template: entry.gguf, ...specialTokens(name) });
  }
  return templates;
}

// --- rendering ---------------------------------------------------------------------------------
// The render context: messages, tools (only when the conversation has them), add_generation_prompt,
// bos_token, eos_token, then every other key of the conversation (e.g. enable_thinking).
function context(template, conversation) {
  const { name, messages, tools, add_generation_prompt, ...extra } = conversation;
  const ctx = { messages };
  if (tools !== undefined) ctx.tools = tools;
  Object.assign(ctx, { add_generation_prompt, bos_token: template.bos_token, eos_token: template.eos_token }, extra);
  return ctx;
}

function renderAll(templates) {
  const expected = [];
  const summary = [];
  for (const template of templates) {
    let parsed = null;
    let parseError = null;
    try {
      parsed = new Template(template.template);
    } catch (err) {
      parseError = String(err.message);
    }
    let ok = 0;
    const errors = [];
    for (const conversation of kConversations) {
      const row = { template: template.name, conversation: conversation.name };
      if (parseError !== null) {
        row.error = parseError;
      } else {
        try {
          // JSON round trip: the render sees exactly what conversations.json holds.
          row.output = parsed.render(JSON.parse(JSON.stringify(context(template, conversation))));
        } catch (err) {
          row.error = String(err.message);
        }
      }
      if ('output' in row) ++ok;
      else errors.push(`${conversation.name}: ${row.error}`);
      expected.push(row);
    }
    summary.push({ name: template.name, ok, errors, parseError });
  }
  return { expected, summary };
}

// One entry per line: small diffs when a template or conversation changes.
function writeJsonLines(file, rows) {
  const text = `[\n${rows.map((r) => JSON.stringify(r)).join(',\n')}\n]\n`;
  fs.writeFileSync(path.join(kOutDir, file), text);
  return Buffer.byteLength(text);
}

pinNow();
const templates = loadTemplates();
const { expected, summary } = renderAll(templates);

fs.mkdirSync(kOutDir, { recursive: true });
const sizes = {
  'templates.json': writeJsonLines('templates.json', templates),
  'conversations.json': writeJsonLines('conversations.json', kConversations),
  'expected.json': writeJsonLines('expected.json', expected),
};
if (sizes['expected.json'] > kMaxExpectedBytes) {
  console.warn(`warning: expected.json is ${sizes['expected.json']} bytes (budget ${kMaxExpectedBytes})`);
}

for (const { name, ok, errors, parseError } of summary) {
  const status = parseError !== null ? `PARSE ERROR: ${parseError}` : `${ok} ok, ${errors.length} errors`;
  console.log(`${name}: ${status}`);
  if (parseError === null) for (const e of errors) console.log(`    ${e}`);
}
const total = expected.length;
const okTotal = expected.filter((r) => 'output' in r).length;
console.log(`@huggingface/jinja ${kJinjaVersion}, @huggingface/ollama-utils ${kOllamaUtilsVersion}: ` +
  `${templates.length} templates x ${kConversations.length} conversations = ${total} renders, ` +
  `${okTotal} ok, ${total - okTotal} errors`);
for (const [file, bytes] of Object.entries(sizes)) console.log(`${file}: ${bytes} bytes`);
