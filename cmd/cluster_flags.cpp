#include "cmd/cluster_flags.hpp"

#include <charconv>

#include <unistd.h>

#include "cmd/commands.hpp"

namespace aegaeon::cmd {

HostPort parse_host_port(const std::string& text, const std::string& flag) {
  auto colon = text.rfind(':');
  unsigned port = 0;
  if (colon != std::string::npos && colon > 0) {
    const char* begin = text.data() + colon + 1;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(begin, end, port);
    if (ec == std::errc() && ptr == end && begin != end && port <= 65535) {
      return {text.substr(0, colon), static_cast<uint16_t>(port)};
    }
  }
  throw CommandError(flag + " expects HOST:PORT (e.g. 127.0.0.1:7000), got '" + text + "'", 2);
}

std::string default_node_name() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

std::vector<HostPort> parse_host_ports(const std::string& text, const std::string& flag) {
  std::vector<HostPort> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    HostPort address = parse_host_port(item, flag);
    for (const auto& seen : out) {
      if (seen.host == address.host && seen.port == address.port) {
        throw CommandError(flag + " names " + item + " twice", 2);
      }
    }
    out.push_back(std::move(address));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace aegaeon::cmd
