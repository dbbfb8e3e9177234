#include "rpc/http/http_types.hpp"

#include <nlohmann/json.hpp>
#include <strings.h>

#include "rpc/http/exchange.hpp"

namespace aegaeon::rpc::http {

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return std::nullopt;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  return HttpResponse{status, "application/json", std::move(body), {}};
}

HttpResponse HttpResponse::text(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body), {}};
}

HttpResponse HttpResponse::error(int status, std::string_view message, std::string_view type,
                                 std::string_view param) {
  nlohmann::json error = {{"message", message}, {"type", type}, {"code", status}};
  error["param"] = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param);
  return json(status, nlohmann::json{{"error", error}}.dump());
}

namespace detail {

void Exchange::cancel() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex);
    if (cancelled) return;
    cancelled = true;
    callbacks.swap(cancel_callbacks);
  }
  for (auto& callback : callbacks) callback();
}

void Exchange::on_cancel(std::function<void()> callback) {
  {
    std::lock_guard lock(mutex);
    if (!cancelled) {
      cancel_callbacks.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

}  // namespace detail

// Ends the stream when the last EventStream copy goes away, so a forgotten close() cannot hang
// the client.
struct EventStream::Owner {
  explicit Owner(std::shared_ptr<detail::Exchange> e) : exchange(std::move(e)) {}
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;
  std::shared_ptr<detail::Exchange> exchange;
  ~Owner() {
    exchange->update([&] { exchange->stream_closed = true; });
  }
};

EventStream::EventStream(std::shared_ptr<Owner> owner) : owner_(std::move(owner)) {}

bool EventStream::send(std::string_view payload) const {
  std::string frame;
  frame.reserve(payload.size() + 8);
  size_t start = 0;
  while (true) {  // SSE: every line of the payload is its own data: field
    size_t end = payload.find('\n', start);
    frame += "data: ";
    frame += payload.substr(start, end == std::string_view::npos ? end : end - start);
    frame += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  frame += '\n';
  return send_raw(std::move(frame));
}

bool EventStream::send_raw(std::string chunk) const {
  auto& exchange = *owner_->exchange;
  bool accepted = false;
  exchange.update([&] {
    if (exchange.cancelled || exchange.stream_closed) return;
    exchange.chunks.push_back(std::move(chunk));
    accepted = true;
  });
  return accepted;
}

void EventStream::close() const {
  auto& exchange = *owner_->exchange;
  exchange.update([&] { exchange.stream_closed = true; });
}

bool EventStream::cancelled() const {
  std::lock_guard lock(owner_->exchange->mutex);
  return owner_->exchange->cancelled;
}

void EventStream::on_cancel(std::function<void()> callback) const {
  owner_->exchange->on_cancel(std::move(callback));
}

// Answers 500 when the last Responder copy is dropped without an answer.
struct Responder::Guard {
  explicit Guard(std::shared_ptr<detail::Exchange> e) : exchange(std::move(e)) {}
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  std::shared_ptr<detail::Exchange> exchange;
  ~Guard() {
    exchange->update([&] {
      if (exchange->phase == detail::Exchange::Phase::kPending) {
        exchange->phase = detail::Exchange::Phase::kResponded;
        exchange->response =
            HttpResponse::error(500, "the server dropped this request without answering",
                                "server_error");
      }
    });
  }
};

Responder::Responder(std::shared_ptr<detail::Exchange> exchange)
    : guard_(std::make_shared<Guard>(std::move(exchange))) {}

void Responder::respond(HttpResponse response) const {
  auto& exchange = *guard_->exchange;
  exchange.update([&] {
    if (exchange.phase != detail::Exchange::Phase::kPending) return;
    exchange.phase = detail::Exchange::Phase::kResponded;
    exchange.response = std::move(response);
  });
}

EventStream Responder::open_stream(int status, std::vector<Header> headers) const {
  auto exchange = guard_->exchange;
  exchange->update([&] {
    if (exchange->phase != detail::Exchange::Phase::kPending) {
      exchange->stream_closed = true;  // already answered: the stream accepts nothing
      return;
    }
    exchange->phase = detail::Exchange::Phase::kStreaming;
    exchange->response = HttpResponse{status, "text/event-stream", {}, std::move(headers)};
  });
  return EventStream(std::make_shared<EventStream::Owner>(std::move(exchange)));
}

bool Responder::cancelled() const {
  std::lock_guard lock(guard_->exchange->mutex);
  return guard_->exchange->cancelled;
}

void Responder::on_cancel(std::function<void()> callback) const {
  guard_->exchange->on_cancel(std::move(callback));
}

}  // namespace aegaeon::rpc::http
