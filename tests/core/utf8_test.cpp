#include "core/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

namespace aegaeon::core {
namespace {

TEST(Utf8, SequenceLengthFollowsTheWellFormedTable) {
  EXPECT_EQ(utf8_sequence_length("a"), 1u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9"), 2u);
  EXPECT_EQ(utf8_sequence_length("\xE6\x97\xA5"), 3u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80"), 4u);
  EXPECT_EQ(utf8_sequence_length("x\xC3\xA9", 1), 2u) << "at a position";
  EXPECT_EQ(utf8_sequence_length("x", 1), 0u) << "past the end";
  EXPECT_EQ(utf8_sequence_length(""), 0u);
  EXPECT_EQ(utf8_sequence_length("\xC0\xAF"), 0u) << "overlong";
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80"), 0u) << "surrogate";
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80"), 0u) << "above U+10FFFF";
  EXPECT_EQ(utf8_sequence_length("\xE6\x97"), 0u) << "truncated";
}

// One U+FFFD per maximal subpart of an ill-formed sequence, as Rust's from_utf8_lossy (and so
// Hugging Face tokenizers) repairs bytes.
TEST(Utf8, RepairReplacesMaximalSubparts) {
  const std::string r(kUtf8Replacement);
  EXPECT_EQ(to_valid_utf8("plain \xC3\xA9t\xC3\xA9"), "plain \xC3\xA9t\xC3\xA9");
  EXPECT_EQ(to_valid_utf8("Hello \xF0\x90\x80World"), "Hello " + r + "World") << "a truncated 4-byte sequence is one";
  EXPECT_EQ(to_valid_utf8("\xE0\x80"), r + r) << "E0 80 cannot start a sequence: two subparts";
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r) << "a surrogate: three";
  EXPECT_EQ(to_valid_utf8("\xE6\x97"), r) << "a truncated 3-byte sequence at the end";
  EXPECT_EQ(to_valid_utf8("a\x80\x80z"), "a" + r + r + "z") << "stray continuation bytes: one each";
  EXPECT_TRUE(is_valid_utf8(to_valid_utf8("\xFF\xC2\xE1\x80\xF1\x80\x80")));
  EXPECT_EQ(utf8_length("\xE6\x97\xA5x\x80"), 3u);
}

}  // namespace
}  // namespace aegaeon::core
