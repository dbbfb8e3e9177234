// What TLS costs on the wire, against plain TCP over loopback measured in the same run:
//   bulk:   64 MiB in 1 MiB writes, as a KV handoff pulls its chunks (throughput ratio);
//   frames: 20,000 writes of a 120-byte SSE frame, each read before the next is written, as a
//           stream sends one token at a time (time per frame ratio).
// Both ends run on one kj event loop in this process (one core), so a ratio is the whole CPU
// cost of encrypting and decrypting, not a latency hidden by a second core.
#include <kj/async-io.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "rpc/tls.hpp"
#include "rpc/tls_stream.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Pair {
  kj::Own<kj::AsyncIoStream> client;
  kj::Own<kj::AsyncIoStream> server;
};

// A loopback TCP connection, wrapped in TLS on both ends when `client_tls` is set.
Pair connect(kj::AsyncIoContext& io, const rpc::TlsContext* client_tls,
             std::shared_ptr<const rpc::TlsContext> server_tls) {
  auto& timer = io.provider->getTimer();
  auto address = io.provider->getNetwork().parseAddress("127.0.0.1", 0).wait(io.waitScope);
  kj::Own<kj::ConnectionReceiver> listener = address->listen();
  const auto port = listener->getPort();
  if (server_tls) listener = rpc::listen_tls(kj::mv(listener), server_tls, timer, "bench", {});
  auto accepted = listener->accept();
  auto connected = io.provider->getNetwork().parseAddress("127.0.0.1", port).wait(io.waitScope)->connect();
  kj::Promise<kj::Own<kj::AsyncIoStream>> client = kj::mv(connected);
  if (client_tls) {
    client = client.then([client_tls, &timer, port](kj::Own<kj::AsyncIoStream> tcp) {
      return rpc::connect_tls(*client_tls, kj::mv(tcp), timer, "127.0.0.1", port);
    });
  }
  auto both = kj::joinPromises(kj::arr(kj::mv(client), kj::mv(accepted))).wait(io.waitScope);
  return {kj::mv(both[0]), kj::mv(both[1])};
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Seconds to move `total` bytes from client to server in `chunk`-byte writes.
double bulk(kj::AsyncIoContext& io, Pair& pair, size_t total, size_t chunk) {
  auto out = kj::heapArray<kj::byte>(chunk);
  auto in = kj::heapArray<kj::byte>(chunk);
  for (size_t i = 0; i < chunk; ++i) out[i] = static_cast<kj::byte>(i * 131);
  const auto start = Clock::now();
  kj::Promise<void> writes = kj::READY_NOW;
  for (size_t sent = 0; sent < total; sent += chunk) {
    writes = writes.then([&pair, &out] { return pair.client->write(out.begin(), out.size()); });
  }
  auto reads = pair.server->read(in.begin(), chunk, chunk).then([](size_t) {});
  for (size_t received = chunk; received < total; received += chunk) {
    reads = reads.then([&pair, &in] { return pair.server->read(in.begin(), in.size(), in.size()).then([](size_t) {}); });
  }
  writes.wait(io.waitScope);
  reads.wait(io.waitScope);
  return seconds_since(start);
}

// Seconds for `count` frames of `size` bytes, each read before the next is written.
double frames(kj::AsyncIoContext& io, Pair& pair, int count, size_t size) {
  auto out = kj::heapArray<kj::byte>(size);
  auto in = kj::heapArray<kj::byte>(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<kj::byte>('a' + i % 26);
  const auto start = Clock::now();
  for (int i = 0; i < count; ++i) {
    auto written = pair.client->write(out.begin(), out.size());
    pair.server->read(in.begin(), size, size).wait(io.waitScope);
    written.wait(io.waitScope);
  }
  return seconds_since(start);
}

}  // namespace
}  // namespace aegaeon::bench

int main() {
  using namespace aegaeon;
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-bench-tls-" + std::to_string(::getpid()));
  auto certs = testing::TestCertificates::make(dir);
  if (!certs.ok()) {
    std::fprintf(stderr, "bench_tls: %s\n", certs.error().message.c_str());
    return 1;
  }
  auto server_tls = rpc::TlsContext::load(rpc::TlsContext::Side::kServer, {certs->server.cert, certs->server.key, certs->ca});
  auto client_tls = rpc::TlsContext::load(rpc::TlsContext::Side::kClient, {certs->client.cert, certs->client.key, certs->ca});
  if (!server_tls.ok() || !client_tls.ok()) {
    std::fprintf(stderr, "bench_tls: %s\n", (server_tls.ok() ? client_tls.error() : server_tls.error()).message.c_str());
    return 1;
  }
  auto io = kj::setupAsyncIo();
  auto plain = bench::connect(io, nullptr, nullptr);
  auto tls = bench::connect(io, client_tls->get(), *server_tls);

  constexpr size_t kTotal = 64u << 20;
  constexpr size_t kChunk = 1u << 20;
  constexpr int kFrames = 20000;
  constexpr size_t kFrame = 120;
  bench::bulk(io, plain, kChunk * 8, kChunk);  // warm both paths
  bench::bulk(io, tls, kChunk * 8, kChunk);
  const double plain_bulk = bench::bulk(io, plain, kTotal, kChunk);
  const double tls_bulk = bench::bulk(io, tls, kTotal, kChunk);
  const double plain_frames = bench::frames(io, plain, kFrames, kFrame);
  const double tls_frames = bench::frames(io, tls, kFrames, kFrame);

  const double mib = static_cast<double>(kTotal) / (1 << 20);
  std::printf("bulk (64 MiB in 1 MiB writes, one core):  plain %.0f MiB/s, mutual TLS %.0f MiB/s: TLS takes %.2fx the time "
              "(%.2f ns per byte more)\n",
              mib / plain_bulk, mib / tls_bulk, tls_bulk / plain_bulk,
              (tls_bulk - plain_bulk) * 1e9 / static_cast<double>(kTotal));
  std::printf("frames (%d x %zu B, each read before the next): plain %.2f us, mutual TLS %.2f us per frame: %.2fx "
              "(+%.2f us per streamed token)\n",
              kFrames, kFrame, plain_frames * 1e6 / kFrames, tls_frames * 1e6 / kFrames, tls_frames / plain_frames,
              (tls_frames - plain_frames) * 1e6 / kFrames);
  std::filesystem::remove_all(dir);
  return 0;
}
