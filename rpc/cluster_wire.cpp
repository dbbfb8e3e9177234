#include "rpc/cluster_wire.hpp"

#include <string>

namespace aegaeon::rpc {

std::string wire_text(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }

std::vector<std::string> wire_texts(capnp::List<capnp::Text>::Reader texts) {
  std::vector<std::string> out;
  out.reserve(texts.size());
  for (auto text : texts) out.push_back(wire_text(text));
  return out;
}

void texts_to_wire(const std::vector<std::string>& texts, capnp::List<capnp::Text>::Builder list) {
  for (unsigned i = 0; i < texts.size(); ++i) list.set(i, texts[i]);
}

core::NodeRegistration node_from_wire(schema::NodeInfo::Reader info) {
  core::NodeRegistration node;
  node.node_name = wire_text(info.getNodeName());
  node.protocol_version = info.getProtocolVersion();
  for (auto device : info.getDevices()) {
    node.devices.push_back({wire_text(device.getKind()), device.getIndex(), device.getArenaBytes()});
  }
  node.host_cache_bytes = info.getHostCacheBytes();
  node.models_on_disk = wire_texts(info.getModelsOnDisk());
  node.roles = wire_texts(info.getRoles());
  for (auto model : info.getServedModels()) {
    core::ServedModel served{wire_text(model.getName()), model.getMaxContextTokens(),
                             wire_text(model.getTokenizerJson()), wire_text(model.getTokenizerConfigJson()),
                             model.getWeightBytes(), {}};
    for (auto id : model.getEosTokenIds()) served.eos_token_ids.push_back(id);
    node.served_models.push_back(std::move(served));
  }
  node.held_models = wire_texts(info.getHeldModels());
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
  texts_to_wire(node.models_on_disk, info.initModelsOnDisk(static_cast<unsigned>(node.models_on_disk.size())));
  texts_to_wire(node.roles, info.initRoles(static_cast<unsigned>(node.roles.size())));
  auto served = info.initServedModels(static_cast<unsigned>(node.served_models.size()));
  for (unsigned i = 0; i < node.served_models.size(); ++i) {
    const auto& model = node.served_models[i];
    served[i].setName(model.name);
    served[i].setMaxContextTokens(model.max_context_tokens);
    served[i].setTokenizerJson(model.tokenizer_json);
    served[i].setTokenizerConfigJson(model.tokenizer_config_json);
    served[i].setWeightBytes(model.weight_bytes);
    auto eos = served[i].initEosTokenIds(static_cast<unsigned>(model.eos_token_ids.size()));
    for (unsigned j = 0; j < model.eos_token_ids.size(); ++j) eos.set(j, model.eos_token_ids[j]);
  }
  texts_to_wire(node.held_models, info.initHeldModels(static_cast<unsigned>(node.held_models.size())));
}

core::HeartbeatReport beat_from_wire(schema::Heartbeat::Reader beat) {
  core::HeartbeatReport report{beat.getNodeId(), beat.getSequence(), beat.getRunningRequests(),
                              beat.getWaitingRequests(), beat.getKvUsage()};
  report.held_models = wire_texts(beat.getHeldModels());
  for (auto entry : beat.getModelRequests()) report.model_requests[wire_text(entry.getModel())] += entry.getCount();
  return report;
}

void beat_to_wire(const core::HeartbeatReport& beat, schema::Heartbeat::Builder wire) {
  wire.setNodeId(beat.node_id);
  wire.setSequence(beat.sequence);
  wire.setRunningRequests(beat.running_requests);
  wire.setWaitingRequests(beat.waiting_requests);
  wire.setKvUsage(beat.kv_usage);
  texts_to_wire(beat.held_models, wire.initHeldModels(static_cast<unsigned>(beat.held_models.size())));
  auto requests = wire.initModelRequests(static_cast<unsigned>(beat.model_requests.size()));
  unsigned i = 0;
  for (const auto& [model, count] : beat.model_requests) {
    requests[i].setModel(model);
    requests[i].setCount(count);
    ++i;
  }
}

core::GenerationJob job_from_wire(schema::GenerationJob::Reader job) {
  core::GenerationJob out;
  out.model = wire_text(job.getModel());
  for (auto token : job.getPrompt()) out.prompt.push_back(token);
  auto stop = job.getStop();
  out.stop.max_tokens = stop.getMaxTokens();
  out.stop.min_tokens = stop.getMinTokens();
  for (auto token : stop.getStopTokenIds()) out.stop.stop_token_ids.push_back(token);
  auto sampling = job.getSampling();
  out.sampling.temperature = sampling.getTemperature();
  out.sampling.top_p = sampling.getTopP();
  out.sampling.top_k = sampling.getTopK();
  out.sampling.min_p = sampling.getMinP();
  out.sampling.presence_penalty = sampling.getPresencePenalty();
  out.sampling.frequency_penalty = sampling.getFrequencyPenalty();
  out.sampling.repetition_penalty = sampling.getRepetitionPenalty();
  out.sampling.seed = sampling.getSeed();
  out.sampling.top_logprobs = sampling.getTopLogprobs();
  out.sampling.prompt_logprobs = sampling.getPromptLogprobs();
  for (auto entry : sampling.getLogitBias()) out.sampling.logit_bias.emplace_back(entry.getToken(), entry.getBias());
  out.sampling.structured = {sampling.getJsonSchema(), sampling.getTextBefore(), sampling.getTextAfter()};
  out.resumed_tokens = job.getResumedTokens();
  return out;
}

void job_to_wire(const core::GenerationJob& job, schema::GenerationJob::Builder wire) {
  wire.setModel(job.model);
  auto prompt = wire.initPrompt(static_cast<unsigned>(job.prompt.size()));
  for (unsigned i = 0; i < job.prompt.size(); ++i) prompt.set(i, job.prompt[i]);
  auto stop = wire.initStop();
  stop.setMaxTokens(job.stop.max_tokens);
  stop.setMinTokens(job.stop.min_tokens);
  auto stop_ids = stop.initStopTokenIds(static_cast<unsigned>(job.stop.stop_token_ids.size()));
  for (unsigned i = 0; i < job.stop.stop_token_ids.size(); ++i) stop_ids.set(i, job.stop.stop_token_ids[i]);
  auto sampling = wire.initSampling();
  sampling.setTemperature(job.sampling.temperature);
  sampling.setTopP(job.sampling.top_p);
  sampling.setTopK(job.sampling.top_k);
  sampling.setMinP(job.sampling.min_p);
  sampling.setPresencePenalty(job.sampling.presence_penalty);
  sampling.setFrequencyPenalty(job.sampling.frequency_penalty);
  sampling.setRepetitionPenalty(job.sampling.repetition_penalty);
  sampling.setSeed(job.sampling.seed.value_or(0));
  sampling.setTopLogprobs(job.sampling.top_logprobs);
  sampling.setPromptLogprobs(job.sampling.prompt_logprobs);
  auto bias = sampling.initLogitBias(static_cast<unsigned>(job.sampling.logit_bias.size()));
  for (unsigned i = 0; i < job.sampling.logit_bias.size(); ++i) {
    bias[i].setToken(job.sampling.logit_bias[i].first);
    bias[i].setBias(job.sampling.logit_bias[i].second);
  }
  sampling.setJsonSchema(job.sampling.structured.json_schema);
  sampling.setTextBefore(job.sampling.structured.before);
  sampling.setTextAfter(job.sampling.structured.after);
  wire.setResumedTokens(job.resumed_tokens);
}

namespace {

// Per position, its most likely tokens: at most `positions` of them are kept (a peer's extra
// ones belong to no token).
void alternatives_from_wire(capnp::List<schema::Alternatives>::Reader steps, std::size_t positions,
                            std::vector<std::vector<core::TokenLogprob>>& out) {
  for (auto step : steps) {
    if (out.size() == positions) break;
    auto& alternatives = out.emplace_back();
    auto tokens = step.getTokens();
    auto logprobs = step.getLogprobs();
    for (unsigned i = 0; i < tokens.size() && i < logprobs.size(); ++i) alternatives.push_back({tokens[i], logprobs[i]});
  }
}

template <typename Init>
void alternatives_to_wire(const std::vector<std::vector<core::TokenLogprob>>& steps, Init init) {
  if (steps.empty()) return;
  auto wire = init(static_cast<unsigned>(steps.size()));
  for (unsigned i = 0; i < steps.size(); ++i) {
    const auto& alternatives = steps[i];
    auto tokens = wire[i].initTokens(static_cast<unsigned>(alternatives.size()));
    auto logprobs = wire[i].initLogprobs(static_cast<unsigned>(alternatives.size()));
    for (unsigned a = 0; a < alternatives.size(); ++a) {
      tokens.set(a, alternatives[a].token);
      logprobs.set(a, alternatives[a].logprob);
    }
  }
}

}  // namespace

void batch_from_wire(schema::TokenBatch::Reader batch, core::GenerationUpdate& update) {
  for (auto token : batch.getTokens()) update.tokens.push_back(token);
  for (auto logprob : batch.getLogprobs()) update.logprobs.push_back(logprob);
  // A peer may send fewer logprobs than tokens; consumers index them by token.
  update.logprobs.resize(update.tokens.size(), 0.0f);
  // Alternatives beyond the last token belong to no token: dropped.
  alternatives_from_wire(batch.getTopLogprobs(), update.tokens.size(), update.top_logprobs);
  for (auto logprob : batch.getPromptLogprobs()) update.prompt_logprobs.push_back(logprob);
  alternatives_from_wire(batch.getPromptTopLogprobs(), update.prompt_logprobs.size(), update.prompt_top_logprobs);
  update.queue_s = batch.getQueueSeconds();
  update.kv_pull_s = batch.getKvPullSeconds();
  update.kv_shared_memory = batch.getKvSharedMemory();
}

void batch_to_wire(const core::GenerationUpdate& update, schema::TokenBatch::Builder batch) {
  auto tokens = batch.initTokens(static_cast<unsigned>(update.tokens.size()));
  for (unsigned i = 0; i < update.tokens.size(); ++i) tokens.set(i, update.tokens[i]);
  auto logprobs = batch.initLogprobs(static_cast<unsigned>(update.logprobs.size()));
  for (unsigned i = 0; i < update.logprobs.size(); ++i) logprobs.set(i, update.logprobs[i]);
  alternatives_to_wire(update.top_logprobs, [&](unsigned n) { return batch.initTopLogprobs(n); });
  auto prompt_logprobs = batch.initPromptLogprobs(static_cast<unsigned>(update.prompt_logprobs.size()));
  for (unsigned i = 0; i < update.prompt_logprobs.size(); ++i) prompt_logprobs.set(i, update.prompt_logprobs[i]);
  alternatives_to_wire(update.prompt_top_logprobs, [&](unsigned n) { return batch.initPromptTopLogprobs(n); });
  batch.setQueueSeconds(update.queue_s);
  batch.setKvPullSeconds(update.kv_pull_s);
  batch.setKvSharedMemory(update.kv_shared_memory);
}

core::FinishReason reason_from_wire(schema::FinishReason reason) {
  switch (reason) {
    case schema::FinishReason::STOP: return core::FinishReason::kStop;
    case schema::FinishReason::LENGTH: return core::FinishReason::kLength;
    case schema::FinishReason::CANCELLED: return core::FinishReason::kCancelled;
    case schema::FinishReason::ERROR: return core::FinishReason::kError;
    case schema::FinishReason::NONE: break;
  }
  return core::FinishReason::kNone;  // also for values from a newer peer
}

schema::FinishReason reason_to_wire(core::FinishReason reason) {
  switch (reason) {
    case core::FinishReason::kStop: return schema::FinishReason::STOP;
    case core::FinishReason::kLength: return schema::FinishReason::LENGTH;
    case core::FinishReason::kCancelled: return schema::FinishReason::CANCELLED;
    case core::FinishReason::kError: return schema::FinishReason::ERROR;
    case core::FinishReason::kNone: break;
  }
  return schema::FinishReason::NONE;
}

}  // namespace aegaeon::rpc
