// Measured execution profiles (the artifact's profiles.csv) and the estimators fitted from them.
#pragma once

#include <map>
#include <istream>
#include <string>
#include <utility>
#include <vector>

#include "actors/policy/cost_model.hpp"
#include "core/result.hpp"

namespace aegaeon::sim {

/// Profile rows grouped by (model, device), fitted on demand.
class ProfileTable {
 public:
  /// Reads `model,device,input_len,batch_size,prefill_s,decode_step_s` rows. Errors name the
  /// file, line and field.
  /// Reads a profiles CSV; kBuiltinData ("builtin") names the one shipped with aegaeon.
  static core::Result<ProfileTable> load(const std::string& path);
  /// The profiles shipped with aegaeon (sim/data/profiles.csv, compiled in).
  static core::Result<ProfileTable> builtin();
  /// Reads the CSV from `in`; errors name `path` and the line.
  static core::Result<ProfileTable> parse(std::istream& in, const std::string& path);
  /// Builds a table from rows (tests).
  void add(const std::string& model, const std::string& device, const policy::ProfileSample& row);
  /// Fitted estimators of `model` on `device`; fails naming the pair when it was not profiled.
  [[nodiscard]] core::Result<policy::ExecutionEstimator> fit(const std::string& model,
                                                             const std::string& device) const;

 private:
  std::map<std::pair<std::string, std::string>, std::vector<policy::ProfileSample>> rows_;
};

}  // namespace aegaeon::sim
