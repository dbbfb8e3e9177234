// The configuration embedded in the Kubernetes ConfigMap and the Helm chart's values goes
// through the real config parser (unknown keys, wrong types and ranges fail), and the
// workloads agree with it: the serve and controller pods' container port, probes and scrape
// annotations all use the configured http.port, and workers ask the device plugin for a GPU.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace aegaeon {
namespace {

const std::filesystem::path kDeploy = std::filesystem::path(AEGAEON_SOURCE_DIR) / "deploy";

core::Config parsed_or_fail(const core::Result<core::Config>& config) {
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  return config.ok() ? *config : core::Config{};
}

core::Config kubernetes_config() {
  return parsed_or_fail(core::load_config_file(kDeploy / "k8s/base/aegaeon.yaml"));
}

// The chart renders values.config verbatim (toYaml) into its ConfigMap.
core::Config helm_config() {
  YAML::Node values = YAML::LoadFile((kDeploy / "helm/aegaeon/values.yaml").string());
  YAML::Emitter out;
  out << values["config"];
  return parsed_or_fail(core::parse_config(out.c_str(), "helm values.yaml config"));
}

// Every Deployment and StatefulSet in the Kubernetes manifests of one overlay.
std::vector<YAML::Node> workloads(const std::string& overlay) {
  std::vector<YAML::Node> found;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy / "k8s" / overlay)) {
    if (entry.path().filename() == "kustomization.yaml") continue;
    for (const auto& doc : YAML::LoadAllFromFile(entry.path().string())) {
      auto kind = doc["kind"].as<std::string>();
      if (kind == "Deployment" || kind == "StatefulSet") found.push_back(doc);
    }
  }
  return found;
}

// deploy/config/aegaeon.yaml is the reference operators copy: it must name every key of the
// config's field table with its default, so a new key cannot be added without documenting it.
TEST(DeployConfig, ReferenceConfigNamesEveryKeyWithItsDefault) {
  const auto path = kDeploy / "config/aegaeon.yaml";
  EXPECT_EQ(core::describe_config(parsed_or_fail(core::load_config_file(path))),
            core::describe_config(core::Config{}));
  YAML::Node root = YAML::LoadFile(path.string());
  for (const std::string& key : core::config_keys()) {
    const auto dot = key.find('.');
    EXPECT_TRUE(root[key.substr(0, dot)][key.substr(dot + 1)].IsDefined())
        << key << " is missing from " << path;
  }
}

TEST(DeployConfig, KubernetesConfigMapParses) { kubernetes_config(); }

TEST(DeployConfig, HelmValuesConfigParses) { helm_config(); }

// The chart and the plain manifests are two spellings of one deployment: same configuration.
TEST(DeployConfig, HelmAndKubernetesConfigsAgree) {
  EXPECT_EQ(core::describe_config(helm_config()), core::describe_config(kubernetes_config()));
}

TEST(DeployManifests, WorkloadsProbeHealthAndScrapeOnTheConfiguredPort) {
  const int port = kubernetes_config().http.port;
  for (const std::string overlay : {"serve", "cluster"}) {
    auto found = workloads(overlay);
    ASSERT_FALSE(found.empty()) << overlay;
    for (const auto& workload : found) {
      // Workers listen on nothing: they dial the controller, which reaches them over that link.
      if (workload["kind"].as<std::string>() == "StatefulSet") continue;
      auto name = workload["metadata"]["name"].as<std::string>();
      auto pod = workload["spec"]["template"];
      auto annotations = pod["metadata"]["annotations"];
      EXPECT_EQ(annotations["prometheus.io/scrape"].as<std::string>(""), "true") << name;
      EXPECT_EQ(annotations["prometheus.io/port"].as<int>(0), port) << name;
      EXPECT_EQ(annotations["prometheus.io/path"].as<std::string>(""), "/metrics") << name;
      for (const auto& container : pod["spec"]["containers"]) {
        int http_port = 0;
        for (const auto& p : container["ports"]) {
          if (p["name"].as<std::string>() == "http") http_port = p["containerPort"].as<int>();
        }
        EXPECT_EQ(http_port, port) << name;
        for (const char* probe : {"readinessProbe", "livenessProbe"}) {
          EXPECT_EQ(container[probe]["httpGet"]["path"].as<std::string>(""), "/health") << name << " " << probe;
          EXPECT_EQ(container[probe]["httpGet"]["port"].as<std::string>(""), "http") << name << " " << probe;
        }
      }
    }
  }
}

TEST(DeployManifests, WorkersRequestOneGpuEach) {
  int statefulsets = 0;
  for (const auto& workload : workloads("cluster")) {
    if (workload["kind"].as<std::string>() != "StatefulSet") continue;
    ++statefulsets;
    for (const auto& container : workload["spec"]["template"]["spec"]["containers"]) {
      EXPECT_EQ(container["resources"]["limits"]["nvidia.com/gpu"].as<int>(0), 1);
    }
  }
  EXPECT_EQ(statefulsets, 1);
}

}  // namespace
}  // namespace aegaeon
