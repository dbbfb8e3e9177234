#include "sim/profile_table.hpp"

#include "sim/data.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

namespace aegaeon::sim {

namespace {

constexpr double kMaxPrefillProfileTokens = 4096;
constexpr double kMinDecodeStepS = 0.002;

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) {
    while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
    out.push_back(cell);
  }
  return out;
}

core::Result<double> parse_number(const std::string& text, const std::string& where, const char* field) {
  double v = 0.0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       where + ": field '" + field + "': expected a number, got '" + text + "'");
  }
  return v;
}

}  // namespace

core::Result<ProfileTable> ProfileTable::load(const std::string& path) {
  if (path == kBuiltinData) return builtin();
  std::ifstream in(path);
  if (!in) return core::error(core::ErrorCode::kNotFound, path + ": cannot open profile file");
  return parse(in, path);
}

core::Result<ProfileTable> ProfileTable::builtin() {
  std::istringstream in{std::string(embedded::sim_profiles_csv())};
  return parse(in, "sim/data/profiles.csv (built in)");
}

core::Result<ProfileTable> ProfileTable::parse(std::istream& in, const std::string& path) {
  ProfileTable table;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    auto cells = split_csv(line);
    const std::string where = path + ":" + std::to_string(line_no);
    if (line_no == 1) {
      if (cells.size() < 6 || cells[0] != "model") {
        return core::error(core::ErrorCode::kInvalidArgument,
                           where + ": expected header model,device,input_len,batch_size,prefill_s,decode_step_s");
      }
      continue;
    }
    if (cells.size() != 6) {
      return core::error(core::ErrorCode::kInvalidArgument,
                         where + ": expected 6 fields, got " + std::to_string(cells.size()));
    }
    policy::ProfileSample s;
    auto v = parse_number(cells[2], where, "input_len");
    if (!v) return v.error();
    s.input_len = *v;
    if (!(v = parse_number(cells[3], where, "batch_size"))) return v.error();
    s.batch_size = *v;
    if (!(v = parse_number(cells[4], where, "prefill_s"))) return v.error();
    s.prefill_s = *v;
    if (!(v = parse_number(cells[5], where, "decode_step_s"))) return v.error();
    s.decode_step_s = *v;
    table.add(cells[0], cells[1], s);
  }
  if (table.rows_.empty()) return core::error(core::ErrorCode::kInvalidArgument, path + ": no profile rows");
  return table;
}

void ProfileTable::add(const std::string& model, const std::string& device, const policy::ProfileSample& row) {
  rows_[{model, device}].push_back(row);
}

core::Result<policy::ExecutionEstimator> ProfileTable::fit(const std::string& model,
                                                           const std::string& device) const {
  auto it = rows_.find({model, device});
  if (it == rows_.end()) {
    std::string have;
    for (const auto& [key, rows] : rows_) {
      if (key.first == model) have += (have.empty() ? "" : ", ") + key.second;
    }
    return core::error(core::ErrorCode::kNotFound,
                       "profiles: no rows for model '" + model + "' on device '" + device + "'" +
                           (have.empty() ? std::string(" (model not profiled)") : " (profiled on: " + have + ")"));
  }
  // The artifact's rows need two cleanups: prefill saturates at ~0.09 s once a batch holds more
  // than 4096 tokens (the profiler measured one chunk of vLLM's max_num_batched_tokens), and a
  // few decode rows are implausibly fast (< 2 ms, e.g. 0.4 ms for 2 x 4096 on H100).
  std::vector<policy::ProfileSample> clean;
  for (auto s : it->second) {
    if (s.input_len * s.batch_size > kMaxPrefillProfileTokens) s.prefill_s = 0;  // drop prefill only
    if (s.decode_step_s < kMinDecodeStepS) s.decode_step_s = 0;
    clean.push_back(s);
  }
  auto est = policy::ExecutionEstimator::fit(clean);
  if (!est) return est.error().with_context("profiles " + model + "@" + device);
  return est;
}

}  // namespace aegaeon::sim
