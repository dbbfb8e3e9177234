#include "actors/policy/decode_instance.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aegaeon::policy {

namespace {

// The batch's KV in tokens once every request has produced its last token.
std::int64_t final_context_tokens(const DecodeBatch& b) {
  std::int64_t tokens = 0;
  for (const auto& r : b.requests) tokens += r.context_tokens + r.remaining_tokens;
  return tokens;
}

}  // namespace

DecodeInstance::DecodeInstance(DecodeInstanceConfig config, std::span<const ModelCosts> costs)
    : config_(config), costs_(costs) {}

std::optional<BatchId> DecodeInstance::joinable_batch(ModelId model, std::int64_t context_tokens) const {
  const std::int64_t capacity = batch_capacity_tokens(model);
  for (const auto& b : batches_) {
    if (b.model == model && static_cast<std::int32_t>(b.requests.size()) < config_.max_batch_size &&
        b.context_tokens + context_tokens <= capacity) {
      return b.id;
    }
  }
  return std::nullopt;
}

BatchId DecodeInstance::add_request(const RequestInfo& request, std::optional<BatchId> batch, bool kv_here) {
  // The first token came out of prefill; decoding produces the rest.
  weights_.on_demand(request.model, request.arrival_s);
  return add_to_batch(request, batch, elastic() && kv_here);
}

BatchId DecodeInstance::add_to_batch(const RequestInfo& request, std::optional<BatchId> batch, bool kv_here) {
  DecodeRequest r{request, request.input_tokens + 1, std::max(request.max_output_tokens - 1, 0)};
  DecodeBatch* target = batch ? find(*batch) : nullptr;
  const bool opened = target == nullptr;
  if (opened) {
    batches_.push_back(DecodeBatch{next_batch_id_++, request.model, {}, 0});
    target = &batches_.back();
    if (kv_here) kv_on_device_.push_back(target->id);
  }
  target->context_tokens += r.context_tokens;
  target->requests.push_back(r);
  const BatchId id = target->id;
  if (opened && config_.immediate_turns) insert_turn(id);
  return id;
}

void DecodeInstance::insert_turn(BatchId id) {
  if (pos_ >= order_.size()) return;  // no round running: the next one includes the batch
  std::size_t index = 0;
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    if (batches_[i].id == id) index = i;
  }
  const RoundPlan plan = plan_round(round_loads(), config_.round);
  // At the end of the running round: it waits for the turns already promised, not a round more.
  order_.push_back(id);
  order_quota_s_.push_back(plan.quota_s[index]);
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

bool DecodeInstance::kv_on_device(BatchId id) const {
  if (!elastic()) return current_ == id;
  return std::find(kv_on_device_.begin(), kv_on_device_.end(), id) != kv_on_device_.end();
}

double DecodeInstance::kv_bytes(const DecodeBatch& b) const {
  return static_cast<double>(b.context_tokens) * costs_[static_cast<std::size_t>(b.model)].kv_bytes_per_token;
}

double DecodeInstance::weight_bytes(ModelId model) const {
  return config_.weight_slots > 0 ? 0.0 : costs_[static_cast<std::size_t>(model)].weight_bytes;
}

bool DecodeInstance::slot_free(std::size_t resident) const {
  return config_.weight_slots <= 0 || resident < static_cast<std::size_t>(config_.weight_slots);
}

double DecodeInstance::used_bytes() const {
  double sum = config_.weight_slots > 0 ? 0.0 : weights_.bytes(costs_);
  for (BatchId id : kv_on_device_) {
    if (const DecodeBatch* b = batch(id)) sum += kv_bytes(*b);
  }
  return sum;
}

bool DecodeInstance::kv_lands_here(const RequestInfo& request, std::optional<BatchId> join) const {
  if (!elastic()) return false;
  if (join) return kv_on_device(*join);
  const double bytes = static_cast<double>(request.input_tokens + 1) *
                       costs_[static_cast<std::size_t>(request.model)].kv_bytes_per_token;
  return free_bytes() >= bytes;
}

double DecodeInstance::free_bytes() const {
  return elastic() ? std::max(0.0, config_.memory_bytes - used_bytes()) : 0.0;
}

std::int64_t DecodeInstance::batch_capacity_tokens(ModelId model) const {
  const ModelCosts& c = costs_[static_cast<std::size_t>(model)];
  if (!elastic() || c.kv_bytes_per_token <= 0.0) return c.kv_capacity_tokens;
  return static_cast<std::int64_t>(std::max(0.0, config_.memory_bytes - weight_bytes(model)) / c.kv_bytes_per_token);
}

std::vector<BatchId> DecodeInstance::swap_candidates(std::optional<BatchId> keep) const {
  // Distance (in turns) until each batch runs again; batches not in this round come last.
  auto distance = [&](BatchId id) {
    for (std::size_t k = 0; k < order_.size(); ++k) {
      if (order_[(pos_ + k) % order_.size()] == id) return k;
    }
    return order_.size();
  };
  std::vector<BatchId> out;
  for (BatchId id : kv_on_device_) {
    if (!keep || id != *keep) out.push_back(id);
  }
  std::stable_sort(out.begin(), out.end(), [&](BatchId a, BatchId b) { return distance(a) > distance(b); });
  return out;
}

void DecodeInstance::make_room(const DecodeBatch& target, DecodeAction& action, double now_s) const {
  if (!elastic()) {
    // The paper's device: the batch on it leaves, and its model with it when another loads.
    if (current_ && *current_ != target.id) {
      action.swap_out.push_back(*current_);
      const DecodeBatch* out = batch(*current_);
      action.swap_out_tokens = out != nullptr ? out->context_tokens : 0;
    }
    if (action.load_model) action.evict = weights_.models();
    return;
  }
  const double need = (action.load_model ? weight_bytes(target.model) : 0.0) +
                      (target.id != 0 && kv_on_device(target.id) ? 0.0 : kv_bytes(target));
  double free = config_.memory_bytes - used_bytes();
  // With weight slots, a model that loads needs one free once the action's evictions are done.
  auto slots_full = [&] { return action.load_model && !slot_free(weights_.models().size() - action.evict.size()); };
  // Whether evicting more models is useless: they free the bytes or the slot needed.
  auto weights_done = [&] { return config_.weight_slots > 0 ? !slots_full() : free >= need; };
  if (free >= need && !slots_full()) return;
  auto evicted = [&](ModelId m) { return std::find(action.evict.begin(), action.evict.end(), m) != action.evict.end(); };
  auto swapped = [&](BatchId id) { return std::find(action.swap_out.begin(), action.swap_out.end(), id) != action.swap_out.end(); };
  // Whether `m` has a batch here (`with_kv`: one whose KV stays on the device after this action).
  auto has_batch = [&](ModelId m, bool with_kv) {
    for (const auto& b : batches_) {
      if (b.model == m && (!with_kv || (kv_on_device(b.id) && !swapped(b.id)))) return true;
    }
    return false;
  };
  const std::vector<ModelId> order = weights_.eviction_order(costs_, now_s);
  auto evict_where = [&](bool idle_only) {
    for (ModelId m : order) {
      if (weights_done()) return;
      if (m == target.model || evicted(m) || has_batch(m, !idle_only)) continue;
      action.evict.push_back(m);
      free += weight_bytes(m);
    }
  };
  // 1. Models no batch here wants; 2. other batches' KV, the one needed last first; 3. the models
  // of batches now wholly on the host. With weight slots a model may also have to leave for a
  // slot while its batch's KV stays.
  evict_where(/*idle_only=*/true);
  for (ModelId m : order) {
    if (!slots_full()) break;
    if (m != target.model && !evicted(m)) action.evict.push_back(m);
  }
  for (BatchId id : swap_candidates(target.id)) {
    if (free >= need) break;
    const DecodeBatch* b = batch(id);
    if (b == nullptr) continue;
    action.swap_out.push_back(id);
    action.swap_out_tokens += b->context_tokens;
    free += kv_bytes(*b);
  }
  evict_where(/*idle_only=*/false);
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

double DecodeInstance::decode_share(ModelId model) const {
  double own = 0.0, all = 0.0;
  for (const auto& b : batches_) {
    const double step_s = load_of(b.model, b.context_tokens, static_cast<std::int64_t>(b.requests.size())).step_s;
    all += step_s;
    if (b.model == model) own += step_s;
  }
  return all > 0.0 ? own / all : 0.0;
}

double DecodeInstance::kv_bytes_at_completion() const {
  double bytes = 0.0;
  for (const auto& b : batches_) {
    bytes += static_cast<double>(final_context_tokens(b)) * costs_[static_cast<std::size_t>(b.model)].kv_bytes_per_token;
  }
  return bytes;
}

double DecodeInstance::first_finish_s() const {
  std::int32_t tokens = std::numeric_limits<std::int32_t>::max();
  for (const auto& b : batches_) {
    for (const auto& r : b.requests) tokens = std::min(tokens, r.remaining_tokens);
  }
  return batches_.empty() ? std::numeric_limits<double>::infinity() : tokens * config_.round.tbt_slo_s;
}

std::vector<BatchLoad> DecodeInstance::round_loads(std::optional<RequestInfo> extra) const {
  struct Item {
    ModelId model;
    std::int64_t context;
    std::int64_t size;
    std::int64_t final_context;  // when every request has produced all its tokens
  };
  std::vector<Item> items;
  for (const auto& b : batches_) {
    items.push_back(
        Item{b.model, b.context_tokens, static_cast<std::int64_t>(b.requests.size()), final_context_tokens(b)});
  }
  // Requests placed here and not in a batch yet (and the one asked about) join their model's
  // batch, or open one.
  auto add = [&](const RequestInfo& r) {
    const std::int64_t context = r.input_tokens + 1;
    const std::int64_t final_context = r.input_tokens + std::max(r.max_output_tokens, 1);
    for (auto& it : items) {
      if (it.model == r.model) {
        it.context += context;
        it.size += 1;
        it.final_context += final_context;
        return;
      }
    }
    items.push_back(Item{r.model, context, 1, final_context});
  };
  for (const auto& r : prefills_) add(r);
  for (const auto& r : arrivals_) add(r);
  if (extra) add(*extra);
  std::vector<BatchLoad> loads;
  for (const auto& it : items) loads.push_back(load_of(it.model, it.context, it.size));
  if (!elastic()) return loads;
  // Per model: weights + its batches' KV as it will grow. Models stay while their footprint fits, resident ones
  // first (most demanded first), leaving room for the largest cycling model to come in.
  std::vector<ModelId> models;
  std::vector<double> footprint;
  for (const auto& it : items) {
    const ModelCosts& c = costs_[static_cast<std::size_t>(it.model)];
    auto pos = std::find(models.begin(), models.end(), it.model);
    if (pos == models.end()) {
      models.push_back(it.model);
      footprint.push_back(weight_bytes(it.model));
      pos = models.end() - 1;
    }
    footprint[static_cast<std::size_t>(pos - models.begin())] += static_cast<double>(it.final_context) * c.kv_bytes_per_token;
  }
  double total = 0.0;
  for (double f : footprint) total += f;
  const bool all_fit = total <= config_.memory_bytes && slot_free(models.size() - 1);
  std::vector<bool> stays(models.size(), all_fit);
  if (!all_fit) {
    std::vector<std::size_t> order(models.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const bool ra = weights_.contains(models[a]), rb = weights_.contains(models[b]);
      if (ra != rb) return ra;
      return weights_.demand(models[a], turn_start_s_) > weights_.demand(models[b], turn_start_s_);
    });
    double used = 0.0;
    double largest = 0.0;
    std::size_t staying = 0;
    for (std::size_t k : order) largest = std::max(largest, footprint[k]);
    for (std::size_t k : order) {
      // A slot stays free for the models that cycle, too.
      if (used + footprint[k] + largest > config_.memory_bytes || !slot_free(staying + 1)) break;
      stays[k] = true;
      used += footprint[k];
      ++staying;
    }
  }
  for (std::size_t k = 0; k < items.size(); ++k) {
    const auto m = static_cast<std::size_t>(std::find(models.begin(), models.end(), items[k].model) - models.begin());
    loads[k].model_stays = stays[m];
    loads[k].kv_stays = stays[m];
  }
  return loads;
}

void DecodeInstance::start_round(std::optional<ModelId> resident) {
  const std::vector<BatchLoad> loads = round_loads();
  plan_ = plan_round(loads, config_.round, resident);
  // Elastic memory: a round that switches starts with the batch on the device (saving a switch);
  // one that does not keeps the batches' order, or that batch would get two turns in a row.
  const bool keep_current = current_ && (!elastic() || plan_.switch_s > 0.0);
  if (elastic() && keep_current && batch(*current_) != nullptr) {
    resident = batch(*current_)->model;
    plan_ = plan_round(loads, config_.round, resident);
  }
  order_.clear();
  order_quota_s_.clear();
  // Start with the batch already on the device when it belongs to the resident model, so a
  // round does not open with a needless swap. The plan also counts requests placed here and not
  // in a batch yet (round_loads lists them after the batches): they get turns from the next round.
  std::vector<std::size_t> order;
  for (std::size_t i : plan_.order) {
    if (i < batches_.size()) order.push_back(i);
  }
  if (keep_current) {
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
    if (b == nullptr || b->model == model) continue;
    if (!elastic()) return b->model;
    // Elastic memory prefetches only into free room, and only what is not there yet.
    if (weights_.contains(b->model)) continue;
    if (weight_bytes(b->model) <= free_bytes() && slot_free(weights_.models().size())) return b->model;
    return std::nullopt;
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
  if (!elastic()) {
    // The paper's device holds what its executor says it holds.
    weights_.clear();
    if (resident) weights_.insert(*resident);
  } else {
    // The instance tracks its own resident set; start_round puts the current batch's model first
    // only when the round switches.
    resident = std::nullopt;
    for (const auto& r : arrivals_) add_request(r, joinable_batch(r.model, r.input_tokens + 1));
    arrivals_.clear();
    if (auto prefill = next_prefill(now_s)) return *prefill;
  }
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
    const bool ready = elastic() ? weights_.contains(b->model) && kv_on_device(id) : current_ == id;
    if (!ready) {
      action.kind = DecodeAction::Kind::kSwitch;
      action.load_model = !weights_.contains(b->model);
      action.swap_in_tokens = kv_on_device(id) ? 0 : b->context_tokens;
      make_room(*b, action, now_s);
      pending_switch_ = action;
      return action;
    }
    current_ = id;
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

void DecodeInstance::apply_pending() {
  for (ModelId m : pending_switch_.evict) weights_.erase(m);
  for (BatchId out : pending_switch_.swap_out) std::erase(kv_on_device_, out);
  weights_.insert(pending_switch_.model);
  pending_switch_ = DecodeAction{};
}

void DecodeInstance::add_prefill(const RequestInfo& request) {
  weights_.on_demand(request.model, request.arrival_s);
  prefills_.push_back(request);
}

void DecodeInstance::on_loaded() { apply_pending(); }

void DecodeInstance::add_arrival(const RequestInfo& request) { arrivals_.push_back(request); }

std::optional<BatchId> DecodeInstance::on_prefilled(RequestId request) {
  auto it = std::find_if(prefills_.begin(), prefills_.end(), [&](const RequestInfo& r) { return r.id == request; });
  if (it == prefills_.end()) return std::nullopt;
  const RequestInfo info = *it;
  prefills_.erase(it);
  if (info.max_output_tokens <= 1) return std::nullopt;
  // One batch per model where it fits: a batch's turn steps all its requests at once. Its demand
  // was counted by add_prefill; its KV was computed here.
  return add_to_batch(info, joinable_batch(info.model, info.input_tokens + 1), /*kv_here=*/true);
}

std::optional<DecodeAction> DecodeInstance::next_prefill(double now_s) {
  if (prefills_.empty() || (prefilled_last_ && !batches_.empty())) {
    prefilled_last_ = false;
    return std::nullopt;
  }
  const RequestInfo& head = prefills_.front();
  DecodeAction action;
  action.model = head.model;
  if (weights_.contains(head.model)) {
    action.kind = DecodeAction::Kind::kPrefill;
    action.request = head.id;
    prefilled_last_ = true;
    return action;
  }
  // Room for the weights and the prompt's KV, made the way a switch makes it.
  action.kind = DecodeAction::Kind::kLoad;
  action.load_model = true;
  DecodeBatch prompt{0, head.model, {}, head.input_tokens + 1};
  make_room(prompt, action, now_s);
  pending_switch_ = action;
  return action;
}

void DecodeInstance::on_switched(BatchId id) {
  if (pending_switch_.batch == id) {
    if (const DecodeBatch* b = batch(id)) pending_switch_.model = b->model;
    apply_pending();
  }
  pending_switch_ = DecodeAction{};
  if (elastic() && !kv_on_device(id)) kv_on_device_.push_back(id);
  current_ = id;
}

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
    std::erase(kv_on_device_, b->id);
    batches_.erase(batches_.begin() + (b - batches_.data()));
    current_.reset();  // its KV is freed, nothing to swap out
    return out;
  }
  if (elastic() && used_bytes() > config_.memory_bytes) {
    // The KV grew past the device: idle models leave first (when they share its memory), then
    // other batches' KV.
    for (ModelId m : weights_.eviction_order(costs_, turn_start_s_)) {
      if (used_bytes() <= config_.memory_bytes || config_.weight_slots > 0) break;
      const bool wanted = std::any_of(batches_.begin(), batches_.end(), [&](const DecodeBatch& x) { return x.model == m; });
      if (m == model || wanted) continue;
      weights_.erase(m);
      out.evicted.push_back(m);
    }
    for (BatchId id : swap_candidates(current_)) {
      if (used_bytes() <= config_.memory_bytes) break;
      out.swapped_out.push_back(id);
      out.swap_out_tokens += batch(id)->context_tokens;
      std::erase(kv_on_device_, id);
    }
    b = find(*current_);
  }
  // Truncation: the batch's KV outgrew what the device holds next to its weights. Move the most
  // recently joined requests to a new batch (their KV goes to host) until the rest fits.
  const std::int64_t capacity = batch_capacity_tokens(model);
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
                                     std::optional<ModelId> resident, std::int32_t max_output_tokens) const {
  if (!elastic()) {
    // The paper's view: the request joins a fitting batch of its model, else opens one.
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
  RequestInfo extra;
  extra.model = model;
  extra.input_tokens = static_cast<std::int32_t>(context_tokens - 1);
  extra.max_output_tokens = max_output_tokens;
  return plan_round(round_loads(extra), config_.round, resident).alpha;
}

namespace {

// The paper's rule: the first fitting same-model batch, else the instance with the fewest batches.
DecodeDispatch dispatch_by_batches(std::span<const DecodeInstance> instances, ModelId model,
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

// A model held somewhere gets another copy only when each device that holds it is full of the
// model's own batches (at least half of its decode time) or frees no room within a newcomer's
// patience (half the TTFT SLO: the round bound). A copy costs a load and evicts other models,
// which then miss in turn (memory thrashes once models outnumber what devices hold), where a
// request that waits for its model's device, while other models' requests there end, costs only
// its own wait.
bool justifies_another_copy(std::span<const DecodeInstance> instances, ModelId model, const ModelPins& pins) {
  for (std::size_t i = 0; i < instances.size(); ++i) {
    const auto& inst = instances[i];
    if (!pins.allows(model, static_cast<InstanceId>(i)) || !inst.holds_model(model)) continue;
    const double bound_s = inst.config().round.max_round_s;
    const double patience_s = bound_s > 0.0 ? bound_s : std::numeric_limits<double>::infinity();
    if (inst.decode_share(model) < 0.5 && inst.first_finish_s() <= patience_s) return false;
  }
  return true;
}

// Elastic instances: where the request costs the SLO least; with `alpha_limit`, only where the
// next round's α stays within it.
std::optional<DecodeDispatch> dispatch_by_cost(std::span<const DecodeInstance> instances, ModelId model,
                                               std::int64_t context_tokens, std::int32_t max_output_tokens,
                                               const ModelPins& pins, double alpha_limit) {
  // α of the next round on each allowed instance with the request there (NaN: not allowed).
  std::vector<double> alpha(instances.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t i = 0; i < instances.size(); ++i) {
    if (pins.allows(model, static_cast<InstanceId>(i))) {
      alpha[i] = instances[i].what_if_alpha(model, context_tokens, std::nullopt, max_output_tokens);
    }
  }
  std::optional<DecodeDispatch> join;
  for (std::size_t i = 0; i < instances.size(); ++i) {
    if (std::isnan(alpha[i])) continue;
    const auto b = instances[i].joinable_batch(model, context_tokens);
    if (!b || alpha[i] > alpha_limit) continue;
    const DecodeDispatch here{static_cast<InstanceId>(i), b};
    if (instances[i].holds_model(model)) return here;
    if (!join) join = here;
  }
  if (join) return join;
  if (std::isfinite(alpha_limit) && !justifies_another_copy(instances, model, pins)) return std::nullopt;
  struct Score {
    double alpha;
    bool resident;
    double free_bytes;
    std::int64_t requests;
  };
  auto better = [](const Score& a, const Score& b) {
    if (std::abs(a.alpha - b.alpha) > 1e-9) return a.alpha < b.alpha;
    if (a.resident != b.resident) return a.resident;
    if (std::abs(a.free_bytes - b.free_bytes) > 1.0) return a.free_bytes > b.free_bytes;
    return a.requests < b.requests;
  };
  std::optional<std::size_t> best;
  Score best_score{};
  for (std::size_t i = 0; i < instances.size(); ++i) {
    if (std::isnan(alpha[i])) continue;
    const auto& inst = instances[i];
    const Score s{alpha[i], inst.holds_model(model), inst.free_bytes(), inst.requests()};
    if (s.alpha <= alpha_limit && (!best || better(s, best_score))) {
      best = i;
      best_score = s;
    }
  }
  if (!best) return std::nullopt;
  return DecodeDispatch{static_cast<InstanceId>(*best), std::nullopt};
}

}  // namespace

std::optional<InstanceId> resident_prefill_site(std::span<const DecodeInstance> instances, const RequestInfo& request,
                                                const ModelPins& pins) {
  const ModelId model = request.model;
  std::optional<InstanceId> best;
  double best_alpha = 0.0;
  for (std::size_t i = 0; i < instances.size(); ++i) {
    const auto& inst = instances[i];
    if (inst.config().memory_bytes <= 0.0 || !pins.allows(model, static_cast<InstanceId>(i)) || !inst.holds_model(model)) {
      continue;
    }
    const double alpha = inst.what_if_alpha(model, request.input_tokens + 1, std::nullopt, request.max_output_tokens);
    if (alpha <= 1.0 && (!best || alpha < best_alpha)) {
      best = static_cast<InstanceId>(i);
      best_alpha = alpha;
    }
  }
  return best;
}

DecodeDispatch dispatch_decode(std::span<const DecodeInstance> instances, ModelId model,
                               std::int64_t context_tokens, const ModelPins& pins) {
  if (!instances.empty() && instances.front().config().memory_bytes > 0.0) {
    // Unbounded α takes any allowed instance, unless every estimate is NaN (no measurement yet).
    if (auto d = dispatch_by_cost(instances, model, context_tokens, 1, pins, std::numeric_limits<double>::infinity())) {
      return *d;
    }
  }
  return dispatch_by_batches(instances, model, context_tokens, pins);
}

std::optional<DecodeDispatch> place_decode(std::span<const DecodeInstance> instances, const RequestInfo& request,
                                           const ModelPins& pins) {
  return dispatch_by_cost(instances, request.model, request.input_tokens + 1, request.max_output_tokens, pins, 1.0);
}

}  // namespace aegaeon::policy
