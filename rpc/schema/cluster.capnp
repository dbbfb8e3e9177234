# Cluster membership: workers register with the controller and send heartbeats.
@0xb6c5d2e4a1f30c7d;

$import "/capnp/c++.capnp".namespace("aegaeon::rpc::schema");

# Wire version of the cluster protocol; a peer with another major version is refused.
const protocolVersion :UInt32 = 1;

# One accelerator (or the CPU backend) a node offers.
struct Device {
  kind @0 :Text;              # "cpu" or "cuda"
  index @1 :UInt32;
  arenaBytes @2 :UInt64;      # device memory carved for KV, weights and prefetch
}

# What a node brings when it joins.
struct NodeInfo {
  nodeName @0 :Text;
  protocolVersion @1 :UInt32;
  devices @2 :List(Device);
  hostCacheBytes @3 :UInt64;  # host memory for the model cache
  modelsOnDisk @4 :List(Text);
  roles @5 :List(Text);       # "prefill", "decode"
}

# Periodic liveness and load report.
struct Heartbeat {
  nodeId @0 :UInt64;
  sequence @1 :UInt64;
  runningRequests @2 :UInt32;
  waitingRequests @3 :UInt32;
  kvUsage @4 :Float32;        # 0..1
}

# The controller's side of membership.
interface Registry {
  # Registers a node; fails (RPC exception) on a version or token mismatch.
  register @0 (info :NodeInfo, clusterToken :Text) -> (nodeId :UInt64, heartbeatIntervalMs :UInt32);

  # Reports liveness; `known` is false when the controller no longer knows the node (re-register).
  heartbeat @1 (beat :Heartbeat) -> (known :Bool);
}
