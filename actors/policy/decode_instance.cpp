#include "actors/policy/decode_instance.hpp"

#include <algorithm>

namespace aegaeon::policy {

DecodeInstance::DecodeInstance(DecodeInstanceConfig config, std::span<const ModelCosts> costs)
    : config_(config), costs_(costs) {}

std::optional<BatchId> DecodeInstance::joinable_batch(ModelId model, std::int64_t context_tokens) const {
  const std::int64_t capacity = costs_[static_cast<std::size_t>(model)].kv_capacity_tokens;
  for (const auto& b : batches_) {
    if (b.model == model && static_cast<std::int32_t>(b.requests.size()) < config_.max_batch_size &&
        b.context_tokens + context_tokens <= capacity) {
      return b.id;
    }
  }
  return std::nullopt;
}

BatchId DecodeInstance::add_request(const RequestInfo& request, std::optional<BatchId> batch) {
  // The first token came out of prefill; decoding produces the rest.
  DecodeRequest r{request, request.input_tokens + 1, std::max(request.max_output_tokens - 1, 0)};
  DecodeBatch* target = batch ? find(*batch) : nullptr;
  if (target == nullptr) {
    batches_.push_back(DecodeBatch{next_batch_id_++, request.model, {}, 0});
    target = &batches_.back();
  }
  target->context_tokens += r.context_tokens;
  target->requests.push_back(r);
  return target->id;
}

DecodeBatch* DecodeInstance::find(BatchId id) {
  for (auto& b : batches_) {
    if (b.id == id) return &b;
  }
  return nullptr;
}

const DecodeBatch* DecodeInstance::batch(BatchId id) const {
  for (const auto& b : batches_) {
    if (b.id == id) return &b;
  }
  return nullptr;
}

std::int64_t DecodeInstance::requests() const {
  std::int64_t n = 0;
  for (const auto& b : batches_) n += static_cast<std::int64_t>(b.requests.size());
  return n;
}

BatchLoad DecodeInstance::load_of(ModelId model, std::int64_t context_tokens, std::int64_t size) const {
  const ModelCosts& c = costs_[static_cast<std::size_t>(model)];
  return BatchLoad{model, c.decode.estimate_s(static_cast<double>(context_tokens), static_cast<double>(size)),
                   c.model_switch_s, c.kv_swap_s_per_token * static_cast<double>(context_tokens)};
}

void DecodeInstance::start_round(std::optional<ModelId> resident) {
  std::vector<BatchLoad> loads;
  loads.reserve(batches_.size());
  for (const auto& b : batches_) {
    loads.push_back(load_of(b.model, b.context_tokens, static_cast<std::int64_t>(b.requests.size())));
  }
  plan_ = plan_round(loads, config_.round, resident);
  order_.clear();
  order_quota_s_.clear();
  // Start with the batch already on the device when it belongs to the resident model, so a
  // round does not open with a needless swap.
  std::vector<std::size_t> order = plan_.order;
  if (current_) {
    auto it = std::find_if(order.begin(), order.end(),
                           [&](std::size_t i) { return batches_[i].id == *current_; });
    if (it != order.end() && (!resident || batches_[*it].model == *resident)) {
      std::rotate(order.begin(), it, it + 1);
    }
  }
  for (std::size_t i : order) {
    order_.push_back(batches_[i].id);
    order_quota_s_.push_back(plan_.quota_s[i]);
  }
  pos_ = 0;
  turn_started_ = false;
}

std::optional<ModelId> DecodeInstance::prefetch_after(std::size_t pos, ModelId model) const {
  if (!config_.prefetch) return std::nullopt;
  for (std::size_t k = 1; k <= order_.size(); ++k) {
    const DecodeBatch* b = batch(order_[(pos + k) % order_.size()]);
    if (b != nullptr && b->model != model) return b->model;
  }
  return std::nullopt;
}

DecodeAction DecodeInstance::next_run_to_completion(std::optional<ModelId> resident) const {
  const DecodeBatch* next = current_ ? batch(*current_) : nullptr;
  for (const auto& b : batches_) {
    if (next == nullptr && resident && b.model == *resident) next = &b;
  }
  if (next == nullptr) next = &batches_.front();  // batches_ is in creation order: the oldest
  DecodeAction action;
  action.batch = next->id;
  action.model = next->model;
  if (current_ == next->id) {
    action.kind = DecodeAction::Kind::kStep;
    return action;
  }
  // current_ is empty here: a batch leaves the device only by finishing.
  action.kind = DecodeAction::Kind::kSwitch;
  action.load_model = !resident || *resident != next->model;
  action.swap_in_tokens = next->context_tokens;
  return action;
}

DecodeAction DecodeInstance::next_action(double now_s, std::optional<ModelId> resident) {
  DecodeAction action;
  if (batches_.empty()) return action;
  if (!config_.preemptive) return next_run_to_completion(resident);
  // Bounded: every pass either returns or advances pos_; a new round always returns.
  for (int guard = 0; guard < 4 * static_cast<int>(batches_.size() + order_.size()) + 8; ++guard) {
    if (pos_ >= order_.size()) start_round(resident);
    const BatchId id = order_[pos_];
    const DecodeBatch* b = batch(id);
    if (b == nullptr) {  // finished or merged away since the round was planned
      ++pos_;
      turn_started_ = false;
      continue;
    }
    action.batch = id;
    action.model = b->model;
    action.prefetch_model = prefetch_after(pos_, b->model);
    if (current_ != id) {
      action.kind = DecodeAction::Kind::kSwitch;
      action.load_model = !resident || *resident != b->model;
      action.swap_in_tokens = b->context_tokens;
      if (current_) {
        action.swap_out = current_;
        const DecodeBatch* out = batch(*current_);
        action.swap_out_tokens = out != nullptr ? out->context_tokens : 0;
      }
      return action;
    }
    if (!turn_started_) {
      turn_started_ = true;
      turn_start_s_ = now_s;
      action.kind = DecodeAction::Kind::kStep;
      return action;
    }
    // A lone batch never yields; otherwise the turn lasts its quota, counted from its first step.
    if (batches_.size() == 1 || now_s - turn_start_s_ < order_quota_s_[pos_]) {
      action.kind = DecodeAction::Kind::kStep;
      return action;
    }
    ++pos_;
    turn_started_ = false;
  }
  return action;  // unreachable in practice; idle is the safe answer
}

void DecodeInstance::on_switched(BatchId batch) { current_ = batch; }

StepOutcome DecodeInstance::on_step_done(std::span<const RequestId> eos) {
  StepOutcome out;
  if (!current_) return out;
  DecodeBatch* b = find(*current_);
  if (b == nullptr) return out;
  std::int64_t ctx = 0;
  std::size_t keep = 0;
  for (std::size_t i = 0; i < b->requests.size(); ++i) {
    DecodeRequest r = b->requests[i];
    ++r.context_tokens;
    --r.remaining_tokens;
    const bool ended = r.remaining_tokens <= 0 ||
                       std::find(eos.begin(), eos.end(), r.info.id) != eos.end();
    if (ended) {
      out.finished.push_back(r.info.id);
      continue;
    }
    ctx += r.context_tokens;
    b->requests[keep++] = r;
  }
  b->requests.resize(keep);
  b->context_tokens = ctx;
  const ModelId model = b->model;
  if (b->requests.empty()) {
    batches_.erase(batches_.begin() + (b - batches_.data()));
    current_.reset();  // its KV is freed, nothing to swap out
    return out;
  }
  // Truncation: the batch's KV outgrew what the device holds next to its weights. Move the most
  // recently joined requests to a new batch (their KV goes to host) until the rest fits.
  const std::int64_t capacity = costs_[static_cast<std::size_t>(model)].kv_capacity_tokens;
  if (b->context_tokens > capacity && b->requests.size() > 1) {
    DecodeBatch split{next_batch_id_++, model, {}, 0};
    while (b->context_tokens > capacity && b->requests.size() > 1) {
      split.requests.insert(split.requests.begin(), b->requests.back());
      split.context_tokens += b->requests.back().context_tokens;
      b->context_tokens -= b->requests.back().context_tokens;
      b->requests.pop_back();
    }
    out.split_batch = split.id;
    out.split_tokens = split.context_tokens;
    batches_.push_back(std::move(split));  // invalidates b
  }
  return out;
}

double DecodeInstance::what_if_alpha(ModelId model, std::int64_t context_tokens,
                                     std::optional<ModelId> resident) const {
  std::vector<BatchLoad> loads;
  const auto join = joinable_batch(model, context_tokens);
  for (const auto& b : batches_) {
    const bool joins = join && *join == b.id;
    loads.push_back(load_of(b.model, b.context_tokens + (joins ? context_tokens : 0),
                            static_cast<std::int64_t>(b.requests.size()) + (joins ? 1 : 0)));
  }
  if (!join) loads.push_back(load_of(model, context_tokens, 1));
  return plan_round(loads, config_.round, resident).alpha;
}

DecodeDispatch dispatch_decode(std::span<const DecodeInstance> instances, ModelId model,
                               std::int64_t context_tokens, const ModelPins& pins) {
  for (std::size_t i = 0; i < instances.size(); ++i) {
    if (!pins.allows(model, static_cast<InstanceId>(i))) continue;
    if (auto b = instances[i].joinable_batch(model, context_tokens)) {
      return DecodeDispatch{static_cast<InstanceId>(i), b};
    }
  }
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < instances.size(); ++i) {
    if (!pins.allows(model, static_cast<InstanceId>(i))) continue;
    if (!best) {
      best = i;
      continue;
    }
    const auto& b = instances[*best];
    const auto& cand = instances[i];
    if (cand.batches().size() < b.batches().size() ||
        (cand.batches().size() == b.batches().size() && cand.requests() < b.requests())) {
      best = i;
    }
  }
  // Pins always leave the model an instance; without one it may go to the first.
  return DecodeDispatch{static_cast<InstanceId>(best.value_or(0)), std::nullopt};
}

}  // namespace aegaeon::policy
