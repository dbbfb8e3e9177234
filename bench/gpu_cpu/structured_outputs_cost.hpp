// What structured outputs (response_format json_schema) add to each generated token on the CPU
// backend, against a decode step measured in the same run (issue #21: < 0.1 × a batch-1 decode
// step of the 0.5B preset).
#pragma once

namespace aegaeon::bench {

/// Walks generations under a JSON Schema on the synthesized Qwen2.5-layout tokenizer of
/// `vocab` tokens, timing the sampler with the constraint against the same sampler without it,
/// and prints the cost per token (masks computed, then the same schema again with its masks
/// cached) as a ratio of `decode_step_s`.
void report_structured_outputs_cost(int vocab, double decode_step_s);

}  // namespace aegaeon::bench
