#!/usr/bin/env bash
# Several "hosts" on one machine for trying and testing an aegaeon cluster: network namespaces
# PREFIX-h1..PREFIX-hN, each with loopback up and one interface eth0 (SUBNET.i/24), wired by veth
# links to a bridge that lives in a namespace of its own (PREFIX-sw). Nothing is created in the
# machine's own namespace (no interface, address, route or firewall rule), so the subnet can never
# meet the host's networks and the host's firewall never sees this traffic.
#
# usage (as root):
#   hosts.sh up    [--prefix P] [--hosts N] [--subnet A.B.C]  create the hosts (recreated if present)
#   hosts.sh down  [--prefix P]                               delete them, killing what runs inside
#   hosts.sh cut   [--prefix P] I                             partition host I (its link goes down)
#   hosts.sh heal  [--prefix P] I                             bring host I's link back up
#   hosts.sh prune                                            delete aeg-PID-* sets whose PID is gone
#   hosts.sh check                                            exit 0 when namespaces can be made here
# Defaults: --prefix aeg-demo --hosts 3 --subnet 10.213.0 (host I is SUBNET.I).
# Tests use --prefix aeg-<their pid> so that concurrent runs never collide, and `prune` removes
# what a killed run left behind. Every command is idempotent.
set -euo pipefail

prefix=aeg-demo
hosts=3
subnet=10.213.0

die() {
  echo "hosts.sh: $*" >&2
  exit 2
}

# Names of this prefix's namespaces that exist now (hosts first, the switch last).
existing() {
  ip netns list | awk '{print $1}' | grep -E "^${prefix}-h[0-9]+\$" || true
  ip netns list | awk '{print $1}' | grep -Fx "${prefix}-sw" || true
}

down() {
  local ns pids
  for ns in $(existing); do
    # A namespace lives on while a process holds it: stop what still runs inside first.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086  # one pid per word
      kill -KILL $pids 2>/dev/null || true
    fi
    ip netns delete "$ns" 2>/dev/null || true
  done
}

# EXIT trap of `up`: a half-built set is deleted.
undo_on_failure() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then down; fi
  exit "$rc"
}

up() {
  down
  trap undo_on_failure EXIT
  local sw="${prefix}-sw" i ns
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for ((i = 1; i <= hosts; i++)); do
    ns="${prefix}-h${i}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created inside their namespaces: the names never exist in the host's.
    ip link add eth0 netns "$ns" type veth peer name "h${i}" netns "$sw"
    ip -n "$sw" link set "h${i}" master br0
    ip -n "$sw" link set "h${i}" up
    ip -n "$ns" addr add "${subnet}.${i}/24" dev eth0
    ip -n "$ns" link set eth0 up
    echo "${ns} ${subnet}.${i}"
  done
  trap - EXIT
}

# The namespace of host I (it must exist).
host_ns() {
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "expected a host number, got '${1:-}'"
  local ns="${prefix}-h$1"
  ip netns list | awk '{print $1}' | grep -qFx "$ns" || die "no host ${ns} (run: hosts.sh up)"
  echo "$ns"
}

prune() {
  local ns pid
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^aeg-[0-9]+-(h[0-9]+|sw)$' || true); do
    pid=${ns#aeg-}
    pid=${pid%%-*}
    if ! kill -0 "$pid" 2>/dev/null; then
      prefix="aeg-${pid}"
      down
    fi
  done
}

check() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
  command -v ip >/dev/null || die "needs ip (iproute2)"
  local probe="aeg-$$-probe"
  ip netns add "$probe" 2>/dev/null || die "cannot create a network namespace here"
  ip link add eth0 netns "$probe" type veth peer name eth1 netns "$probe" 2>/dev/null ||
    { ip netns delete "$probe"; die "cannot create veth links here"; }
  ip netns delete "$probe"
}

command=${1:-}
[[ -n $command ]] || die "usage: hosts.sh up|down|cut|heal|prune|check [options] (see the header)"
shift
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --hosts) hosts=${2:?--hosts needs a value}; shift 2 ;;
    --subnet) subnet=${2:?--subnet needs a value}; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ $prefix =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "--prefix: lower-case letters, digits and '-', got '${prefix}'"
[[ $hosts =~ ^[0-9]+$ && $hosts -ge 1 && $hosts -le 16 ]] || die "--hosts: 1 to 16, got '${hosts}'"
[[ $subnet =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--subnet: three octets (A.B.C), got '${subnet}'"

case $command in
  up) up ;;
  down) down ;;
  cut) ip -n "$(host_ns "${args[0]:-}")" link set eth0 down ;;
  heal) ip -n "$(host_ns "${args[0]:-}")" link set eth0 up ;;
  prune) prune ;;
  check) check ;;
  *) die "unknown command '${command}' (up|down|cut|heal|prune|check)" ;;
esac
