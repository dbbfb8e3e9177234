// The shared-memory KV handoff's file: what a reader maps, that it stays as it was for as long
// as the reader holds it, and that the reader takes nothing but the sealed file it was told of
// (another size, another name, a file that is gone, a file someone may still write).
#include "rpc/shared_kv.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace aegaeon::rpc {
namespace {

std::vector<std::byte> pattern(std::size_t bytes) {
  std::vector<std::byte> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>((i * 31 + i / 977) & 0xff);
  return out;
}

TEST(SharedKv, AReaderMapsTheBlobByteForByteForAsLongAsItHoldsIt) {
  EXPECT_EQ(shared_memory_host_key().size(), 36u) << "the boot id, a UUID";
  const auto blob = pattern((3u << 20) + 4321);
  auto shared = SharedKvBlob::create(blob);
  ASSERT_TRUE(shared.ok()) << shared.error().message;
  EXPECT_EQ((*shared)->path().rfind("/proc/", 0), 0u) << (*shared)->path();
  EXPECT_TRUE(std::equal(blob.begin(), blob.end(), (*shared)->bytes().begin(), (*shared)->bytes().end()));
  auto mapped = map_shared_kv((*shared)->path(), (*shared)->name(), blob.size());
  ASSERT_TRUE(mapped.ok()) << mapped.error().message;
  EXPECT_NE(mapped->data(), (*shared)->bytes().data()) << "a mapping of its own";
  EXPECT_TRUE(std::equal(blob.begin(), blob.end(), mapped->begin(), mapped->end()));

  // Sealed: not even a process that may open the file for writing can change or shrink it.
  const int writer = ::open((*shared)->path().c_str(), O_RDWR | O_CLOEXEC);
  if (writer >= 0) {
    const std::byte zero{0};
    EXPECT_LT(::pwrite(writer, &zero, 1, 0), 0) << "a write to a sealed file";
    EXPECT_NE(::ftruncate(writer, 0), 0) << "a shrink of a sealed file";
    ::close(writer);
  }
  // The writer drops its file (the request moved on, or the process died): the mapping stays.
  const core::HostBytes copy = *mapped;
  shared->reset();
  *mapped = core::HostBytes();  // and this reader its first copy
  EXPECT_TRUE(std::equal(blob.begin(), blob.end(), copy.begin(), copy.end()));
}

TEST(SharedKv, AFileThatIsNotSealedIsNotMapped) {
  const int fd = ::memfd_create("aegaeon-kv-unsealed", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  const std::string path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd);
  auto mapped = map_shared_kv(path, "aegaeon-kv-unsealed", 4096);
  ::close(fd);
  ASSERT_FALSE(mapped.ok());
  EXPECT_NE(mapped.error().message.find("not sealed"), std::string::npos) << mapped.error().message;
}

TEST(SharedKv, TakesNothingButTheFileItWasToldOf) {
  auto shared = SharedKvBlob::create(pattern(4096));
  ASSERT_TRUE(shared.ok()) << shared.error().message;
  auto other = SharedKvBlob::create(pattern(4096));
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_NE((*shared)->name(), (*other)->name());
  auto wrong_size = map_shared_kv((*shared)->path(), (*shared)->name(), 4097);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.error().message.find("4096 bytes"), std::string::npos) << wrong_size.error().message;
  auto wrong_name = map_shared_kv((*shared)->path(), (*other)->name(), 4096);
  ASSERT_FALSE(wrong_name.ok());
  EXPECT_NE(wrong_name.error().message.find("not the memory file"), std::string::npos) << wrong_name.error().message;
  const std::string path = (*shared)->path();
  const std::string name = (*shared)->name();
  shared->reset();  // its descriptor closes: the path leads nowhere, or to another file
  EXPECT_FALSE(map_shared_kv(path, name, 4096).ok());
  EXPECT_FALSE(map_shared_kv("/proc/self/fd/100000", name, 4096).ok());
}

}  // namespace
}  // namespace aegaeon::rpc
