#include "actors/policy/prefill_scheduler.hpp"

#include <algorithm>

namespace aegaeon::policy {

PrefillScheduler::PrefillScheduler(std::int32_t instances, PrefillConfig config)
    : config_(config), instances_(static_cast<std::size_t>(std::max(instances, 1))) {}

std::optional<std::pair<InstanceId, std::size_t>> PrefillScheduler::find_open_group(
    ModelId model, const ModelPins& pins) const {
  for (std::size_t i = 0; i < instances_.size(); ++i) {
    if (!pins.allows(model, static_cast<InstanceId>(i))) continue;
    const auto& groups = instances_[i].groups;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].model == model && groups[g].joined < config_.max_group_size) {
        return std::make_pair(static_cast<InstanceId>(i), g);
      }
    }
  }
  return std::nullopt;
}

PrefillDispatch PrefillScheduler::preview(ModelId model, const ModelPins& pins,
                                          std::span<const WeightCache> resident) const {
  if (auto open = find_open_group(model, pins)) return {open->first, false};
  auto cost = [&](std::size_t i) {
    const bool miss = i < resident.size() && !resident[i].contains(model);
    return instances_[i].queued + (miss ? config_.miss_penalty_requests : 0);
  };
  std::optional<InstanceId> best;
  for (std::size_t i = 0; i < instances_.size(); ++i) {
    const auto id = static_cast<InstanceId>(i);
    if (!pins.allows(model, id)) continue;
    if (!best || cost(i) < cost(static_cast<std::size_t>(*best))) best = id;
  }
  // Pins always leave the model an instance; without one it may go to the first.
  return {best.value_or(0), true};
}

PrefillDispatch PrefillScheduler::on_arrival(const RequestInfo& request, const ModelPins& pins,
                                             std::span<const WeightCache> resident) {
  if (auto open = find_open_group(request.model, pins)) {
    auto& inst = instances_[open->first];
    auto& group = inst.groups[open->second];
    group.requests.push_back(request);
    ++group.joined;
    ++inst.queued;
    return {open->first, false};
  }
  const PrefillDispatch d = preview(request.model, pins, resident);
  auto& inst = instances_[d.instance];
  inst.groups.push_back(Group{request.model, 1, {request}});
  ++inst.queued;
  return d;
}

PrefillAction PrefillScheduler::next_action(InstanceId instance, std::optional<ModelId> resident) const {
  return next_action_where(instance, [&](ModelId m) { return resident == m; });
}

PrefillAction PrefillScheduler::next_action(InstanceId instance, const WeightCache& resident) const {
  return next_action_where(instance, [&](ModelId m) { return resident.contains(m); });
}

PrefillAction PrefillScheduler::next_action_where(InstanceId instance, const std::function<bool(ModelId)>& resident) const {
  const auto& groups = instances_[instance].groups;
  PrefillAction action;
  if (groups.empty()) return action;
  const Group& head = groups.front();
  for (std::size_t g = 1; config_.prefetch && g < groups.size(); ++g) {
    if (groups[g].model != head.model) {
      action.prefetch_model = groups[g].model;
      break;
    }
  }
  action.model = head.model;
  if (!resident(head.model)) {
    action.kind = PrefillAction::Kind::kSwitch;
    return action;
  }
  action.kind = PrefillAction::Kind::kRun;
  action.request = head.requests.front().id;
  return action;
}

void PrefillScheduler::on_prefill_done(InstanceId instance, RequestId request) {
  auto& inst = instances_[instance];
  for (auto g = inst.groups.begin(); g != inst.groups.end(); ++g) {
    auto it = std::find_if(g->requests.begin(), g->requests.end(),
                           [&](const RequestInfo& r) { return r.id == request; });
    if (it == g->requests.end()) continue;
    g->requests.erase(it);
    --inst.queued;
    if (g->requests.empty()) inst.groups.erase(g);
    return;
  }
}

std::vector<RequestInfo> PrefillScheduler::pending(InstanceId instance) const {
  std::vector<RequestInfo> out;
  for (const auto& g : instances_[instance].groups) out.insert(out.end(), g.requests.begin(), g.requests.end());
  return out;
}

}  // namespace aegaeon::policy
