#!/usr/bin/env python3
"""Golden RoPE frequencies: transformers' inv_freq for plain, linear, llama3, yarn and dynamic
RoPE.

For each case a LlamaConfig is made with the case's rope_theta, head size and rope_scaling,
and saved as transformers writes config.json (since transformers 5: rope_parameters, with
rope_theta inside); LlamaRotaryEmbedding(config).inv_freq is the float32 table transformers
rotates q and k by, and its attention_scaling the factor of cos and sin (YaRN's; else 1).
tests/test_model_config.c loads each saved config with loraft's reader and compares
model_rope_freqs with them (within a few ulp).

    scripts/make-rope-goldens.py            # rewrites tests/golden/rope_freqs.json

Needs: torch, transformers (scripts/setup-python.sh makes a venv). No network.
"""
import json
import os

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA3 = dict(rope_type="llama3", low_freq_factor=1.0, high_freq_factor=4.0)
CASES = [
    # SmolLM2-135M's plain RoPE
    dict(name="plain", theta=100000.0, heads=9, hidden=576, max_pos=8192, scaling=None),
    # Llama-3.2-1B's and Llama-3.1-8B's
    dict(name="llama3 1b", theta=500000.0, heads=32, hidden=2048, max_pos=131072,
         scaling=dict(LLAMA3, factor=32.0, original_max_position_embeddings=8192)),
    dict(name="llama3 8b", theta=500000.0, heads=32, hidden=4096, max_pos=131072,
         scaling=dict(LLAMA3, factor=8.0, original_max_position_embeddings=8192)),
    # every band at head size 8: tests/golden/model_llama3_lora.json's model
    dict(name="llama3 tiny", theta=100.0, heads=4, hidden=32, max_pos=64,
         scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=32)),
    dict(name="linear", theta=10000.0, heads=32, hidden=4096, max_pos=16384,
         scaling=dict(rope_type="linear", factor=4.0)),
    # Qwen2.5-7B-Instruct's documented long-context setting
    dict(name="yarn qwen2.5", theta=1000000.0, heads=28, hidden=3584, max_pos=131072,
         scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32768)),
    # every band at head size 16 (pairs 0..3 kept, 4 and 5 blended, 6 and 7 divided), betas and
    # the attention factor given
    dict(name="yarn tiny", theta=10000.0, heads=4, hidden=64, max_pos=32768,
         scaling=dict(rope_type="yarn", factor=8.0, original_max_position_embeddings=4096,
                      beta_fast=16.0, beta_slow=2.0, attention_factor=1.5)),
    # DeepSeek's attention factor from mscale and mscale_all_dim, the ramp's ends unrounded, the
    # factor null (max_position_embeddings / original_max_position_embeddings)
    dict(name="yarn mscale", theta=10000.0, heads=4, hidden=128, max_pos=1024,
         scaling=dict(rope_type="yarn", factor=None, original_max_position_embeddings=64,
                      mscale=0.707, mscale_all_dim=1.0, truncate=False)),
    dict(name="dynamic", theta=10000.0, heads=32, hidden=4096, max_pos=4096,
         scaling=dict(rope_type="dynamic", factor=2.0)),
]


def case_golden(c):
    cfg = LlamaConfig(hidden_size=c["hidden"], num_attention_heads=c["heads"],
                      num_key_value_heads=c["heads"], num_hidden_layers=1, intermediate_size=64,
                      vocab_size=128, max_position_embeddings=c["max_pos"],
                      rope_theta=c["theta"], rope_scaling=c["scaling"])
    rotary = LlamaRotaryEmbedding(cfg)
    inv_freq = rotary.inv_freq.to(torch.float32)
    return {"name": c["name"], "config": json.loads(cfg.to_json_string()),
            "inv_freq": [float("%.9g" % v) for v in inv_freq.tolist()],
            "attention_scaling": float("%.9g" % rotary.attention_scaling)}


def main():
    out = os.path.join(ROOT, "tests", "golden", "rope_freqs.json")
    with open(out, "w") as f:
        json.dump([case_golden(c) for c in CASES], f, indent=1)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
