#include "text/constrained_decoding.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "text/json_grammar.hpp"

namespace aegaeon::text {

using Mask = std::vector<std::uint64_t>;

struct StructuredOutputs::Vocabulary {
  std::size_t size = 0;                // the id space
  std::vector<std::string> bytes;      // per id; empty: never allowed (special or unknown)
  std::vector<std::int32_t> sorted;    // ids with bytes, ordered by them
  std::vector<std::uint32_t> shared;   // sorted[i]: bytes in common with sorted[i - 1]
  std::size_t longest = 0;             // bytes of the longest token
};

// One schema's grammar over the vocabulary, shared by every sequence that uses it.
struct StructuredOutputs::Compiled {
  std::shared_ptr<const Vocabulary> vocabulary;
  std::shared_ptr<const JsonGrammar> grammar;
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const Mask>> masks;  // by JsonGrammar::append_key

  std::shared_ptr<const Mask> mask(const JsonGrammar::State& state) {
    std::string key;
    JsonGrammar::append_key(state, key);
    {
      std::lock_guard lock(mutex);
      if (auto found = masks.find(key); found != masks.end()) return found->second;
    }
    auto computed = std::make_shared<const Mask>(compute(state));
    std::lock_guard lock(mutex);
    const std::size_t mask_bytes = computed->size() * sizeof(std::uint64_t);
    if ((masks.size() + 1) * mask_bytes > kMaskCacheBytes) masks.clear();  // rarely: a schema with many states
    masks.emplace(std::move(key), computed);
    return computed;
  }

  // Reads every token from `state`, in byte order: `at[d]` is the state after the first d bytes
  // of the token last read, so the next token starts from its bytes in common with it.
  [[nodiscard]] Mask compute(const JsonGrammar::State& state) const {
    const Vocabulary& v = *vocabulary;
    Mask mask((v.size + 63) / 64, 0);
    std::vector<JsonGrammar::State> at(v.longest + 1);
    at[0] = state;
    std::size_t dead = std::numeric_limits<std::size_t>::max();  // the last token read died after this many bytes
    for (std::size_t i = 0; i < v.sorted.size(); ++i) {
      const std::int32_t id = v.sorted[i];
      const std::string& bytes = v.bytes[static_cast<std::size_t>(id)];
      std::size_t depth = v.shared[i];
      if (depth >= dead) continue;  // starts with the prefix that died
      dead = std::numeric_limits<std::size_t>::max();
      for (; depth < bytes.size(); ++depth) {
        grammar->step(at[depth], static_cast<std::uint8_t>(bytes[depth]), at[depth + 1]);
        if (at[depth + 1].empty()) {
          dead = depth + 1;
          break;
        }
      }
      if (depth == bytes.size() && !at[depth].empty()) {
        mask[static_cast<std::size_t>(id) / 64] |= std::uint64_t{1} << (static_cast<unsigned>(id) % 64);
      }
    }
    return mask;
  }
};

namespace {

class JsonConstraint final : public core::TokenConstraint {
 public:
  JsonConstraint(std::shared_ptr<StructuredOutputs::Compiled> compiled, JsonGrammar::State state)
      : compiled_(std::move(compiled)), state_(std::move(state)) {}

  [[nodiscard]] std::unique_ptr<core::TokenConstraint> clone() const override {
    return std::make_unique<JsonConstraint>(*this);
  }

  std::span<const std::uint64_t> allowed() override {
    if (!mask_) mask_ = compiled_->mask(state_);
    return *mask_;
  }

  [[nodiscard]] bool complete() const override { return compiled_->grammar->complete(state_); }

  bool advance(std::int32_t token) override {
    const auto& bytes = compiled_->vocabulary->bytes;
    if (token < 0 || static_cast<std::size_t>(token) >= bytes.size()) return false;
    const std::string& text = bytes[static_cast<std::size_t>(token)];
    if (text.empty()) return false;
    JsonGrammar::State state = state_;
    JsonGrammar::State next;
    for (char c : text) {
      compiled_->grammar->step(state, static_cast<std::uint8_t>(c), next);
      if (next.empty()) return false;
      std::swap(state, next);
    }
    state_ = std::move(state);
    mask_.reset();
    return true;
  }

 private:
  std::shared_ptr<StructuredOutputs::Compiled> compiled_;
  JsonGrammar::State state_;
  std::shared_ptr<const Mask> mask_;  // of state_, once asked for
};

}  // namespace

namespace {

std::shared_ptr<const StructuredOutputs::Vocabulary> index_vocabulary(const Tokenizer& tokenizer) {
  auto v = std::make_shared<StructuredOutputs::Vocabulary>();
  v->size = tokenizer.vocab_size();
  v->bytes.resize(v->size);
  for (std::size_t id = 0; id < v->size; ++id) {
    const auto token = static_cast<std::int32_t>(id);
    if (tokenizer.is_special(token)) continue;
    v->bytes[id] = tokenizer.token_bytes(token);
    if (!v->bytes[id].empty()) v->sorted.push_back(token);
  }
  std::sort(v->sorted.begin(), v->sorted.end(), [&](std::int32_t a, std::int32_t b) {
    return v->bytes[static_cast<std::size_t>(a)] < v->bytes[static_cast<std::size_t>(b)];
  });
  v->shared.resize(v->sorted.size(), 0);
  for (std::size_t i = 0; i < v->sorted.size(); ++i) {
    const std::string& bytes = v->bytes[static_cast<std::size_t>(v->sorted[i])];
    v->longest = std::max(v->longest, bytes.size());
    if (i == 0) continue;
    const std::string& previous = v->bytes[static_cast<std::size_t>(v->sorted[i - 1])];
    const auto common = std::mismatch(bytes.begin(), bytes.end(), previous.begin(), previous.end());
    v->shared[i] = static_cast<std::uint32_t>(common.first - bytes.begin());
  }
  return v;
}

}  // namespace

StructuredOutputs::StructuredOutputs(Tokenizer tokenizer) : tokenizer_(std::move(tokenizer)) {}

StructuredOutputs::~StructuredOutputs() = default;

core::Result<std::shared_ptr<const core::TokenConstraint>> StructuredOutputs::start(
    const core::StructuredOutput& output, std::string_view path) {
  std::shared_ptr<Compiled> compiled;
  {
    std::lock_guard lock(mutex_);
    auto found = std::find_if(schemas_.begin(), schemas_.end(), [&](const auto& s) { return s.first == output; });
    if (found != schemas_.end()) {
      compiled = found->second;
      std::rotate(found, found + 1, schemas_.end());  // now the most recent
    }
  }
  if (!compiled) {
    AEGAEON_TRY_ASSIGN(grammar, JsonGrammar::compile(output.json_schema, path, output.before, output.after));
    compiled = std::make_shared<Compiled>();
    compiled->grammar = std::move(grammar);
    std::lock_guard lock(mutex_);
    if (!vocabulary_) vocabulary_ = index_vocabulary(tokenizer_);
    compiled->vocabulary = vocabulary_;
    if (schemas_.size() == kCachedSchemas) schemas_.erase(schemas_.begin());
    schemas_.emplace_back(output, compiled);
  }
  return std::shared_ptr<const core::TokenConstraint>(
      std::make_shared<JsonConstraint>(compiled, compiled->grammar->start()));
}

}  // namespace aegaeon::text
