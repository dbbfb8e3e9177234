// Variants of the test tokenizers that exercise the less common pipeline steps (every Split
// behavior, invert, Digits, prefix spaces, Metaspace split, Strip/Replace normalizers, no
// decoder). Each is a base family plus top-level keys replaced; parity.mjs records the official
// library's output for each, and the C++ test applies the same patch.
const split = (pattern, behavior, invert = false, regex = true) => ({
  type: 'Split', pattern: regex ? { Regex: pattern } : { String: pattern }, behavior, invert,
});
const byteLevel = (addPrefixSpace = false, useRegex = false) => ({
  type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: useRegex,
});
const seq = (...pretokenizers) => ({ type: 'Sequence', pretokenizers });

export const kVariants = {
  split_removed: { base: 'gpt2', patch: { pre_tokenizer: seq(split(' ', 'Removed', false, false), byteLevel()) } },
  split_merged_previous: { base: 'gpt2', patch: { pre_tokenizer: seq(split('\\s+', 'MergedWithPrevious'), byteLevel()) } },
  split_merged_next: { base: 'gpt2', patch: { pre_tokenizer: seq(split('\\s+', 'MergedWithNext'), byteLevel()) } },
  split_contiguous: { base: 'gpt2', patch: { pre_tokenizer: seq(split('[\\p{P}\\s]', 'Contiguous'), byteLevel()) } },
  split_invert: { base: 'gpt2', patch: { pre_tokenizer: seq(split('\\p{L}+', 'Isolated', true), byteLevel()) } },
  digits_individual: {
    base: 'llama3',
    patch: { pre_tokenizer: seq({ type: 'Digits', individual_digits: true }, byteLevel(false, true)) },
  },
  digits_grouped: {
    base: 'llama3',
    patch: { pre_tokenizer: seq({ type: 'Digits', individual_digits: false }, byteLevel(false, true)) },
  },
  byte_level_prefix_space: { base: 'gpt2', patch: { pre_tokenizer: byteLevel(true, true) } },
  metaspace_split_always: {
    base: 'mistral',
    patch: { pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true } },
  },
  metaspace_never: {
    base: 'mistral',
    patch: { pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: false } },
  },
  normalizer_strip_replace: {
    base: 'gpt2',
    patch: {
      normalizer: {
        type: 'Sequence', normalizers: [
          { type: 'Strip', strip_left: true, strip_right: true },
          { type: 'Replace', pattern: { String: 'world' }, content: 'dog' },
        ],
      },
    },
  },
  no_decoder: { base: 'llama2', patch: { decoder: null } },
};
