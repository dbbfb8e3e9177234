// The conversations every chat template is rendered with (written to conversations.json by
// parity.mjs). Each is what a real client sends: OpenAI-style messages, optional OpenAI-format
// tool definitions, add_generation_prompt, and any other key is an extra template variable
// (e.g. enable_thinking). Tool calls follow the Hugging Face convention: arguments is an object
// (one variant sends the JSON string OpenAI clients send).

const kWeatherTool = {
  type: 'function',
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and country, e.g. Paris, France' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'], description: 'The temperature unit' },
        options: {
          type: 'object',
          description: 'Extra options',
          properties: {
            include_forecast: { type: 'boolean', description: 'Also return a short forecast' },
            days: { type: 'integer', description: 'Number of forecast days' },
          },
        },
      },
      required: ['location'],
    },
  },
};

const kSearchTool = {
  type: 'function',
  function: {
    name: 'search_web',
    description: 'Search the web and return the top results',
    parameters: {
      type: 'object',
      properties: {
        query: { type: 'string', description: 'The search query' },
        max_results: { type: 'integer', description: 'How many results to return' },
      },
      required: ['query'],
    },
  },
};

// Characters that need JSON escaping or are outside ASCII (quote, backslash, newline, tab,
// '<', '&', apostrophe, accents, CJK, an emoji outside the BMP).
const kTrickyTool = {
  type: 'function',
  function: {
    name: 'translate_text',
    description: 'Translate "quoted" text, keep C:\\paths\\ and <tags> & \'apostrophes\'.\nSecond line: café, 日本語, 🌍',
    parameters: {
      type: 'object',
      properties: {
        text: { type: 'string', description: 'Text to translate, e.g. "Grüß Gott" or 你好' },
        target: { type: 'string', enum: ['fr', 'ja', 'zh-Hans'], description: 'Target language' },
      },
      required: ['text', 'target'],
    },
  },
};

const kSystem = 'You are a helpful assistant.';
const kMultiTurn = [
  { role: 'system', content: kSystem },
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'The capital of France is Paris.' },
  { role: 'user', content: 'And how many people live there?' },
];

const kWeatherQuestion = { role: 'user', content: 'What is the weather like in Paris today?' };
const kToolResult = '{"temperature": 22, "unit": "celsius", "condition": "sunny"}';

export const kConversations = [
  {
    name: 'single_user',
    messages: [{ role: 'user', content: 'Hello! How are you?' }],
    add_generation_prompt: true,
  },
  {
    name: 'system_multi_turn',
    messages: kMultiTurn,
    add_generation_prompt: true,
  },
  {
    name: 'system_multi_turn_no_gen',
    messages: kMultiTurn,
    add_generation_prompt: false,
  },
  {
    name: 'developer_role',
    messages: [
      { role: 'developer', content: 'Answer in one short sentence.' },
      { role: 'user', content: 'Why is the sky blue?' },
    ],
    add_generation_prompt: true,
  },
  {
    name: 'tools_user',
    messages: [{ role: 'system', content: kSystem }, kWeatherQuestion],
    tools: [kWeatherTool, kSearchTool],
    add_generation_prompt: true,
  },
  {
    // Tool call with object arguments (Hugging Face convention), tool result, final answer. The
    // calling turn has content '' (with no content key at all, as in the transformers docs, most
    // templates fail on `'...' + undefined`).
    name: 'tool_call_roundtrip',
    messages: [
      kWeatherQuestion,
      {
        role: 'assistant',
        content: '',
        tool_calls: [{
          id: 'call_abc123',
          type: 'function',
          function: { name: 'get_current_weather', arguments: { location: 'Paris, France', unit: 'celsius' } },
        }],
      },
      { role: 'tool', tool_call_id: 'call_abc123', name: 'get_current_weather', content: kToolResult },
      { role: 'assistant', content: 'It is 22 °C and sunny in Paris right now.' },
    ],
    tools: [kWeatherTool],
    add_generation_prompt: false,
  },
  {
    // OpenAI-client style: arguments is a JSON string, and the calling turn also has text; ends
    // with the tool result so the model answers next.
    name: 'tool_call_string_args',
    messages: [
      kWeatherQuestion,
      {
        role: 'assistant',
        content: 'Let me check the weather for you.',
        tool_calls: [{
          id: 'call_def456',
          type: 'function',
          function: { name: 'get_current_weather', arguments: '{"location": "Paris, France", "unit": "celsius"}' },
        }],
      },
      { role: 'tool', tool_call_id: 'call_def456', name: 'get_current_weather', content: kToolResult },
    ],
    tools: [kWeatherTool],
    add_generation_prompt: true,
  },
  {
    name: 'multipart_content',
    messages: [
      { role: 'system', content: kSystem },
      { role: 'user', content: [{ type: 'text', text: 'Summarize this:' }, { type: 'text', text: 'The quick brown fox.' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'A fox is quick and brown.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Shorter, please.' }] },
    ],
    add_generation_prompt: true,
  },
  {
    name: 'special_chars',
    messages: [
      { role: 'system', content: 'Réponds en français. Use <b>tags</b> & "quotes" when needed.' },
      { role: 'user', content: 'Translate: "It\'s 5 < 6 & 7 > 3"\nPath: C:\\Users\\me\tTab\nEmoji: 👋🏽 🌍, CJK: 你好，世界 / こんにちは' },
      { role: 'assistant', content: '« C\'est 5 < 6 & 7 > 3 » — 👍' },
      { role: 'user', content: 'Merci ! Now 日本語 please.' },
    ],
    tools: [kTrickyTool],
    add_generation_prompt: true,
  },
  {
    name: 'assistant_first',
    messages: [
      { role: 'assistant', content: 'Hi! I am your assistant. What can I do for you?' },
      { role: 'user', content: 'Tell me a joke.' },
    ],
    add_generation_prompt: true,
  },
  {
    name: 'consecutive_users',
    messages: [
      { role: 'user', content: 'I have a question.' },
      { role: 'user', content: 'What is 2 + 2?' },
    ],
    add_generation_prompt: true,
  },
  {
    name: 'empty_content',
    messages: [
      { role: 'system', content: '' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '' },
      { role: 'user', content: '' },
    ],
    add_generation_prompt: true,
  },
  {
    // Qwen3/QwQ/DeepSeek-R1 templates drop the reasoning of earlier assistant turns.
    name: 'thinking_history',
    messages: [
      { role: 'user', content: 'What is 17 * 3?' },
      { role: 'assistant', content: '<think>\n17 * 3 = 51.\n</think>\n\nThe answer is 51.' },
      { role: 'user', content: 'And 51 / 3?' },
    ],
    add_generation_prompt: true,
  },
  {
    name: 'enable_thinking_false',
    messages: [{ role: 'user', content: 'Give me a one-word greeting.' }],
    add_generation_prompt: true,
    enable_thinking: false,
  },
];
