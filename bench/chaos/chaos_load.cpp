#include "bench/chaos/chaos_load.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "tests/support/http_client.hpp"

namespace aegaeon::bench::chaos {
namespace {

using json = nlohmann::json;

std::string describe_mismatch(size_t index, const Attempt& reference, const Attempt& got) {
  size_t at = 0;
  while (at < reference.tokens.size() && at < got.tokens.size() &&
         reference.tokens[at] == got.tokens[at])
    ++at;
  auto token = [](const std::vector<std::string>& tokens, size_t i) {
    return i < tokens.size() ? json(tokens[i]).dump() : std::string("(end)");
  };
  return "case " + std::to_string(index) + ": token " + std::to_string(at) + " is " +
         token(got.tokens, at) + ", no-fault " + token(reference.tokens, at) + " (" +
         std::to_string(got.tokens.size()) + " vs " + std::to_string(reference.tokens.size()) +
         " tokens, finish " + got.finish_reason + " vs " + reference.finish_reason + ")";
}

}  // namespace

std::vector<Case> make_cases(const std::vector<std::string>& models) {
  static const char* kPrompts[] = {"Once upon a time",          "The cluster keeps serving",
                                   "Tokens flow between hosts", "Hello there",
                                   "A fault every few seconds", "In the beginning",
                                   "The quick brown fox",       "Models switch between tokens"};
  static const int kMaxTokens[] = {32, 64, 96, 128};
  std::vector<Case> cases;
  for (size_t m = 0; m < models.size(); ++m) {
    for (size_t p = 0; p < std::size(kPrompts); ++p) {
      cases.push_back({models[m], kPrompts[p], kMaxTokens[(m + p) % std::size(kMaxTokens)]});
    }
  }
  return cases;
}

Attempt stream_case(uint16_t port, const Case& c, ClientFault fault, std::mt19937_64& rng,
                    double read_timeout_s) {
  Attempt attempt;
  const auto timeout = std::chrono::milliseconds(static_cast<long>(read_timeout_s * 1000));
  const json body = {{"model", c.model}, {"prompt", c.prompt}, {"max_tokens", c.max_tokens},
                     {"temperature", 0}, {"stream", true},     {"logprobs", 0}};
  try {
    testing::HttpConnection connection(port);
    const auto start = Clock::now();
    connection.send_request("POST", "/v1/completions", body.dump(),
                            {{"Content-Type", "application/json"}});
    auto head = connection.read_head(timeout);
    if (head.status != 200) {
      connection.read_body(head, timeout);
      attempt.failure = "HTTP " + std::to_string(head.status);
      attempt.retryable = head.status == 429 || head.status == 503;
      attempt.retry_after_s =
          std::clamp(std::stod(head.header("retry-after").value_or("0.2")), 0.1, 1.0);
      auto error = json::parse(head.body, nullptr, false);
      if (!error.is_discarded() && error.contains("error"))
        attempt.failure += ": " + error["error"].value("message", "");
      return attempt;
    }
    const int hang_up_after = std::uniform_int_distribution<int>(1, 8)(rng);
    auto last = start;
    while (true) {
      if (fault == ClientFault::slow) {
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 400)(rng)));
      }
      auto event = connection.read_event(timeout);
      if (!event) {
        attempt.failure = "stream cut before [DONE]";
        attempt.retryable = true;
        return attempt;
      }
      if (*event == "[DONE]") break;
      auto chunk = json::parse(*event, nullptr, false);
      if (chunk.is_discarded() || chunk.contains("error")) {
        attempt.failure =
            "error event: " + (chunk.is_discarded() ? *event : chunk["error"].value("message", ""));
        attempt.retryable = true;
        return attempt;
      }
      const auto& choice = chunk["choices"][0];
      if (choice["finish_reason"].is_string()) attempt.finish_reason = choice["finish_reason"];
      if (!choice["logprobs"].is_object()) continue;  // the finishing frame
      const auto now = Clock::now();
      const double since_last = std::chrono::duration<double>(now - last).count();
      (attempt.tokens.empty() ? attempt.ttft_s : attempt.gaps_s.emplace_back()) = since_last;
      for (const auto& token : choice["logprobs"]["tokens"]) attempt.tokens.push_back(token);
      last = now;
      if (fault == ClientFault::disconnect &&
          static_cast<int>(attempt.tokens.size()) >= hang_up_after) {
        connection.close();
        attempt.end = Attempt::End::disconnected;
        return attempt;
      }
    }
    attempt.end = Attempt::End::completed;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.find("timed out") != std::string::npos) {
      attempt.failure =
          "hung: no frame for " + std::to_string(static_cast<int>(read_timeout_s)) + " s";
    } else {
      // "connect to 127.0.0.1:PORT failed: REASON" -> "connect failed: REASON"
      const auto reason = what.find("failed: ");
      attempt.failure = what.rfind("connect", 0) == 0 && reason != std::string::npos
                            ? "connect failed: " + what.substr(reason + 8)
                            : "connection lost: " + what;
      attempt.retryable = true;
    }
  }
  return attempt;
}

void Ledger::completed(size_t index, const Attempt& attempt, bool faults, bool slow) {
  std::lock_guard lock(mutex_);
  ++completed_;
  auto& reference = references_[index];
  if (!reference && !faults) {
    reference = attempt;
  } else if (reference) {
    ++compared_;
    if (attempt.tokens != reference->tokens || attempt.finish_reason != reference->finish_reason) {
      ++mismatches_;
      if (mismatch_notes_.size() < 10)
        mismatch_notes_.push_back(describe_mismatch(index, *reference, attempt));
    }
  }
  if (slow) return;  // a slow reader's gaps are its own
  auto& latency = faults ? with_faults_ : without_faults_;
  latency.ttft_s.push_back(attempt.ttft_s);
  latency.tbt_s.insert(latency.tbt_s.end(), attempt.gaps_s.begin(), attempt.gaps_s.end());
}

void Ledger::disconnected() {
  std::lock_guard lock(mutex_);
  ++disconnected_;
}

void Ledger::failed(const Attempt& attempt, double started_s) {
  std::lock_guard lock(mutex_);
  failures_.push_back({started_s, now_s(), attempt.failure, attempt.retryable});
}

void Ledger::gave_up(const Case& c, int attempts) {
  std::lock_guard lock(mutex_);
  gave_up_.push_back(c.model + " '" + c.prompt + "' after " + std::to_string(attempts) +
                     " attempts");
}

bool Ledger::has_reference(size_t index) {
  std::lock_guard lock(mutex_);
  return references_[index].has_value();
}

std::string Ledger::progress() {
  std::lock_guard lock(mutex_);
  char line[200];
  std::snprintf(line, sizeof line,
                "%zu completed, %zu compared, %zu mismatched, %zu failed attempts, %zu hang-ups",
                completed_, compared_, mismatches_, failures_.size(), disconnected_);
  return line;
}

Clients::Clients(const Options& options, const std::vector<Case>& cases, uint16_t port,
                 Ledger& ledger, uint64_t seed)
    : options_(options),
      cases_(cases),
      port_(port),
      ledger_(ledger),
      faults_(static_cast<size_t>(options.clients)) {
  for (int i = 0; i < options.clients; ++i)
    rngs_.emplace_back(seed + static_cast<uint64_t>(i) * 7919);
}

void Clients::run(Clock::time_point until, bool faults) {
  std::vector<std::thread> threads;
  for (int i = 0; i < options_.clients; ++i) {
    threads.emplace_back([this, i, until, faults] {
      while (Clock::now() < until) {
        const size_t index = std::uniform_int_distribution<size_t>(0, cases_.size() - 1)(rngs_[i]);
        request(index, faults_[i].exchange(ClientFault::none), faults, rngs_[i]);
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

void Clients::request(size_t index, ClientFault fault, bool faults, std::mt19937_64& rng) {
  const Case& c = cases_[index];
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    const double started_s = ledger_.now_s();
    Attempt got = stream_case(port_, c, fault, rng, options_.read_timeout_s);
    switch (got.end) {
      case Attempt::End::completed:
        ledger_.completed(index, got, faults, fault == ClientFault::slow);
        return;
      case Attempt::End::disconnected:
        ledger_.disconnected();
        return;
      case Attempt::End::failed:
        ledger_.failed(got, started_s);
        if (!got.retryable) return;
        std::this_thread::sleep_for(std::chrono::duration<double>(got.retry_after_s));
    }
  }
  ledger_.gave_up(c, options_.max_attempts);
}

}  // namespace aegaeon::bench::chaos
