#!/usr/bin/python3
"""Reference forward pass of Llama, Qwen2, Qwen3, Mistral and Phi-3 checkpoints in PyTorch.

Written from the Hugging Face transformers modeling code (modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py, modeling_phi3.py,
modeling_mistral.py, modeling_rope_utils.py), not from aegaeon's C++: RMSNorm, RoPE (default,
linear, llama3), grouped-query attention with the eager causal (and sliding-window) mask,
attention biases where each family's config implies them, SwiGLU MLP, tied or untied lm_head.
It reads the model folder itself (config.json and model.safetensors or a sharded index) with
json/struct/numpy, since the `safetensors` and `transformers` Python packages are not Debian
packages.

Usage: reference.py [REQUEST.json] [--out RESULT.json]   (default: stdin, stdout)

A request is {"model": DIR, "prompts": [[token ids], ...], "max_new_tokens": N,
"compute_dtype": "float32" | "bfloat16"} or a list of them (one torch import for many models).
For each prompt the result holds the greedy continuation ("tokens", N ids, recomputed from the
whole sequence every step, no KV cache) and "logits": one row per token of prompt + tokens, row i
the next-token logits after token i. compute_dtype "bfloat16" runs the way transformers runs a
model loaded with torch_dtype=bfloat16: weights and activations in bfloat16, RMSNorm statistics
and the attention softmax in float32.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}


def read_safetensors(path):
    """All tensors of one .safetensors file as float32 torch tensors (BF16 widened exactly)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        if entry["dtype"] == "BF16":  # bfloat16 is the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = torch.from_numpy(raw.astype(np.float32)).reshape(entry["shape"])
    return tensors


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(model_dir, "model.safetensors"))
    with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    weights = {}
    for shard in shards:
        weights.update(read_safetensors(os.path.join(model_dir, shard)))
    return weights


def sliding_windows(config, arch, num_layers):
    """Per layer: the window of the attention mask, or None (Mistral/Qwen2 configuration_*.py)."""
    if arch == "MistralForCausalLM":
        return [config.get("sliding_window", 4096)] * num_layers
    if arch == "Phi3ForCausalLM":  # Phi3Config: no window unless sliding_window is set
        return [config.get("sliding_window")] * num_layers
    if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and config.get("use_sliding_window", False):
        window = config.get("sliding_window", 4096)
        first = config.get("max_window_layers", 28)
        types = config.get("layer_types") or [
            "sliding_attention" if i >= first else "full_attention" for i in range(num_layers)
        ]
        return [window if t == "sliding_attention" else None for t in types]
    return [None] * num_layers


def attention_biases(config, arch):
    """The attention projections with a bias: LlamaAttention and Qwen3Attention put one on all
    four when attention_bias is set, Qwen2Attention on q/k/v only, MistralAttention on none."""
    if arch in ("LlamaForCausalLM", "Qwen3ForCausalLM") and config.get("attention_bias", False):
        return {"q_proj", "k_proj", "v_proj", "o_proj"}
    if arch == "Qwen2ForCausalLM":
        return {"q_proj", "k_proj", "v_proj"}
    return set()


def rope_inv_freq(config, head_dim):
    """modeling_rope_utils: _compute_default/linear/llama3_rope_parameters."""
    base = config.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_context = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
        smooth = (old_context / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_context / high) * ~(wavelen > old_context / low)
        return torch.where(medium, smoothed, scaled)
    if kind != "default":
        raise ValueError(f"rope_scaling type {kind!r} is not implemented here")
    return inv_freq


class Model:
    def __init__(self, model_dir, dtype):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.arch = c["architectures"][0]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.windows = sliding_windows(c, self.arch, self.layers)
        self.biases = attention_biases(c, self.arch)
        if self.arch == "LlamaForCausalLM" and c.get("mlp_bias", False):
            raise ValueError("mlp_bias is not implemented here")
        self.inv_freq = rope_inv_freq(c, self.head_dim)
        self.dtype = dtype
        self.w = {name: t.to(dtype) for name, t in read_weights(model_dir).items()}
        if self.arch == "Phi3ForCausalLM":
            self.split_phi3_fused()
        if "lm_head.weight" not in self.w:  # tie_word_embeddings: HF stores one copy
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def split_phi3_fused(self):
        """Phi3Attention slices qkv_proj's output into q, k, v (in that order) and Phi3MLP
        chunks gate_up_proj's into gate, up: the same as separate projections of those rows."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            qkv = self.w.pop(p + "self_attn.qkv_proj.weight")
            self.w[p + "self_attn.q_proj.weight"] = qkv[:q]
            self.w[p + "self_attn.k_proj.weight"] = qkv[q : q + kv]
            self.w[p + "self_attn.v_proj.weight"] = qkv[q + kv :]
            gate, up = self.w.pop(p + "mlp.gate_up_proj.weight").chunk(2, dim=0)
            self.w[p + "mlp.gate_proj.weight"], self.w[p + "mlp.up_proj.weight"] = gate, up

    def linear(self, x, name, bias=False):
        """nn.Linear; the bias, when the config gives this layer one, must be in the file."""
        b = self.w[name + ".bias"] if bias else None
        return torch.nn.functional.linear(x, self.w[name + ".weight"], b)

    def projection(self, x, prefix, name):
        return self.linear(x, prefix + name, bias=name in self.biases)

    def rms_norm(self, x, name):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.w[name + ".weight"] * x32.to(self.dtype)

    def rope(self, x, cos, sin):  # x: [heads, seq, head_dim], rotate_half layout
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def attention(self, x, layer, cos, sin):
        p = f"model.layers.{layer}.self_attn."
        n = x.shape[0]
        q = self.projection(x, p, "q_proj").view(n, self.heads, self.head_dim)
        k = self.projection(x, p, "k_proj").view(n, self.kv_heads, self.head_dim)
        if self.arch == "Qwen3ForCausalLM":  # Qwen3Attention: q_norm/k_norm over each head
            q, k = self.rms_norm(q, p + "q_norm"), self.rms_norm(k, p + "k_norm")
        q, k = q.transpose(0, 1), k.transpose(0, 1)
        v = self.projection(x, p, "v_proj").view(n, self.kv_heads, self.head_dim).transpose(0, 1)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        group = self.heads // self.kv_heads  # repeat_kv
        k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
        scores = (q @ k.transpose(1, 2)) * self.head_dim**-0.5
        # Query i sees keys j <= i, and with a window only j > i - window (masking_utils).
        i = torch.arange(n).view(-1, 1)
        j = torch.arange(n).view(1, -1)
        visible = j <= i
        if self.windows[layer] is not None:
            visible &= j > i - self.windows[layer]
        scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(self.dtype)
        out = (probs @ v).transpose(0, 1).reshape(n, self.heads * self.head_dim)
        return self.projection(out, p, "o_proj")

    def mlp(self, x, layer):
        p = f"model.layers.{layer}.mlp."
        gate = torch.nn.functional.silu(self.linear(x, p + "gate_proj"))
        return self.linear(gate * self.linear(x, p + "up_proj"), p + "down_proj")

    @torch.no_grad()
    def logits(self, tokens):
        """Next-token logits after every token of `tokens`, [len, vocab] float32."""
        freqs = torch.arange(len(tokens)).float().view(-1, 1) * self.inv_freq.view(1, -1)
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos().to(self.dtype), angles.sin().to(self.dtype)
        x = self.w["model.embed_tokens.weight"][torch.tensor(tokens)]
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            x = x + self.attention(self.rms_norm(x, p + "input_layernorm"), layer, cos, sin)
            x = x + self.mlp(self.rms_norm(x, p + "post_attention_layernorm"), layer)
        return self.linear(self.rms_norm(x, "model.norm"), "lm_head").float()


def run(request):
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[
        request.get("compute_dtype", "float32")
    ]
    model = Model(request["model"], dtype)
    results = []
    for prompt in request["prompts"]:
        tokens = list(prompt)
        for _ in range(request.get("max_new_tokens", 0)):
            tokens.append(int(torch.argmax(model.logits(tokens)[-1])))
        results.append({"tokens": tokens[len(prompt):], "logits": model.logits(tokens).tolist()})
    return {"results": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("request", nargs="?", help="request JSON file (default: stdin)")
    parser.add_argument("--out", help="result JSON file (default: stdout)")
    args = parser.parse_args()
    if args.request:
        with open(args.request) as f:
            request = json.load(f)
    else:
        request = json.load(sys.stdin)
    result = [run(r) for r in request] if isinstance(request, list) else run(request)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f)
    else:
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
