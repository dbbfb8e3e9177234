// Writes the small, real tokenizer.json files the tokenizer tests use, trained here by a tiny
// deterministic BPE trainer (no model hub, no PyPI). Run from anywhere with Node >= 18:
//   node tests/text/testdata/tokenizers/gen_tokenizers.mjs
// Output (next to this script), one folder per family, each with tokenizer.json and
// tokenizer_config.json (chat template and bos/eos as those families ship them):
//   gpt2/    byte-level BPE, ByteLevel pre-tokenizer with the GPT-2 regex, merges as "a b" strings
//   qwen2/   byte-level BPE, NFC + Split(Qwen2 regex) + ByteLevel, ChatML template
//   llama3/  byte-level BPE, Split(Llama-3 regex) + ByteLevel, merges as [a, b] pairs,
//            ignore_merges, <|begin_of_text|> added by a TemplateProcessing post-processor
//   llama2/  SentencePiece-style BPE: Prepend/Replace "▁" normalizer, byte_fallback <0xNN>
//            tokens, decoder Replace/ByteFallback/Fuse/Strip, [INST] template
//   mistral/ like llama2 but with the newer Metaspace pre-tokenizer (prepend_scheme "first")
// Training is deterministic: the most frequent pair wins, ties go to the smaller pair string.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const kOutDir = path.dirname(fileURLToPath(import.meta.url));

// The built-in training text: prose, code, numbers, whitespace, accents, CJK and emoji, so that
// merges exist for every kind of text the parity corpus throws at the tokenizers.
const kCorpus = [
  `The quick brown fox jumps over the lazy dog. It's a sentence that contains every letter,
and we'll use it again and again: the fox, the dog, the quick jump. They're here; I'm there.
You've seen it before, haven't you? Don't worry, it'd be fine. THE END. The End. the end.`,
  `Large language models are served on a shared pool of accelerators. A worker switches between
models at token granularity, swapping the key-value cache out and loading the next weights.
Serving many models on few GPUs requires careful scheduling of prefill and decode phases.
The scheduler groups requests by model, assigns time quotas, and preempts batches between tokens.`,
  `def tokenize(text):\n    tokens = []\n    for word in text.split():\n        tokens.append(word.lower())\n    return tokens\n\n`,
  `int main(int argc, char** argv) {\n  std::vector<int> values = {1, 2, 3, 42, 1000};\n  for (int v : values) {\n    printf("%d\\n", v);\n  }\n  return 0;\n}\n`,
  `Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 123 1234 12345 2024 2025 3.14159 2.71828 1,000,000 $19.99 50% 7/8`,
  `Dates like 2025-11-25 and times like 15:10:00 UTC appear in logs: [INFO] request 17 finished in 42 ms.`,
  `Café, naïve, résumé, façade, jalapeño, Zürich, São Paulo, Ångström, Œuvre — déjà vu. Über straße.`,
  `Привет мир! Как дела? Это тест токенизатора. Ελληνικά γράμματα. עברית. العربية.`,
  `你好，世界！这是一个分词器的测试。我们在共享的GPU上服务多个模型。日本語のテキストも少しあります。한국어 텍스트.`,
  `Emoji: 😀 😃 😄 🚀 🔥 👍🏽 ❤️ 🇫🇷 👨‍👩‍👧 ✨ 🎉 — mixed with text 🙂 and more text.`,
  `Whitespace   runs    and\ttabs\t\tand\n\nnewlines\r\nCRLF line\r\nendings   \n   indented\n`,
  `{"role": "user", "content": "Hello!"} <html><body><p>Hi &amp; bye</p></body></html> a+b=c; x->y; x==y && y!=z || !w`,
  `Once upon a time, there was a little model that wanted to talk. Every day it read more text and
learned new words. Sometimes it made mistakes, but it kept learning, and one day it could answer
questions about the world, write poems, and explain how tokenizers split text into pieces.`,
];

function trainingText() {
  // Repeat the prose so frequent words merge fully; the rest appears fewer times.
  return kCorpus.map((p, i) => p.repeat(i < 2 || i === 12 ? 4 : 2)).join('\n');
}

// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100 upwards.
function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; ++b) bs.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) bs.push(b);
  for (let b = 0xae; b <= 0xff; ++b) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; ++b) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      ++n;
    }
  }
  const map = new Array(256);
  bs.forEach((b, i) => { map[b] = String.fromCodePoint(cs[i]); });
  return map;
}
const kByteChar = bytesToUnicode();
const byteLevel = (s) => Array.from(Buffer.from(s, 'utf8'), (b) => kByteChar[b]).join('');

// The families' pre-tokenizer regexes exactly as their tokenizer.json files carry them.
const kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const kLlama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const kQwen2Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Node 20 has no inline (?i:...) groups; training only needs an approximation of the split.
function jsRegex(pattern) {
  const noInlineCase = pattern.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)",
    "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])");
  return new RegExp(noInlineCase, 'gu');
}

function countWords(words) {
  const counts = new Map();
  for (const w of words) counts.set(w, (counts.get(w) || 0) + 1);
  return counts;
}

// Plain BPE training over symbol sequences. Returns merges as [left, right] pairs in rank order.
function trainMerges(wordCounts, initialSymbols, numMerges) {
  const words = [];
  for (const [w, c] of wordCounts) words.push({ syms: initialSymbols(w), count: c });
  const merges = [];
  for (let m = 0; m < numMerges; ++m) {
    const pairCounts = new Map();
    for (const { syms, count } of words) {
      for (let i = 0; i + 1 < syms.length; ++i) {
        const key = syms[i] + '\u0000' + syms[i + 1];
        pairCounts.set(key, (pairCounts.get(key) || 0) + count);
      }
    }
    let best = null;
    let bestCount = 1;  // a pair must occur at least twice to be merged
    for (const [key, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const out = [];
      for (let i = 0; i < w.syms.length; ++i) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          ++i;
        } else {
          out.push(w.syms[i]);
        }
      }
      w.syms = out;
    }
  }
  return merges;
}

function addedToken(id, content, special, extra = {}) {
  return {
    id, content, single_word: false, lstrip: false, rstrip: false,
    normalized: !special && (extra.normalized ?? false), special, ...extra,
  };
}

function writeFamily(name, tokenizer, config) {
  const dir = path.join(kOutDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer, null, 1) + '\n');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}

// ---- byte-level families -------------------------------------------------------------------

function byteLevelVocab(regex, numMerges) {
  const words = trainingText().match(jsRegex(regex)).map(byteLevel);
  const merges = trainMerges(countWords(words), (w) => Array.from(w), numMerges);
  const vocab = {};
  let next = 0;
  // Byte symbols in byte order, as GPT-2 and its descendants lay them out.
  for (let b = 0; b < 256; ++b) vocab[kByteChar[b]] = next++;
  for (const [a, b] of merges) {
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  return { vocab, merges, size: next };
}

const kByteLevelDecoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };

function bpeModel(vocab, merges, extra = {}) {
  return {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ...extra, vocab, merges,
  };
}

function gpt2() {
  const { vocab, merges, size } = byteLevelVocab(kGpt2Regex, 900);
  const added = [
    addedToken(size, '<|endoftext|>', true),
    // RoBERTa-style mask: eats the space before it.
    addedToken(size + 1, '<mask>', true, { lstrip: true }),
  ];
  writeFamily('gpt2', {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: kByteLevelDecoder,
    model: bpeModel(vocab, merges.map(([a, b]) => `${a} ${b}`)),
  }, {
    add_prefix_space: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>', model_max_length: 1024, tokenizer_class: 'GPT2Tokenizer',
  });
}

function qwen2() {
  const { vocab, merges, size } = byteLevelVocab(kQwen2Regex, 1000);
  const added = [
    addedToken(size, '<|endoftext|>', true),
    addedToken(size + 1, '<|im_start|>', true),
    addedToken(size + 2, '<|im_end|>', true),
    // Not special: kept by decode(skip_special_tokens = true), as Qwen2.5 ships <tool_call>.
    addedToken(size + 3, '<tool_call>', false),
  ];
  const kQwen2Template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  writeFamily('qwen2', {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: kQwen2Regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: bpeModel(vocab, merges.map(([a, b]) => `${a} ${b}`),
      { continuing_subword_prefix: '', end_of_word_suffix: '' }),
  }, {
    add_prefix_space: false, bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>',
    chat_template: kQwen2Template, model_max_length: 32768, tokenizer_class: 'Qwen2Tokenizer',
    errors: 'replace', split_special_tokens: false,
  });
}

function llama3() {
  const { vocab, merges, size } = byteLevelVocab(kLlama3Regex, 1000);
  const names = ['<|begin_of_text|>', '<|end_of_text|>', '<|reserved_special_token_0|>',
    '<|reserved_special_token_1|>', '<|finetune_right_pad_id|>', '<|reserved_special_token_2|>',
    '<|start_header_id|>', '<|end_header_id|>', '<|eom_id|>', '<|eot_id|>', '<|python_tag|>'];
  const added = names.map((n, i) => addedToken(size + i, n, true));
  const bos = added[0];
  const kLlama3Template = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
  writeFamily('llama3', {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: kLlama3Regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence', processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos.content, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos.content]: { id: bos.content, ids: [bos.id], tokens: [bos.content] } },
        },
      ],
    },
    decoder: kByteLevelDecoder,
    model: bpeModel(vocab, merges, { ignore_merges: true }),
  }, {
    bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: kLlama3Template,
    clean_up_tokenization_spaces: true, model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
  });
}

// ---- SentencePiece-style byte-fallback BPE ---------------------------------------------------

function sentencePieceVocab(numMerges) {
  // SentencePiece sees words with "▁" in place of the space before them.
  const text = trainingText().replace(/\r/g, '');
  const words = [];
  for (const line of text.split('\n')) {
    for (const w of line.split(' ')) if (w.length > 0) words.push('▁' + w);
  }
  const counts = countWords(words);
  // The alphabet: characters seen at least 3 times; rarer ones fall back to <0xNN> bytes.
  const charCounts = new Map();
  for (const [w, c] of counts) for (const ch of w) charCounts.set(ch, (charCounts.get(ch) || 0) + c);
  const alphabet = [...charCounts].filter(([, c]) => c >= 3).map(([ch]) => ch).sort();
  const inAlphabet = new Set(alphabet);
  const merges = trainMerges(counts, (w) => Array.from(w).map((ch) => (inAlphabet.has(ch) ? ch : '\u0001' + ch)), numMerges)
    .filter(([a, b]) => !a.includes('\u0001') && !b.includes('\u0001'));
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let next = 3;
  for (let b = 0; b < 256; ++b) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = next++;
  for (const ch of alphabet) if (!(ch in vocab)) vocab[ch] = next++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  return { vocab, merges };
}

const kSentencePieceAdded = [addedToken(0, '<unk>', true), addedToken(1, '<s>', true), addedToken(2, '</s>', true)];
const kBosPostProcessor = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
};

const kSentencePieceDecoder = {
  type: 'Sequence', decoders: [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
    { type: 'Strip', content: ' ', start: 1, stop: 0 },
  ],
};

function llama2() {
  const { vocab, merges } = sentencePieceVocab(700);
  const kLlama2Template = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
  // A normalized, non-special added token: matched after the normalizer ran, on its own
  // normalized spelling ("▁hello▁world").
  const added = [...kSentencePieceAdded, addedToken(Object.keys(vocab).length, 'hello world', false, { normalized: true })];
  writeFamily('llama2', {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: {
      type: 'Sequence', normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: kBosPostProcessor,
    decoder: kSentencePieceDecoder,
    model: bpeModel(vocab, merges.map(([a, b]) => `${a} ${b}`),
      { unk_token: '<unk>', fuse_unk: true, byte_fallback: true }),
  }, {
    add_bos_token: true, add_eos_token: false,
    bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { __type: 'AddedToken', content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    unk_token: { __type: 'AddedToken', content: '<unk>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    chat_template: kLlama2Template, legacy: false, model_max_length: 4096,
    tokenizer_class: 'LlamaTokenizer',
  });
}

function mistral() {
  const { vocab, merges } = sentencePieceVocab(600);
  const kMistralTemplate = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";
  writeFamily('mistral', {
    version: '1.0', truncation: null, padding: null, added_tokens: kSentencePieceAdded,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: kBosPostProcessor,
    // The decoder Mistral v0.3 ships with its Metaspace pre-tokenizer.
    decoder: kSentencePieceDecoder,
    // Merges as pairs here, the format tokenizers >= 0.20 writes.
    model: bpeModel(vocab, merges, { unk_token: '<unk>', fuse_unk: true, byte_fallback: true }),
  }, {
    add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>',
    chat_template: kMistralTemplate, legacy: false, model_max_length: 32768,
    tokenizer_class: 'LlamaTokenizer',
  });
}

gpt2();
qwen2();
llama3();
llama2();
mistral();
