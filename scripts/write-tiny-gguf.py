#!/usr/bin/env python3
"""A minimal GGUF v3 writer (F32 tensors, general.alignment 32) for a tiny HF llama, qwen2, qwen3,
mistral, smollm3, gemma3_text, gemma2, phi3 or gpt2 directory and its GPT-2 tokenizer.json, after llama.cpp's convert_hf_to_gguf.py
(docs/FORMATS.md): Mistral written as llama (the converter's LlamaModel serves
MistralForCausalLM; a head_dim other than hidden / heads as key_length and value_length, its
sliding_window as llama.attention.sliding_window, which loraft writes and reads and llama.cpp's
converter leaves out); SmolLM3 as smollm3 with llama's keys (its NoPE layers every fourth, as
llama.cpp fixes them); Llama's and SmolLM3's q_proj / k_proj rows permuted for GGUF's RoPE layout (Qwen2's and
Qwen3's are not: llama.cpp rotates their halves as transformers does; Qwen2's q, k, v biases and
Qwen3's head norms go as they are, Qwen3's head size as key_length and value_length); GPT-2's
Conv1D weights transposed to [out, in] and token_embd copied as output.weight; Gemma 3 as gemma3
(llama.cpp's Gemma3Model: every norm weight stored as 1 + it, q and k as HF stores them, the head
size as key_length, the window as attention.sliding_window, and, where they are not llama.cpp's
defaults, every n-th layer full as attention.sliding_window_pattern n and the windowed layers' RoPE
base as rope.freq_base_swa, which llama.cpp reads; its final_logit_softcapping where set); Gemma 2
as gemma2 (llama.cpp's Gemma2Model: the norms as Gemma 3's, no head norms, the head size as
key_length, sliding_window, attn_logit_softcapping and final_logit_softcapping always, no RoPE base,
windows or lm_head: llama.cpp assumes a base of 10000, every other layer windowed from the first,
and the head tied, which this asserts); Phi-3 as phi3 (llama.cpp's Phi3MiniModel: qkv_proj as attn_qkv
and gate_up_proj as ffn_up, neither permuted, rope.dimension_count (partial_rotary_factor's), the original context as
rope.scaling.original_context_length, sliding_window or 0 for none, and for longrope the factors as
rope_factors_short / rope_factors_long with the attention factor the converter works out from
max_position_embeddings / original as rope.scaling.attn_factor). The tests use it
to check that a model loads alike from both formats.

    write-tiny-gguf.py MODEL_DIR OUT.gguf        (needs numpy and safetensors)
"""
import json
import math
import struct
import sys

import numpy as np
from safetensors.numpy import load_file

src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(src + "/config.json"))
tj = json.load(open(src + "/tokenizer.json"))
vocab = tj["model"]["vocab"]
tokens = [None] * (max(vocab.values()) + 1)
for t, i in vocab.items():
    tokens[i] = t
types = [1] * len(tokens)
for a in tj.get("added_tokens", []):
    if a["id"] >= len(tokens):
        tokens += [None] * (a["id"] + 1 - len(tokens))
        types += [1] * (a["id"] + 1 - len(types))
    tokens[a["id"]] = a["content"]
    types[a["id"]] = 3 if a["special"] else 4
merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]


def S(s):
    return struct.pack("<Q", len(s.encode())) + s.encode()


def kv(k, t, v):
    b = S(k) + struct.pack("<I", t)
    if t == 4:
        b += struct.pack("<I", v)
    elif t == 6:
        b += struct.pack("<f", v)
    elif t == 8:
        b += S(v)
    elif t == 9:
        et, items = v
        b += struct.pack("<IQ", et, len(items))
        b += b"".join(S(x) if et == 8 else struct.pack("<i", x) for x in items)
    return b


arch = {"mistral": "llama", "gemma3_text": "gemma3"}.get(cfg["model_type"], cfg["model_type"])
w = load_file(src + "/model.safetensors")
tensors = []
gemma = arch in ("gemma2", "gemma3")


def layer_steps(types):
    """The step n of layer_types' every n-th layer full (0: none full), asserted to be one"""
    full = [t == "full_attention" for t in types]
    step = full.index(True) + 1 if any(full) else 0
    assert step and full == [(l + 1) % step == 0 for l in range(len(full))], full
    return step


def phi3_rope(cfg, rope):
    """Phi3MiniModel's RoPE keys and factor tensors: its rotary dims int(partial_rotary_factor *
    hidden) // heads (Phi-4-mini's 96 of 128), one factor a pair of them"""
    orig = cfg.get("original_max_position_embeddings") or rope["original_max_position_embeddings"]
    ctx = cfg["max_position_embeddings"]
    share = cfg.get("partial_rotary_factor") or rope.get("partial_rotary_factor") or 1.0
    dims = int(share * cfg["hidden_size"]) // cfg["num_attention_heads"]
    kvs = [kv(A + "rope.dimension_count", 4, dims),
           kv(A + "rope.scaling.original_context_length", 4, orig),
           kv(A + "attention.sliding_window", 4, cfg.get("sliding_window") or 0)]
    if not rope.get("long_factor"):
        return kvs, []
    scale, kind = ctx / orig, rope.get("rope_type") or rope["type"]
    assert kind in ("su", "longrope", "yarn"), kind
    assert len(rope["long_factor"]) == len(rope["short_factor"]) == dims // 2, dims
    attn = 1.0 if scale <= 1 else (math.sqrt(1 + math.log(scale) / math.log(orig))
                                   if kind != "yarn" else 0.1 * math.log(scale) + 1)
    factors = [("rope_factors_long.weight", np.array(rope["long_factor"])),
               ("rope_factors_short.weight", np.array(rope["short_factor"]))]
    return kvs + [kv(A + "rope.scaling.attn_factor", 6, attn)], factors


if arch in ("llama", "qwen2", "qwen3", "smollm3", "gemma2", "gemma3", "phi3"):
    A = arch + "."
    rope = cfg.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)  # transformers 5: Gemma's per layer type
    theta = cfg.get("rope_theta") or rope["rope_theta"]
    kvs = [kv(A + "block_count", 4, cfg["num_hidden_layers"]),
           kv(A + "embedding_length", 4, cfg["hidden_size"]),
           kv(A + "feed_forward_length", 4, cfg["intermediate_size"]),
           kv(A + "attention.head_count", 4, cfg["num_attention_heads"]),
           kv(A + "attention.head_count_kv", 4, cfg["num_key_value_heads"]),
           kv(A + "context_length", 4, cfg["max_position_embeddings"]),
           kv(A + "attention.layer_norm_rms_epsilon", 6, cfg["rms_norm_eps"])]
    if arch == "gemma2":  # Gemma2Model writes no RoPE keys: llama.cpp's default base
        assert theta == 10000 and rope.get("rope_type", "default") == "default", rope
        assert layer_steps(cfg["layer_types"]) == 2, cfg["layer_types"]
        assert cfg.get("tie_word_embeddings", True), "Gemma2Model drops lm_head"
        kvs += [kv(A + "attn_logit_softcapping", 6, float(cfg["attn_logit_softcapping"])),
                kv(A + "final_logit_softcapping", 6, float(cfg["final_logit_softcapping"])),
                kv(A + "attention.sliding_window", 4, cfg["sliding_window"])]
    else:
        kvs += [kv(A + "rope.freq_base", 6, float(theta))]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    if arch == "qwen3" or gemma or hd * cfg["num_attention_heads"] != cfg["hidden_size"]:
        # Qwen3's head size is the config's, whatever the width; a decoupled one's too
        kvs += [kv(A + "attention.key_length", 4, hd), kv(A + "attention.value_length", 4, hd)]
    if cfg["model_type"] == "mistral" and cfg.get("sliding_window"):  # as loraft writes it
        kvs += [kv(A + "attention.sliding_window", 4, cfg["sliding_window"])]
    if arch == "phi3":
        more, tensors = phi3_rope(cfg, rope or cfg.get("rope_scaling") or {})
        kvs += more
    if arch == "gemma3" and cfg.get("final_logit_softcapping"):
        kvs += [kv(A + "final_logit_softcapping", 6, float(cfg["final_logit_softcapping"]))]
    if arch == "gemma3" and cfg.get("sliding_window"):
        kvs += [kv(A + "attention.sliding_window", 4, cfg["sliding_window"])]
        step = layer_steps(cfg["layer_types"])
        if step != 6:
            kvs += [kv(A + "attention.sliding_window_pattern", 4, step)]
        local = cfg.get("rope_local_base_freq") or cfg["rope_parameters"]["sliding_attention"]["rope_theta"]
        if local != 10000:
            kvs += [kv(A + "rope.freq_base_swa", 6, float(local))]

    def permute(x, n):
        return x.reshape(n, 2, hd // 2, -1).swapaxes(1, 2).reshape(x.shape)
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    per = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
           "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
           "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
           "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}  # Phi-3's fused
    if gemma:
        per.update({"post_attention_layernorm": "post_attention_norm",
                    "pre_feedforward_layernorm": "ffn_norm",
                    "post_feedforward_layernorm": "post_ffw_norm"})
    for k, x in w.items():
        base, param = k.rsplit(".", 1)
        if arch == "gemma2" and base == "lm_head":
            continue  # Gemma2Model's: the head is token_embd
        if base in names:
            g = names[base]
        else:
            p = base.split(".")
            g = "blk.%s.%s" % (p[2], per[".".join(p[3:])])
            if arch in ("llama", "smollm3") and p[3:] == ["self_attn", "q_proj"]:
                x = permute(x, cfg["num_attention_heads"])
            if arch in ("llama", "smollm3") and p[3:] == ["self_attn", "k_proj"]:
                x = permute(x, cfg["num_key_value_heads"])
        if gemma and base.endswith("norm"):
            x = x + 1  # Gemma's RMSNorm multiplies by 1 + w: the converter stores that
        tensors.append((g + "." + param, x))
elif arch == "gpt2":
    A = "gpt2."
    kvs = [kv(A + "block_count", 4, cfg["n_layer"]), kv(A + "embedding_length", 4, cfg["n_embd"]),
           kv(A + "feed_forward_length", 4, cfg["n_inner"] or 4 * cfg["n_embd"]),
           kv(A + "attention.head_count", 4, cfg["n_head"]),
           kv(A + "context_length", 4, cfg["n_positions"]),
           kv(A + "attention.layer_norm_epsilon", 6, cfg["layer_norm_epsilon"])]
    names = {"transformer.wte": "token_embd", "transformer.wpe": "position_embd",
             "transformer.ln_f": "output_norm"}
    per = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
           "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for k, x in w.items():
        base, param = k.rsplit(".", 1)
        if base in names:
            g = names[base]
        else:
            p = base.split(".")
            g = "blk.%s.%s" % (p[2], per[".".join(p[3:])])
            if x.ndim == 2:
                x = x.T  # Conv1D [in, out] -> [out, in]
        tensors.append((g + "." + param, x))
        if g == "token_embd":
            tensors.append(("output.weight", x))  # the converter's copy of the tied head
else:
    sys.exit(f"write-tiny-gguf: model_type {arch} (llama, mistral, qwen2, qwen3, smollm3, "
             "gemma3_text, gemma2, phi3 or gpt2)")
kvs = [kv("general.architecture", 8, arch)] + kvs + [
    kv("tokenizer.ggml.model", 8, "gpt2"), kv("tokenizer.ggml.pre", 8, "gpt-2"),
    kv("tokenizer.ggml.tokens", 9, (8, tokens)), kv("tokenizer.ggml.token_type", 9, (5, types)),
    kv("tokenizer.ggml.merges", 9, (8, merges)),
    kv("tokenizer.ggml.bos_token_id", 4, cfg["bos_token_id"]),
    kv("tokenizer.ggml.eos_token_id", 4, cfg["eos_token_id"])]
info, data = b"", b""
for name, x in tensors:
    x = np.ascontiguousarray(x, dtype=np.float32)
    info += S(name) + struct.pack("<I", x.ndim)
    info += b"".join(struct.pack("<Q", d) for d in x.shape[::-1])
    info += struct.pack("<IQ", 0, len(data))
    data += x.tobytes() + b"\0" * (-x.nbytes % 32)
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + info
with open(out, "wb") as f:
    f.write(head + b"\0" * (-len(head) % 32) + data)
