// Flags shared by `aegaeon controller` and `aegaeon worker`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aegaeon::cmd {

/// A HOST:PORT flag value.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

/// Parses HOST:PORT (the port may be 0: an ephemeral one); throws CommandError naming `flag`.
HostPort parse_host_port(const std::string& text, const std::string& flag);

/// A node's name when --name is not given: HOST-PID (unique on a host, readable in logs).
std::string default_node_name();

/// Parses HOST:PORT[,HOST:PORT...] (at least one, no repeats); throws CommandError naming `flag`.
std::vector<HostPort> parse_host_ports(const std::string& text, const std::string& flag);

}  // namespace aegaeon::cmd
