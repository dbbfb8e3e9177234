// A deliberately small blocking HTTP/1.1 client for tests: real sockets, one request per
// connection, Content-Length and chunked bodies, and incremental reads for SSE.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aegaeon::testing {

/// A parsed response.
struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
  /// The value of a (lower-case) header name, if present.
  [[nodiscard]] std::optional<std::string> header(const std::string& lower_name) const;
};

/// One TCP connection to 127.0.0.1:port.
class HttpConnection {
 public:
  /// Connects; throws std::runtime_error on failure.
  explicit HttpConnection(uint16_t port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  /// Sends raw bytes.
  void send_raw(const std::string& bytes);
  /// Sends a request with Content-Length (and `Connection: close`).
  void send_request(const std::string& method, const std::string& path,
                    const std::string& body = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {});
  /// Reads status line and headers; the body stays unread.
  ClientResponse read_head(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Reads the complete body for a head from read_head().
  void read_body(ClientResponse& head, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Reads the next SSE event's data (for a chunked text/event-stream response); nullopt at end.
  std::optional<std::string> read_event(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Closes the socket (the server sees a disconnect).
  void close();

 private:
  bool fill(std::chrono::milliseconds timeout);  // reads more bytes into buffer_; false at EOF
  std::string read_line(std::chrono::milliseconds timeout);
  std::string read_exact(size_t n, std::chrono::milliseconds timeout);
  std::optional<std::string> read_chunk(std::chrono::milliseconds timeout);

  int fd_ = -1;
  std::string buffer_;
  std::string sse_pending_;  // decoded chunk bytes not yet consumed as events
};

/// Convenience: one request, whole response. `timeout` bounds each wait for bytes; a
/// non-streaming completion sends nothing until its last token, so it is generous: on a loaded
/// 2-core CI machine a 256-token generation shared with other tests took more than 10 s.
ClientResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                            const std::string& body = {},
                            const std::vector<std::pair<std::string, std::string>>& headers = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace aegaeon::testing
