// The BPE model of tokenizer.json: a word's initial symbols (bytes, characters, byte-fallback
// <0xNN> tokens or <unk>) merged by rank with a priority queue, as tokenizers' Word::merge_all.
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "text/tokenizer_impl.hpp"
#include "core/utf8.hpp"

namespace aegaeon::text::tokenizer_detail {
namespace {

struct Symbol {
  std::int32_t id;
  std::int32_t prev;
  std::int32_t next;
  bool alive;
};

// A candidate merge of the symbol at `pos` with its right neighbour; lowest rank first, then
// leftmost.
struct Candidate {
  std::uint32_t rank;
  std::int32_t pos;
  std::int32_t new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    if (auto it = vocab.find(std::string(word)); it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<std::int32_t> initial;
  initial.reserve(word.size());
  if (byte_level) {
    for (char c : word) {
      const std::int32_t id = byte_ids[static_cast<unsigned char>(c)];
      if (id >= 0) {
        initial.push_back(id);
      } else if (unk_id) {
        if (!(fuse_unk && !initial.empty() && initial.back() == *unk_id)) initial.push_back(*unk_id);
      }
    }
  } else {
    // Characters; a character missing from the vocabulary becomes its <0xNN> byte tokens or
    // <unk>. A pending <unk> is flushed only by the next vocabulary hit, as tokenizers does.
    std::int32_t pending_unk = -1;
    std::string ch;
    for (std::size_t pos = 0; pos < word.size();) {
      std::size_t len = core::utf8_sequence_length(word, pos);
      if (len == 0) len = 1;
      ch.assign(word.substr(pos, len));
      pos += len;
      if (auto it = vocab.find(ch); it != vocab.end()) {
        if (pending_unk >= 0) {
          initial.push_back(pending_unk);
          pending_unk = -1;
        }
        initial.push_back(it->second);
        continue;
      }
      if (byte_fallback) {
        bool all = true;
        for (char c : ch) all = all && fallback_ids[static_cast<unsigned char>(c)] >= 0;
        if (all) {
          for (char c : ch) initial.push_back(fallback_ids[static_cast<unsigned char>(c)]);
          continue;
        }
      }
      if (unk_id) {
        if (pending_unk >= 0 && !fuse_unk) initial.push_back(pending_unk);
        pending_unk = *unk_id;
      }
    }
    if (pending_unk >= 0) initial.push_back(pending_unk);
  }
  if (initial.size() <= 1 || merges.empty()) {
    out.insert(out.end(), initial.begin(), initial.end());
    return;
  }

  const auto n = static_cast<std::int32_t>(initial.size());
  std::vector<Symbol> symbols(initial.size());
  for (std::int32_t i = 0; i < n; ++i) {
    symbols[static_cast<std::size_t>(i)] = Symbol{initial[static_cast<std::size_t>(i)], i - 1,
                                                   i + 1 < n ? i + 1 : -1, true};
  }
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(initial.size());
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(
      std::greater<>(), std::move(heap_storage));
  const auto push_candidate = [&](std::int32_t pos) {
    const Symbol& left = symbols[static_cast<std::size_t>(pos)];
    if (left.next < 0) return;
    auto it = merges.find(pair_key(left.id, symbols[static_cast<std::size_t>(left.next)].id));
    if (it != merges.end()) queue.push(Candidate{it->second.first, pos, it->second.second});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push_candidate(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<std::size_t>(left.next)];
    // Stale candidate: one side was merged since it was queued.
    auto it = merges.find(pair_key(left.id, right.id));
    if (it == merges.end() || it->second.second != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) push_candidate(left.prev);
    push_candidate(top.pos);
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
    out.push_back(symbols[static_cast<std::size_t>(i)].id);
  }
}

}  // namespace aegaeon::text::tokenizer_detail
