#include "bench/e2e/load_generator.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/support/http_client.hpp"

namespace aegaeon::bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point origin) {
  return std::chrono::duration<double>(Clock::now() - origin).count();
}

// Greedy and with per-token logprobs: every SSE frame then carries exactly the tokens of one
// server step (text alone may hold back partial characters), and outputs do not depend on the
// policy, so every policy generates the same tokens.
std::string request_body(const LoadRequest& request) {
  json body = {{"model", request.model},
               {"prompt", request.prompt},
               {"max_tokens", request.max_tokens},
               {"temperature", 0},
               {"logprobs", 0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  return body.dump();
}

}  // namespace

RequestTimeline stream_request(std::uint16_t port, const LoadRequest& request, Clock::time_point origin,
                               double read_timeout_s) {
  RequestTimeline t;
  t.arrival_s = request.arrival_s;
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(read_timeout_s * 1000));
  try {
    testing::HttpConnection connection(port);
    t.sent_s = seconds_since(origin);
    connection.send_request("POST", "/v1/completions", request_body(request),
                            {{"Content-Type", "application/json"}});
    auto head = connection.read_head(timeout);
    t.status = head.status;
    if (head.status != 200) {
      connection.read_body(head, timeout);
      t.error = "HTTP " + std::to_string(head.status) + ": " + head.body.substr(0, 200);
      return t;
    }
    while (auto event = connection.read_event(timeout)) {
      const double at = seconds_since(origin);
      if (*event == "[DONE]") {
        t.complete = true;
        break;
      }
      json frame = json::parse(*event, nullptr, false);
      if (frame.is_discarded()) continue;
      if (frame.contains("error")) {
        t.error = frame["error"].value("message", "error frame");
        break;
      }
      if (frame.contains("usage") && frame["usage"].is_object()) {
        t.prompt_tokens = frame["usage"].value("prompt_tokens", 0);
      }
      if (!frame.contains("choices") || frame["choices"].empty()) continue;
      const json& logprobs = frame["choices"][0]["logprobs"];
      if (!logprobs.is_object()) continue;  // the finish frame
      for (std::size_t i = 0; i < logprobs["tokens"].size(); ++i) t.token_s.push_back(at);
    }
    if (!t.complete && t.error.empty()) t.error = "stream ended without [DONE]";
  } catch (const std::runtime_error& e) {
    t.error = e.what();
  }
  return t;
}

std::vector<RequestTimeline> replay(std::span<const LoadRequest> requests, const ReplayOptions& options) {
  std::vector<RequestTimeline> timelines(requests.size());
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
  const auto origin = Clock::now();
  auto client = [&] {
    // Arrivals are sorted: each free thread takes the next request and waits for its time.
    for (std::size_t i = next++; i < requests.size(); i = next++) {
      std::this_thread::sleep_until(origin + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(requests[i].arrival_s)));
      timelines[i] = stream_request(options.port, requests[i], origin, options.read_timeout_s);
      if (++done == requests.size()) {
        std::lock_guard lock(mutex);
        finished.notify_all();
      }
    }
  };
  std::vector<std::thread> threads;
  const auto clients = std::min<std::size_t>(static_cast<std::size_t>(std::max(options.clients, 1)), requests.size());
  for (std::size_t c = 0; c < clients; ++c) threads.emplace_back(client);
  {
    std::unique_lock lock(mutex);
    while (!finished.wait_for(lock, std::chrono::seconds(5), [&] { return done == requests.size(); })) {
      std::fprintf(stderr, "%s  t=%5.0f s  %zu/%zu requests done, %zu sent or due\n", options.label.c_str(),
                   seconds_since(origin), done.load(), requests.size(),
                   std::min(next.load(), requests.size()) - done.load());
    }
  }
  for (auto& thread : threads) thread.join();
  return timelines;
}

std::vector<std::string> served_models(std::uint16_t port) {
  const json listing = json::parse(testing::http_request(port, "GET", "/v1/models").body, nullptr, false);
  std::vector<std::string> names;
  if (listing.is_object() && listing.contains("data")) {
    for (const auto& m : listing["data"]) names.push_back(m.value("id", ""));
  }
  if (names.empty()) throw std::runtime_error("no models served on port " + std::to_string(port));
  return names;
}

}  // namespace aegaeon::bench
