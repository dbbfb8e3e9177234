// The parity corpus: hand-picked tricky strings plus deterministic random mixes of fragments.
// Shared by parity.mjs (which feeds it to the official Hugging Face tokenizers).

const kHandPicked = [
  '', ' ', '  ', '\n', '\t', '\r\n', 'a', 'A', '.', "'", '0',
  'Hello world', 'Hello world!', ' Hello world', 'Hello  world', 'Hello   world   ',
  'hello\nworld', 'hello\n\nworld', 'hello\r\nworld\r\n', 'line one\nline two\n\n\nline five',
  '   leading spaces', 'trailing spaces   ', '\t\ttabs\tand spaces \t mixed',
  "It's", "it's don't won't I'm you're we've they'll he'd", "IT'S DON'T I'M YOU'RE WE'VE THEY'LL HE'D",
  "'s 't 're 've 'm 'll 'd", "O'Neil's rock'n'roll", 'quotes "double" and \'single\'',
  '1', '12', '123', '1234', '12345', '123456789', '3.14159', '1,000,000', '-42', '+7', '1e10', '0x1F',
  '2025-11-25T15:10:00Z', '$19.99', '50%', 'v1.2.3', 'ipv4 192.168.0.1', 'phone +1 (555) 123-4567',
  'The quick brown fox jumps over the lazy dog.',
  'THE QUICK BROWN FOX', 'tHe QuIcK bRoWn FoX',
  'Large language models are served on a shared pool of accelerators.',
  'def tokenize(text):\n    return text.split()\n',
  'int main() {\n  return 0;\n}\n', 'for (int i = 0; i < n; ++i) { sum += a[i]; }',
  '<html><body>Hi &amp; bye</body></html>', '{"role": "user", "content": "hi"}',
  'a+b=c; x->y; x==y && y!=z || !w', '!!!???...,,,;;;', '...', '---', '___', '***', '#include <vector>',
  'https://example.com/path?query=1&x=y#frag', 'user@example.com', 'C:\\Windows\\System32',
  'Café', 'naïve résumé façade', 'Zürich straße Ångström', 'jalapeño São Paulo',
  'e\u0301', 'Cafe\u0301', 'A\u030A', '\u1100\u1161\u11A8', 'n\u0303o', 'o\u0308\u0301',
  'Привет мир', 'Как дела?', 'Ελληνικά', 'עברית', 'العربية', 'हिन्दी', 'ไทย',
  '你好', '你好，世界！', '这是一个分词器的测试。', '日本語のテキスト', 'カタカナ', '한국어 텍스트', '漢字かな交じり文',
  '😀', '😀😃😄', '🚀 launch', '👍🏽', '❤️', '🇫🇷🇩🇪', '👨‍👩‍👧', '✨🎉', 'emoji😀inside', '🙂 and text 🙂',
  '\u200b', 'zero\u200bwidth', '\u00a0nbsp\u00a0', '\u3000ideographic space', 'bom\ufeffinside',
  '\u202eRTL override', 'control\u0001\u0002chars', 'nul\u0000byte', 'tab\u000bvt\u000cff', '\u0085nel',
  '\ufffd', 'replacement \ufffd char', '\u2028line sep\u2029para sep',
  'ℌ𝔢𝔩𝔩𝔬 𝕨𝕠𝕣𝕝𝕕', 'ﬁ ligature', 'Ⅻ roman', '½ ¾ ²', '①②③', '٣٤٥ arabic digits', '१२३',
  'a'.repeat(300), 'ab '.repeat(50), ' '.repeat(40) + 'x', '\n'.repeat(10), 'x' + ' '.repeat(17) + 'y',
  'supercalifragilisticexpialidocious', 'antidisestablishmentarianism',
  'snake_case_identifier', 'camelCaseIdentifier', 'PascalCaseIdentifier', 'kebab-case-identifier',
  '<s>', '</s>', '<unk>', '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|eot_id|>',
  '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>',
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n',
  '<s>[INST] Hello [/INST] Hi there </s>', 'text<|endoftext|>more text', 'a <mask> b', 'a<mask>b', 'a   <mask>',
  '<|im_start|><|im_start|>', '<|im_start', 'im_start|>', '<|IM_START|>', '< s >', '<<s>>', '<s><s></s>',
  '<tool_call>{"name": "f"}', 'x<tool_call>y', '<|reserved_special_token_0|>', '<|python_tag|>print(1)',
  'hello world', 'say hello world!', 'hello worlds', 'hello  world', 'Hello world', 'hello world<s>hello world',
  '▁', '▁hello', 'hello▁world', '<0x41>', '<0xFF>', 'Ġhello', 'Ċ',
];

const kFragments = [
  'the', ' The', ' model', 'serving', ' GPU', ' tokens', 'token', "'s", "'re", ' 42', '2025', '3.5',
  ' ', '  ', '\n', '\n\n', '\t', '\r\n', '!', '?', '...', ', ', '. ', '"', '(', ')', '[', ']', '{', '}',
  'é', 'ñ', 'ü', 'ß', 'Ω', 'Ж', 'ж', '中', '文', '字', 'の', 'は', '한', '😀', '🔥', '👍🏽', '🇯🇵',
  '<|im_start|>', '<|im_end|>', '<s>', '</s>', '<|eot_id|>', '<|endoftext|>', '<mask>', '<tool_call>',
  'print(x)', 'x = y + 1', '->', '==', '//', '/*', '*/', '#', '@', '$', '%', '&&', '||',
  'Hello', 'world', 'quick', 'brown', 'fox', 'jumps', 'lazy', 'dog', 'café', 'naïve', 'e\u0301',
];

// Deterministic xorshift32, so the corpus never changes between runs.
function makeRandom(seed) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

export function corpus() {
  const rand = makeRandom(20251125);
  const mixes = [];
  for (let i = 0; i < 120; ++i) {
    const n = 2 + (rand() % 12);
    let s = '';
    for (let k = 0; k < n; ++k) s += kFragments[rand() % kFragments.length];
    mixes.push(s);
  }
  return [...kHandPicked, ...mixes];
}
