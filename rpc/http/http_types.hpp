// Plain HTTP request/response values and the handles a handler uses to answer, from any thread.
// No kj types here: actors and the API layer include this header.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aegaeon::rpc::http {

/// A header name/value pair; names are compared case-insensitively.
using Header = std::pair<std::string, std::string>;

/// One request, fully read (the body is bounded by the server's size limit).
struct HttpRequest {
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< without the query string
  std::string query;   ///< after '?', undecoded; empty when absent
  std::vector<Header> headers;
  std::string body;

  /// The value of header `name` (case-insensitive), if present.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

/// A complete (non-streaming) response.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;

  /// A JSON response with the given status.
  static HttpResponse json(int status, std::string body);
  /// A text/plain response with the given status.
  static HttpResponse text(int status, std::string body);
  /// An OpenAI-style error object: {"error":{"message","type","param","code"}}. `param` names
  /// the offending request field when there is one.
  static HttpResponse error(int status, std::string_view message, std::string_view type,
                            std::string_view param = {});
};

namespace detail {
struct Exchange;  // shared between the kj side and the handles below
}

/// The write end of a Server-Sent Events response. Thread-safe; any copy may send. The stream
/// ends when close() is called or the last copy is destroyed.
class EventStream {
 public:
  /// Queues one `data: <payload>\n\n` frame (multi-line payloads become several data: lines).
  /// Returns false when the client is gone or the stream is closed: stop producing.
  bool send(std::string_view payload) const;
  /// Queues a raw, already-framed chunk (e.g. ": keep-alive\n\n").
  bool send_raw(std::string chunk) const;
  /// Ends the stream after the queued frames are written.
  void close() const;
  /// True once the client disconnected or the server shut the stream down.
  [[nodiscard]] bool cancelled() const;
  /// Runs `callback` once when the stream is cancelled (on the kj thread: it must not block).
  /// Runs it at once if the stream is already cancelled.
  void on_cancel(std::function<void()> callback) const;

 private:
  friend class Responder;
  struct Owner;
  explicit EventStream(std::shared_ptr<Owner> owner);
  std::shared_ptr<Owner> owner_;
};

/// How a handler answers a request, exactly once, from any thread: respond() with a complete
/// response, or open_stream() for SSE. If every copy is dropped without an answer, the client
/// gets a 500 (never a hang).
class Responder {
 public:
  explicit Responder(std::shared_ptr<detail::Exchange> exchange);
  /// Sends a complete response. Later calls are ignored.
  void respond(HttpResponse response) const;
  /// Starts a `text/event-stream` response with the given status and extra headers.
  [[nodiscard]] EventStream open_stream(int status = 200, std::vector<Header> headers = {}) const;
  /// True once the client is gone or the server is shutting the request down.
  [[nodiscard]] bool cancelled() const;
  /// Runs `callback` once when the client goes away or the server gives up on the request,
  /// before or after the answer started (on the kj thread: it must not block). Runs it at once
  /// if that already happened. Covers the stream open_stream() returns too.
  void on_cancel(std::function<void()> callback) const;

 private:
  struct Guard;
  std::shared_ptr<Guard> guard_;
};

/// A route's handler. Runs on the kj thread and must not block: answer at once, or hand the
/// Responder to another thread or actor that answers later.
using Handler = std::function<void(const HttpRequest&, const Responder&)>;

}  // namespace aegaeon::rpc::http
