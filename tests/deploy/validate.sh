#!/usr/bin/env bash
# Offline validation of the deployment assets (ctest DeployAssets.Validate, a few seconds):
#   yamllint                 every YAML file under deploy/ (Helm templates excepted)
#   kubectl kustomize        the Kubernetes overlays render (ConfigMap generator, references)
#   systemd-analyze verify   the systemd units (directives and values)
#   promtool check rules     the Prometheus alerting rules
#   python3 json             the Grafana dashboard is valid JSON
# yamllint and promtool are required (scripts/install-deps installs them); kubectl and
# systemd-analyze run where present. Not run here: `kubectl create --dry-run=client` (it needs an
# API server even for client-side dry runs) and `helm template` (Debian does not package helm).
# Usage: validate.sh REPOSITORY_ROOT
set -euo pipefail
root=${1:?usage: validate.sh REPOSITORY_ROOT}
deploy=$root/deploy
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v yamllint >/dev/null; then
  echo "validate: yamllint not installed (run scripts/install-deps)" >&2
  exit 1
fi
echo "validate: yamllint deploy/"
yamllint -c "$here/yamllint.yaml" "$deploy"

if command -v kubectl >/dev/null; then
  for overlay in "$deploy"/k8s/serve "$deploy"/k8s/cluster; do
    echo "validate: kubectl kustomize ${overlay#"$root"/}"
    kubectl kustomize "$overlay" >/dev/null
  done
else
  echo "validate: kubectl not installed, overlays not rendered"
fi

if command -v systemd-analyze >/dev/null; then
  # verify insists that ExecStart's binary exists and treats a template as no unit, so check
  # copies that point at /bin/true, with the worker template instantiated for GPU 0. It only
  # warns about bad directives, so any output fails.
  units=$(mktemp -d)
  trap 'rm -rf "$units"' EXIT
  for unit in "$deploy"/systemd/*.service; do
    name=$(basename "$unit")
    sed 's#/usr/local/bin/aegaeon#/bin/true#' "$unit" > "$units/${name/@./@0.}"
  done
  echo "validate: systemd-analyze verify $(cd "$units" && echo *)"
  report=$(cd "$units" && systemd-analyze verify --man=no --generators=no ./*.service 2>&1) || true
  if [ -n "$report" ]; then
    echo "$report" >&2
    exit 1
  fi
else
  echo "validate: systemd-analyze not available, units not verified"
fi

if ! command -v promtool >/dev/null; then
  echo "validate: promtool not installed (run scripts/install-deps)" >&2
  exit 1
fi
echo "validate: promtool check rules deploy/k8s/monitoring/aegaeon-alerts.yaml"
promtool check rules "$deploy"/k8s/monitoring/aegaeon-alerts.yaml >/dev/null

for dashboard in "$deploy"/grafana/*.json; do
  echo "validate: json ${dashboard#"$root"/}"
  python3 -m json.tool "$dashboard" >/dev/null
done
echo "validate: ok"
