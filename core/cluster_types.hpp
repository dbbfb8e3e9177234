// Plain mirrors of rpc/schema/cluster.capnp for in-process use (DESIGN.md rule 3); conversion
// to and from the wire lives in rpc/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/generation.hpp"
#include "core/host_bytes.hpp"

namespace aegaeon::core {

/// One device a node offers.
struct DeviceInfo {
  std::string kind;  ///< "cpu" or "cuda"
  uint32_t index = 0;
  uint64_t arena_bytes = 0;
};

/// A model a worker serves, with what the controller needs to tokenize for it.
struct ServedModel {
  std::string name;
  std::int32_t max_context_tokens = 0;
  std::string tokenizer_json;
  std::string tokenizer_config_json;  ///< empty when the model has none; chat_template.jinja folded in
  std::uint64_t weight_bytes = 0;     ///< host memory its weights take when held
  std::vector<std::int32_t> eos_token_ids;  ///< from generation_config.json and config.json
};

/// What a node sends when it joins the cluster.
struct NodeRegistration {
  std::string node_name;
  uint32_t protocol_version = 0;
  std::vector<DeviceInfo> devices;
  uint64_t host_cache_bytes = 0;  ///< for model weights; 0: no limit (it holds every model)
  std::vector<std::string> models_on_disk;
  std::vector<std::string> roles;  ///< "prefill", "decode"
  std::vector<ServedModel> served_models;
  std::vector<std::string> held_models;  ///< whose weights it holds now (it serves only those)
};

/// The controller's answer to a registration.
struct RegistrationReply {
  uint64_t node_id = 0;
  uint32_t heartbeat_interval_ms = 0;
};

/// A node's periodic liveness and load report.
struct HeartbeatReport {
  uint64_t node_id = 0;
  uint64_t sequence = 0;
  uint32_t running_requests = 0;
  uint32_t waiting_requests = 0;
  float kv_usage = 0;  ///< 0..1
  std::vector<std::string> held_models;  ///< whose weights it holds now (and keeps)
  /// Requests per model: a worker's generations in flight (from every controller), or a proxy
  /// controller's requests waiting for a worker to hold their model.
  std::map<std::string, std::uint32_t> model_requests;
};

/// One tokenized request the controller submits to a worker.
struct GenerationJob {
  std::string model;
  std::vector<std::int32_t> prompt;  ///< re-submissions append the tokens already streamed
  StopConditions stop;      ///< re-submissions count the tokens already streamed off max and min
  SamplingParams sampling;  ///< its seed is always set (the proxy drew one if the client did not)
  /// A re-submission: how many of the prompt's last tokens the request generated before. They
  /// count for the penalties and a seeded random stream continues after them.
  std::int32_t resumed_tokens = 0;
};

/// A prefilled request's KV on its way from a prefill-only worker to a decode worker.
struct KvHandoff {
  std::int32_t kv_tokens = 0;   ///< positions in the KV (the prompt)
  std::int32_t last_token = 0;  ///< the token the first decode step appends (the first token)
  std::uint64_t bytes = 0;      ///< size of the KV blob
  /// The blob (blocks in the model's cache layout), where a process holds it: on the prefill
  /// worker after export, on the decode worker once pulled (or mapped from the prefill worker's
  /// memory file on one host). Empty on the controller.
  HostBytes blob;
  /// On the controller: the registry's handle of the prefill worker's copy (see
  /// rpc::ClusterRegistryServer::decode).
  std::uint64_t source_id = 0;
  /// Where a decode worker on the prefill worker's host can read the blob without pulling it
  /// through the controller (rpc/shared_kv.hpp): that host's key, the file's path and name.
  /// Empty path: only over RPC.
  struct SharedLocation {
    std::string host_key;
    std::string path;
    std::string name;
  } shared;
};

/// What a remote generation reports, in order: tokens, then once `finished`, `handoff` or
/// `worker_lost`. The token event with what the hop between processes adds (its `id` is not
/// sent: the call it answers names the generation).
struct GenerationUpdate : TokenEvent {
  double kv_pull_s = -1;        ///< set on a decode's first update: how long its KV took to arrive
  bool kv_shared_memory = false;  ///< with kv_pull_s: read from the prefill worker's shared memory
  bool worker_lost = false;     ///< the worker died or became unreachable before finishing
  /// A prefill-only worker's last update: the generation goes on on a decode worker.
  std::optional<KvHandoff> handoff;
};

}  // namespace aegaeon::core
