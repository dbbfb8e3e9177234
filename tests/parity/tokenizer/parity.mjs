// Encodes the parity corpus with the official Hugging Face `tokenizers` (npm bindings of the
// Rust library) for every test tokenizer and writes what it returns, so the C++ tokenizer test
// (tests/gpu/model/tokenizer_parity_test.cpp) can compare ids and decoded text exactly.
// Regenerate (after `npm ci` in this folder):
//   node tests/parity/tokenizer/parity.mjs
// Writes tests/gpu/model/testdata/tokenizers/<family>/hf_expected.json.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { corpus } from './corpus.mjs';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const kVersion = require('tokenizers/package.json').version;

const here = path.dirname(fileURLToPath(import.meta.url));
const kDataDir = path.resolve(here, '../../gpu/model/testdata/tokenizers');
const kFamilies = ['gpt2', 'qwen2', 'llama3', 'llama2', 'mistral'];

const texts = corpus();
for (const family of kFamilies) {
  const tokenizer = Tokenizer.fromFile(path.join(kDataDir, family, 'tokenizer.json'));
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
  const out = { generator: `tokenizers (npm) ${kVersion}`, family, cases };
  fs.writeFileSync(path.join(kDataDir, family, 'hf_expected.json'), JSON.stringify(out) + '\n');
  console.log(`${family}: ${cases.length} strings`);
}
