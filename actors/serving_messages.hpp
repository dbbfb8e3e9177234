// Plain data the serving roles exchange inside one process (DESIGN.md rule 3: messages are
// data). Across processes the same fields travel as rpc/schema messages.
#pragma once

#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/policy/request.hpp"
#include "core/generation.hpp"
#include "gpu/model/sampler.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

/// A tokenized request on its way to prefill.
struct PrefillJob {
  policy::RequestInfo info;               ///< id, model, arrival, prompt and max output lengths
  std::vector<std::int32_t> prompt;
  core::SamplingParams sampling;
  core::StopConditions stop;              ///< stop.max_tokens is info.max_output_tokens
  std::int32_t resumed_tokens = 0;        ///< see worker::PrefillItem::resumed_tokens
  /// Structured outputs: the start of sampling.structured's grammar over the model's vocabulary
  /// (CatalogEntry::constrain), or null. Built where the job enters a process.
  std::shared_ptr<const core::TokenConstraint> constraint;
};

/// The front door's question to the prefill role: admit this request?
struct AdmissionReply {
  bool admitted = true;
  double retry_after_s = 0;
  std::string reason;
};

using core::TokenEvent;

/// Called by prefill or decode once each of its devices has forgotten a model being unloaded
/// (unload_atom); on that role's thread, so it must not block.
using DevicesForgot = std::function<void()>;

/// A prefilled request moving to decode, with its KV.
struct Handoff {
  PrefillJob job;
  worker::KvExport kv;  ///< with the sequence's state: kv.last_token is its first token
};

/// What a decode device does at a turn boundary (one round trip to the gpu_worker), in order:
/// models whose weights leave, sequences whose KV goes to the host, the model to activate
/// (copied in when not resident), sequences whose KV comes back. Sequences already where they
/// are sent are skipped.
struct SwitchBatchCommand {
  std::vector<worker::SeqId> swap_out;
  std::optional<core::ModelId> load;
  std::vector<worker::SeqId> swap_in;
  std::vector<core::ModelId> evict;
};

/// One decode step of a batch: its model is made active (at once when resident) and the KV of
/// any of its sequences on the host comes onto the device first.
struct DecodeCommand {
  core::ModelId model = 0;
  std::vector<worker::SeqId> seqs;
};

/// A gpu_worker's answer to a prefill: the first token and the exported KV.
struct PrefillOutcome {
  worker::SampledToken first;
  worker::KvExport kv;
  double seconds = 0;
};

/// A gpu_worker's answer to a decode step.
struct DecodeOutcome {
  std::vector<worker::SampledToken> tokens;
  double seconds = 0;
  double kv_usage = 0;
};

/// Adopt a sequence handed off by prefill; `park` swaps it straight out to host memory (its
/// batch is not the one on the device).
struct ImportCommand {
  worker::KvExport kv;
  bool park = false;
};

}  // namespace aegaeon::actors
