"""An independent PyTorch implementation of docs/rules.md rules 50-56 (Hugging Face Llama and
Qwen2), used to check pagedkv's model: it reads config.json and the safetensors files itself
(json + numpy, not pagedkv's loader), keeps every tensor in float64, and runs plain dense causal
attention with no KV cache at all.
"""

import json
import math
import os

import numpy as np
import torch

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def _read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    buf = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = np.frombuffer(buf[begin:end], dtype=_DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = torch.from_numpy(raw.astype(np.float64).reshape(info["shape"]))
    return tensors


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(_read_safetensors(os.path.join(model_dir, name)))
    return tensors


def inv_freq(config):
    """Rule 53: f_j = theta^(-2j/d) in double, scaled (linear: by position; llama3: per band),
    then converted to float32."""
    d = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    theta = config.get("rope_theta", 10000.0)
    f = np.array([theta ** (-2.0 * j / d) for j in range(d // 2)], dtype=np.float64)
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "llama3":
        factor = scaling["factor"]
        low = scaling.get("low_freq_factor", 1.0)
        high = scaling.get("high_freq_factor", 4.0)
        old = scaling["original_max_position_embeddings"]
        out = []
        for x in f:
            wavelen = 2 * math.pi / x
            if wavelen < old / high:
                out.append(x)
            elif wavelen > old / low:
                out.append(x / factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                out.append((1 - smooth) * x / factor + smooth * x)
        f = np.array(out)
    return torch.from_numpy(f.astype(np.float32)), (scaling.get("factor", 1.0) if kind == "linear" else 1.0)


def rope(x, positions, freqs, linear_factor):
    """x [T, heads, d]: NeoX half rotation; the angle p * f is formed in float32."""
    d = x.shape[-1]
    pos = torch.tensor(positions, dtype=torch.float32) / np.float32(linear_factor)
    angle = (pos[:, None] * freqs[None, :]).to(torch.float64)  # [T, d/2]
    cos, sin = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def logits(model_dir, token_ids):
    """Logits [T, vocab] (float64) of every position of one sequence (rules 52-55)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    w = load_weights(model_dir)
    hq, hkv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or config["hidden_size"] // hq
    eps = config["rms_norm_eps"]
    freqs, linear = inv_freq(config)
    t = len(token_ids)
    positions = list(range(t))
    x = w["model.embed_tokens.weight"][torch.tensor(token_ids)]
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        n = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, inp):
            y = inp @ w[p + name + ".weight"].T
            bias = w.get(p + name + ".bias")
            return y if bias is None else y + bias

        q = rope(proj("self_attn.q_proj", n).view(t, hq, d), positions, freqs, linear)
        k = rope(proj("self_attn.k_proj", n).view(t, hkv, d), positions, freqs, linear)
        v = proj("self_attn.v_proj", n).view(t, hkv, d)
        group = hq // hkv
        k = k.repeat_interleave(group, dim=1)  # query head j reads kv head j // group
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(d) + mask
        attn = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v).reshape(t, hq * d)
        h = x + attn @ w[p + "self_attn.o_proj.weight"].T
        n2 = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = n2 @ w[p + "mlp.gate_proj.weight"].T
        up = n2 @ w[p + "mlp.up_proj.weight"].T
        x = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    head = w.get("lm_head.weight")
    if head is None or config.get("tie_word_embeddings", False):
        head = w["model.embed_tokens.weight"]
    return rms_norm(x, w["model.norm.weight"], eps) @ head.T
