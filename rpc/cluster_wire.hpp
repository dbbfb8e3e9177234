// Conversion between rpc/schema/cluster.capnp and the plain mirrors in core/cluster_types.hpp.
// Internal to rpc/ (and the fuzz harness that feeds it untrusted bytes): it includes capnp.
#pragma once

#include "core/cluster_types.hpp"
#include "schema/cluster.capnp.h"

#include <string>
#include <vector>

namespace aegaeon::rpc {

/// A capnp Text as a std::string.
std::string wire_text(capnp::Text::Reader text);
/// A List(Text) as strings.
std::vector<std::string> wire_texts(capnp::List<capnp::Text>::Reader texts);
/// Fills a List(Text) initialized with texts.size() elements.
void texts_to_wire(const std::vector<std::string>& texts, capnp::List<capnp::Text>::Builder list);

/// A NodeInfo read from the wire (every list and text an untrusted peer can send).
core::NodeRegistration node_from_wire(schema::NodeInfo::Reader info);
/// Fills a NodeInfo for sending.
void node_to_wire(const core::NodeRegistration& node, schema::NodeInfo::Builder info);
/// A Heartbeat read from the wire.
core::HeartbeatReport beat_from_wire(schema::Heartbeat::Reader beat);
/// Fills a Heartbeat for sending.
void beat_to_wire(const core::HeartbeatReport& beat, schema::Heartbeat::Builder wire);
/// A GenerationJob read from the wire.
core::GenerationJob job_from_wire(schema::GenerationJob::Reader job);
/// Fills a GenerationJob for sending.
void job_to_wire(const core::GenerationJob& job, schema::GenerationJob::Builder wire);
/// The tokens of an update read from a TokenBatch (other fields untouched).
void batch_from_wire(schema::TokenBatch::Reader batch, core::GenerationUpdate& update);
/// Fills a TokenBatch with an update's tokens.
void batch_to_wire(const core::GenerationUpdate& update, schema::TokenBatch::Builder batch);
/// Finish reasons on the wire.
core::FinishReason reason_from_wire(schema::FinishReason reason);
schema::FinishReason reason_to_wire(core::FinishReason reason);

}  // namespace aegaeon::rpc
