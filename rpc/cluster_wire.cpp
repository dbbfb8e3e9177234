#include "rpc/cluster_wire.hpp"

#include <string>

namespace aegaeon::rpc {

std::string wire_text(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }

core::NodeRegistration node_from_wire(schema::NodeInfo::Reader info) {
  core::NodeRegistration node;
  node.node_name = wire_text(info.getNodeName());
  node.protocol_version = info.getProtocolVersion();
  for (auto device : info.getDevices()) {
    node.devices.push_back({wire_text(device.getKind()), device.getIndex(), device.getArenaBytes()});
  }
  node.host_cache_bytes = info.getHostCacheBytes();
  for (auto model : info.getModelsOnDisk()) node.models_on_disk.push_back(wire_text(model));
  for (auto role : info.getRoles()) node.roles.push_back(wire_text(role));
  return node;
}

void node_to_wire(const core::NodeRegistration& node, schema::NodeInfo::Builder info) {
  info.setNodeName(node.node_name);
  info.setProtocolVersion(node.protocol_version);
  auto devices = info.initDevices(static_cast<unsigned>(node.devices.size()));
  for (unsigned i = 0; i < node.devices.size(); ++i) {
    devices[i].setKind(node.devices[i].kind);
    devices[i].setIndex(node.devices[i].index);
    devices[i].setArenaBytes(node.devices[i].arena_bytes);
  }
  info.setHostCacheBytes(node.host_cache_bytes);
  auto models = info.initModelsOnDisk(static_cast<unsigned>(node.models_on_disk.size()));
  for (unsigned i = 0; i < node.models_on_disk.size(); ++i) models.set(i, node.models_on_disk[i]);
  auto roles = info.initRoles(static_cast<unsigned>(node.roles.size()));
  for (unsigned i = 0; i < node.roles.size(); ++i) roles.set(i, node.roles[i]);
}

core::HeartbeatReport beat_from_wire(schema::Heartbeat::Reader beat) {
  return {beat.getNodeId(), beat.getSequence(), beat.getRunningRequests(),
          beat.getWaitingRequests(), beat.getKvUsage()};
}

void beat_to_wire(const core::HeartbeatReport& beat, schema::Heartbeat::Builder wire) {
  wire.setNodeId(beat.node_id);
  wire.setSequence(beat.sequence);
  wire.setRunningRequests(beat.running_requests);
  wire.setWaitingRequests(beat.waiting_requests);
  wire.setKvUsage(beat.kv_usage);
}

}  // namespace aegaeon::rpc
