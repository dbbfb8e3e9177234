// The shared-memory KV handoff's file: what a reader gets, and that it takes nothing but the
// file it was told of (another size, another name, a file that is gone).
#include "rpc/shared_kv.hpp"

#include <gtest/gtest.h>

namespace aegaeon::rpc {
namespace {

std::vector<std::byte> pattern(std::size_t bytes) {
  std::vector<std::byte> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>((i * 31 + i / 977) & 0xff);
  return out;
}

TEST(SharedKv, AReaderGetsTheBlobByteForByte) {
  EXPECT_EQ(shared_memory_host_key().size(), 36u) << "the boot id, a UUID";
  const auto blob = pattern((3u << 20) + 4321);
  auto shared = SharedKvBlob::create(blob);
  ASSERT_TRUE(shared.ok()) << shared.error().message;
  EXPECT_EQ((*shared)->path().rfind("/proc/", 0), 0u) << (*shared)->path();
  EXPECT_TRUE(std::equal(blob.begin(), blob.end(), (*shared)->bytes().begin(), (*shared)->bytes().end()));
  auto read = read_shared_kv((*shared)->path(), (*shared)->name(), blob.size());
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_TRUE(**read == blob);
}

TEST(SharedKv, TakesNothingButTheFileItWasToldOf) {
  auto shared = SharedKvBlob::create(pattern(4096));
  ASSERT_TRUE(shared.ok()) << shared.error().message;
  auto other = SharedKvBlob::create(pattern(4096));
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_NE((*shared)->name(), (*other)->name());
  auto wrong_size = read_shared_kv((*shared)->path(), (*shared)->name(), 4097);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.error().message.find("4096 bytes"), std::string::npos) << wrong_size.error().message;
  auto wrong_name = read_shared_kv((*shared)->path(), (*other)->name(), 4096);
  ASSERT_FALSE(wrong_name.ok());
  EXPECT_NE(wrong_name.error().message.find("not the memory file"), std::string::npos) << wrong_name.error().message;
  const std::string path = (*shared)->path();
  const std::string name = (*shared)->name();
  shared->reset();  // its descriptor closes: the path leads nowhere, or to another file
  EXPECT_FALSE(read_shared_kv(path, name, 4096).ok());
  EXPECT_FALSE(read_shared_kv("/proc/self/fd/100000", name, 4096).ok());
}

}  // namespace
}  // namespace aegaeon::rpc
