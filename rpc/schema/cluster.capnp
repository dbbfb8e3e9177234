# Cluster wire: workers register with the controller, send heartbeats, and run generations the
# controller submits, streaming their tokens back.
@0xb6c5d2e4a1f30c7d;

$import "/capnp/c++.capnp".namespace("aegaeon::rpc::schema");

# Wire version of the cluster protocol; a peer with another version is refused.
# 2: workers pass a Worker capability at registration and describe the models they serve.
# 3: prefill-only workers end a generation with a KV handoff; decode workers adopt it.
# 4: jobs ask for top_logprobs and say which prompt tokens a resumed request generated; token
#    batches carry each token's most likely alternatives.
# 5: a KV handoff says where a decode worker on the same host can read it in shared memory.
# 6: host-cache placement: models' weight sizes, the models a worker holds (at registration and
#    in heartbeats), and Worker.hold, the controller's assignment.
# 7: several controllers: heartbeats carry requests per model (a worker's in flight, a proxy
#    controller's waiting) for the one controller that places models.
# 8: a job's sampling settings are one nested SamplingParams with every field (min_p and
#    repetition_penalty were not sent; logit_bias is new) and its limits one StopConditions (min_tokens and the stop
#    token ids, which the worker's sequence applies).
# 9: sampling settings carry the structured output: its JSON Schema and the text around it.
# 10: sampling settings ask for prompt logprobs (echo); the first token batch carries them; a job
#     may generate nothing (max_tokens 0) when it scores its prompt.
const protocolVersion :UInt32 = 10;

# One accelerator (or the CPU backend) a node offers.
struct Device {
  kind @0 :Text;              # "cpu" or "cuda"
  index @1 :UInt32;
  arenaBytes @2 :UInt64;      # device memory carved for KV, weights and prefetch
}

# A model a worker serves, with what the controller's front door needs to tokenize for it.
struct ServedModel {
  name @0 :Text;
  maxContextTokens @1 :Int32;
  tokenizerJson @2 :Text;        # tokenizer.json
  tokenizerConfigJson @3 :Text;  # tokenizer_config.json (chat template); empty when absent
  weightBytes @4 :UInt64;        # host memory its weights take when held
  eosTokenIds @5 :List(Int32);   # generation stops at these (generation_config.json, config.json)
}

# What a node brings when it joins.
struct NodeInfo {
  nodeName @0 :Text;
  protocolVersion @1 :UInt32;
  devices @2 :List(Device);
  hostCacheBytes @3 :UInt64;  # host memory for model weights; 0: no limit (holds every model)
  modelsOnDisk @4 :List(Text);
  roles @5 :List(Text);       # "prefill", "decode"; "proxy" for a controller that reports to this one
  servedModels @6 :List(ServedModel);
  heldModels @7 :List(Text);  # models whose weights it holds now (it serves only those)
}

# Periodic liveness and load report.
struct Heartbeat {
  nodeId @0 :UInt64;
  sequence @1 :UInt64;
  runningRequests @2 :UInt32;
  waitingRequests @3 :UInt32;
  kvUsage @4 :Float32;        # 0..1
  heldModels @5 :List(Text);  # models whose weights it holds now (and keeps: none on its way out)
  modelRequests @6 :List(ModelRequests);  # a worker: generations in flight; a proxy: requests waiting
}

# How many requests one model has (a heartbeat's load report).
struct ModelRequests {
  model @0 :Text;
  count @1 :UInt32;
}

# One tokenized request for a worker (the controller's proxy tokenized and validated it).
struct GenerationJob {
  model @0 :Text;
  prompt @1 :List(Int32);     # on a re-submission: the prompt plus the tokens already streamed
  stop @2 :StopConditions;
  sampling @3 :SamplingParams;
  resumedTokens @4 :Int32;    # a re-submission: the prompt's last tokens the request generated before
}

# core::StopConditions: when the worker's sequence ends (stop strings stay with the proxy).
struct StopConditions {
  maxTokens @0 :Int32;
  minTokens @1 :Int32;
  stopTokenIds @2 :List(Int32);  # the model's end-of-sequence ids unless ignore_eos, and the request's
}

# core::SamplingParams, every field (the seed is always set by the controller's proxy).
struct SamplingParams {
  temperature @0 :Float32 = 1.0;
  topP @1 :Float32 = 1.0;
  topK @2 :Int32;
  minP @3 :Float32;
  presencePenalty @4 :Float32;
  frequencyPenalty @5 :Float32;
  repetitionPenalty @6 :Float32 = 1.0;
  seed @7 :UInt64;
  topLogprobs @8 :Int32;      # most likely tokens to report per step (0: none)
  logitBias @9 :List(TokenBias);
  jsonSchema @10 :Text;       # structured outputs: the schema the output must satisfy ("": any text)
  textBefore @11 :Text;       # structured outputs: exact text before the JSON (a forced tool call's tag)
  textAfter @12 :Text;        # and after it
  promptLogprobs @13 :Int32 = -1;  # score the prompt with this many alternatives per token (-1: no)
}

struct TokenBias {
  token @0 :Int32;
  bias @1 :Float32;
}

enum FinishReason {
  none @0;
  stop @1;
  length @2;
  cancelled @3;
  error @4;
}

# Tokens produced for one generation, in order.
struct TokenBatch {
  tokens @0 :List(Int32);
  logprobs @1 :List(Float32);
  queueSeconds @2 :Float64;   # set (>= 0) on the first batch: arrival to prefill start
  kvPullSeconds @3 :Float64 = -1;  # set (>= 0) on a decode's first batch: how long its KV took to arrive
  topLogprobs @4 :List(Alternatives);  # per token, when the job asked for them; else empty
  kvSharedMemory @5 :Bool;    # with kvPullSeconds: the KV was read from shared memory, not pulled
  promptLogprobs @6 :List(Float32);  # first batch, when asked: prompt token i + 1's logprob
  promptTopLogprobs @7 :List(Alternatives);  # and its position's most likely tokens, when asked
}

# The most likely tokens of one step, best first.
struct Alternatives {
  tokens @0 :List(Int32);
  logprobs @1 :List(Float32);
}

# A prefilled request's KV, held in host memory by the prefill worker that computed it until
# every holder of this capability dropped it. The decode worker pulls it in chunks.
interface KvSource {
  # Bytes [offset, offset + length) of the KV blob (fewer at its end).
  read @0 (offset :UInt64, length :UInt32) -> (chunk :Data);
}

# What a prefill-only worker hands to a decode worker: the KV of `kvTokens` positions (blocks in
# the model's cache layout) and the sampling state the first decode step continues from.
struct KvHandoff {
  kvTokens @0 :Int32;
  lastToken @1 :Int32;        # the token the first decode step appends (not in the KV yet)
  bytes @2 :UInt64;           # size of the KV blob
  source @3 :KvSource;
  # The same blob in a memory file of the prefill worker, for a decode worker on the host whose
  # boot id is `hostKey` (rpc/shared_kv.hpp): opened at `sharedPath`, and only taken if the file
  # there is named `sharedName` (a path of a file that went away may name another one). Empty
  # when it has none. Reading it saves the chunked pull through the controller; `source` stays
  # the fallback.
  hostKey @4 :Text;
  sharedPath @5 :Text;
  sharedName @6 :Text;
}

# The controller's end of one generation.
interface TokenSink {
  # Flow-controlled: the worker sends the next batch when the controller has room for it.
  push @0 (batch :TokenBatch) -> stream;
  # The last batch and why the generation ended; `error` is set when it failed on the worker.
  # A prefill-only worker ends a generation that goes on with `handoff` set (reason none).
  done @1 (batch :TokenBatch, reason :FinishReason, error :Text, handoff :KvHandoff) -> ();
}

# A worker's serving runtime, as the controller reaches it.
interface Worker {
  # Runs one generation, streaming its tokens to `sink`; returns after `done`. Cancelling the
  # call (or losing the connection) cancels the generation and frees its KV. A prefill-only
  # worker stops after the first token and hands the KV off (TokenSink.done).
  generate @0 (job :GenerationJob, sink :TokenSink) -> ();
  # Continues a generation another worker prefilled: pulls the KV from `handoff.source`, then
  # decodes as `generate` does (`job` is the one that worker prefilled). A decode worker only.
  decode @1 (job :GenerationJob, handoff :KvHandoff, sink :TokenSink) -> ();
  # The models the controller's placement wants in this worker's host cache (the latest call
  # wins): it unloads the others once their generations end and loads these, within its host
  # cache size, reporting what it holds in its heartbeats. Returns at once.
  hold @2 (models :List(Text)) -> ();
}

# The controller's side of membership.
interface Registry {
  # Registers a node; fails (RPC exception) on a version or token mismatch. `worker` is how the
  # controller submits generations to it (null for a node that only reports).
  register @0 (info :NodeInfo, clusterToken :Text, worker :Worker)
      -> (nodeId :UInt64, heartbeatIntervalMs :UInt32);

  # Reports liveness; `known` is false when the controller no longer knows the node (re-register).
  heartbeat @1 (beat :Heartbeat) -> (known :Bool);
}
