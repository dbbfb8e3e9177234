#include "tests/support/http_client.hpp"

#include <cstring>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace aegaeon::testing {

std::optional<std::string> ClientResponse::header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

HttpConnection::HttpConnection(uint16_t port) {
  // Close-on-exec: a process a test spawns while this connection is open must not hold it.
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed: " + std::strerror(error));
  }
}

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void HttpConnection::send_raw(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    sent += static_cast<size_t>(n);
  }
}

void HttpConnection::send_request(const std::string& method, const std::string& path,
                                  const std::string& body,
                                  const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "Connection: close\r\n\r\n" + body;
  send_raw(request);
}

bool HttpConnection::fill(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) throw std::runtime_error("timed out waiting for the server");
  char chunk[16384];
  auto n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

std::string HttpConnection::read_line(std::chrono::milliseconds timeout) {
  size_t end;
  while ((end = buffer_.find("\r\n")) == std::string::npos) {
    if (!fill(timeout)) throw std::runtime_error("connection closed mid-line");
  }
  std::string line = buffer_.substr(0, end);
  buffer_.erase(0, end + 2);
  return line;
}

std::string HttpConnection::read_exact(size_t n, std::chrono::milliseconds timeout) {
  while (buffer_.size() < n) {
    if (!fill(timeout)) throw std::runtime_error("connection closed mid-body");
  }
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return out;
}

ClientResponse HttpConnection::read_head(std::chrono::milliseconds timeout) {
  ClientResponse response;
  std::string status_line = read_line(timeout);
  if (status_line.rfind("HTTP/1.1 ", 0) != 0) throw std::runtime_error("bad status line: " + status_line);
  response.status = std::stoi(status_line.substr(9, 3));
  for (std::string line = read_line(timeout); !line.empty(); line = read_line(timeout)) {
    auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    response.headers.emplace_back(name, value);
  }
  return response;
}

std::optional<std::string> HttpConnection::read_chunk(std::chrono::milliseconds timeout) {
  size_t size = std::stoul(read_line(timeout), nullptr, 16);
  if (size == 0) {
    read_line(timeout);  // trailing CRLF after the last chunk
    return std::nullopt;
  }
  std::string data = read_exact(size, timeout);
  read_line(timeout);
  return data;
}

void HttpConnection::read_body(ClientResponse& head, std::chrono::milliseconds timeout) {
  if (auto length = head.header("content-length")) {
    head.body = read_exact(std::stoul(*length), timeout);
  } else if (head.header("transfer-encoding") == std::optional<std::string>("chunked")) {
    while (auto chunk = read_chunk(timeout)) head.body += *chunk;
  } else {
    while (fill(timeout)) {
    }
    head.body = std::move(buffer_);
    buffer_.clear();
  }
}

std::optional<std::string> HttpConnection::read_event(std::chrono::milliseconds timeout) {
  size_t end;
  while ((end = sse_pending_.find("\n\n")) == std::string::npos) {
    auto chunk = read_chunk(timeout);
    if (!chunk) return std::nullopt;
    sse_pending_ += *chunk;
  }
  std::string event = sse_pending_.substr(0, end);
  sse_pending_.erase(0, end + 2);
  std::string data;  // join the data: lines, as an SSE client does
  size_t start = 0;
  while (start <= event.size()) {
    size_t nl = event.find('\n', start);
    std::string line = event.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line.rfind("data: ", 0) == 0) data += (data.empty() ? "" : "\n") + line.substr(6);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return data;
}

ClientResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                            const std::string& body,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            std::chrono::milliseconds timeout) {
  HttpConnection connection(port);
  connection.send_request(method, path, body, headers);
  auto response = connection.read_head(timeout);
  connection.read_body(response, timeout);
  return response;
}

}  // namespace aegaeon::testing
