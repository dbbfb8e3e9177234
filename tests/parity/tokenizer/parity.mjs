// Encodes the parity corpus with the official Hugging Face `tokenizers` (npm bindings of the
// Rust library) for every test tokenizer and writes what it returns, so the C++ tokenizer test
// (tests/text/tokenizer_parity_test.cpp) can compare ids and decoded text exactly.
// Regenerate (after `npm ci` in this folder):
//   node tests/parity/tokenizer/parity.mjs
// Writes tests/text/testdata/tokenizers/<family>/hf_expected.json and, for the pipeline
// variants of variants.mjs (on every fourth corpus string), variants_hf_expected.json.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { corpus } from './corpus.mjs';
import { kVariants } from './variants.mjs';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const kVersion = require('tokenizers/package.json').version;

const here = path.dirname(fileURLToPath(import.meta.url));
const kDataDir = path.resolve(here, '../../text/testdata/tokenizers');
// The hand-made family tokenizers, then the ones `aegaeon model synth` writes (trained by our
// C++ BPE trainer; see testdata/tokenizers/synth_tokenizers.sh).
const kFamilies = ['gpt2', 'qwen2', 'llama3', 'llama2', 'mistral', 'synth-qwen2', 'synth-llama', 'synth-mistral'];

async function run(tokenizer, texts) {
  const cases = [];
  for (const text of texts) {
    const plain = await tokenizer.encode(text, null, { addSpecialTokens: false });
    const withSpecial = await tokenizer.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    cases.push({
      text,
      ids,
      ids_with_special: withSpecial.getIds(),
      decoded: await tokenizer.decode(ids, false),
      decoded_skip_special: await tokenizer.decode(ids, true),
    });
  }
  return cases;
}

const texts = corpus();
for (const family of kFamilies) {
  const cases = await run(Tokenizer.fromFile(path.join(kDataDir, family, 'tokenizer.json')), texts);
  const out = { generator: `tokenizers (npm) ${kVersion}`, family, cases };
  fs.writeFileSync(path.join(kDataDir, family, 'hf_expected.json'), JSON.stringify(out) + '\n');
  console.log(`${family}: ${cases.length} strings`);
}

const variants = {};
for (const [name, { base, patch }] of Object.entries(kVariants)) {
  const doc = JSON.parse(fs.readFileSync(path.join(kDataDir, base, 'tokenizer.json'), 'utf8'));
  Object.assign(doc, patch);
  const cases = await run(Tokenizer.fromString(JSON.stringify(doc)), texts.filter((_, i) => i % 4 === 0));
  variants[name] = { base, patch, cases };
  console.log(`variant ${name}: ${cases.length} strings`);
}
fs.writeFileSync(path.join(kDataDir, 'variants_hf_expected.json'),
  JSON.stringify({ generator: `tokenizers (npm) ${kVersion}`, variants }) + '\n');
