// Conversion between rpc/schema/cluster.capnp and the plain mirrors in core/cluster_types.hpp.
// Internal to rpc/ (and the fuzz harness that feeds it untrusted bytes): it includes capnp.
#pragma once

#include "core/cluster_types.hpp"
#include "schema/cluster.capnp.h"

#include <string>

namespace aegaeon::rpc {

/// A capnp Text as a std::string.
std::string wire_text(capnp::Text::Reader text);

/// A NodeInfo read from the wire (every list and text an untrusted peer can send).
core::NodeRegistration node_from_wire(schema::NodeInfo::Reader info);
/// Fills a NodeInfo for sending.
void node_to_wire(const core::NodeRegistration& node, schema::NodeInfo::Builder info);
/// A Heartbeat read from the wire.
core::HeartbeatReport beat_from_wire(schema::Heartbeat::Reader beat);
/// Fills a Heartbeat for sending.
void beat_to_wire(const core::HeartbeatReport& beat, schema::Heartbeat::Builder wire);

}  // namespace aegaeon::rpc
