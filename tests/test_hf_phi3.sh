#!/usr/bin/env bash
# Microsoft's Phi-3 and Phi-3.5 as transformers 5 writes them: a seeded random Phi3ForCausalLM (2
# layers, hidden 64, 4 heads over 2 KV heads; q, k and v one linear, qkv_proj, and gate and up one,
# gate_up_proj; sliding_window max_length / 2; RoPE longrope with short and long factors drawn, an
# original context of 64 in max_position_embeddings 256, so an attention factor of 1.155) with the
# GPT-2 tokenizer:
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5): every text inside the original context, the
#     short factors;
#  2. the same weights with an original context of 8, which every text passes: transformers runs the
#     long factors (and an attention factor of 1.28), a loss more than 1e-3 away, and loraft that
#     loss too;
#  3. LoRA on qkv_proj, o_proj, gate_up_proj and down_proj (the modules PEFT's Phi-3 users target)
#     trains for a few steps; PEFT loads the adapter onto transformers' model with no missing or
#     unexpected keys and the same loss as `loraft eval --adapter`, and `loraft merge` writes a
#     Phi3ForCausalLM directory (longrope as transformers reads it) that transformers loads with that
#     loss;
#  4. full fine-tuning for a few steps: transformers loads the checkpoint (the fused tensors as it
#     stores them) with the loss loraft gives it;
#  5. the same model as a GGUF (scripts/write-tiny-gguf.py, after llama.cpp's converter: attn_qkv,
#     ffn_up of [gate; up], the factors as rope_factors_short / _long) gives the directory's loss, the
#     merge as a GGUF the adapter's, and `loraft export-gguf` writes the adapter's lora_a and lora_b
#     of attn_qkv, attn_output, ffn_up and ffn_down;
#  6. Phi-4-mini's partial rotary embeddings: the same shapes with partial_rotary_factor 0.5 (RoPE
#     over 8 of each head's 16 dims, the rest passing through; 4 factors a list), a tied head and
#     an original context of 8: loraft's loss is transformers', and the GGUF (rope.dimension_count
#     8, as llama.cpp's converter writes it) gives the directory's.
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-phi3
tol=2e-5
max_len=32
write_corpus
dir=$tmp/phi3
mkdir "$dir"

"$py" - "$dir" "$vocab" "$max_len" <<'EOF'
import json, shutil, sys
import torch
import transformers
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(11)
half = 64 // 4 // 2  # HS / 2 factors
short = [round(1.0 + 0.15 * i + 0.1 * float(torch.rand(())), 4) for i in range(half)]
long = [round(f * (1.5 + i), 4) for i, f in enumerate(short)]


def save(out, pairs=half, original=64, **more):
    """A random Phi3ForCausalLM of longrope over `pairs` factor pairs, its norms drawn too"""
    cfg = transformers.Phi3Config(
        vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        original_max_position_embeddings=original, sliding_window=max_len // 2,
        initializer_range=0.15, pad_token_id=None, bos_token_id=50256, eos_token_id=50256,
        rope_scaling={"type": "longrope", "short_factor": short[:pairs],
                      "long_factor": long[:pairs]}, **more)
    model = transformers.Phi3ForCausalLM(cfg).eval()
    assert model.model.rotary_emb.inv_freq.numel() == pairs
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.3)
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(f"{vocab}/{f}", f"{out}/{f}")


save(dir + "/model", tie_word_embeddings=False)
saved = json.load(open(dir + "/model/config.json"))
assert saved["model_type"] == "phi3" and saved["rope_parameters"]["rope_type"] == "longrope", saved
shutil.copytree(dir + "/model", dir + "/long")
saved["original_max_position_embeddings"] = 8
saved["rope_parameters"]["original_max_position_embeddings"] = 8
json.dump(saved, open(dir + "/long/config.json", "w"))
save(dir + "/partial", half // 2, 8, partial_rotary_factor=0.5, tie_word_embeddings=True)
EOF

write_lora_run "$dir"
"$py" - "$dir/run.json" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
run["lora"]["target_modules"] = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
json.dump(run, open(sys.argv[1], "w"))
EOF
base=$(eval_loss "$dir/run.json")
long=$(eval_loss "$dir/run.json" --set model.model="$dir/long")
partial=$(eval_loss "$dir/run.json" --set model.model="$dir/partial")
"$py" scripts/write-tiny-gguf.py "$dir/partial" "$dir/partial.gguf"
[ "$(eval_loss "$dir/run.json" --set model.model="$dir/partial.gguf")" = "$partial" ] \
  || { echo "FAIL: the partial rotary GGUF's loss differs from the HF directory's"; exit 1; }
echo "ok   the partial rotary GGUF gives the HF directory's loss ($partial)"
lora_round phi3 "$dir" "$base"

"$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$long" "$adapter" "$merged" \
  "$tuned" "$partial" <<'EOF'
import json, struct, sys
import torch
from peft import PeftModel
sys.path.insert(0, "tests")
from lm_compat import KeyNoise, family_case, hf_loss, load
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
dir, texts, max_len, tok, checks = family_case(sys.argv)
base, long, adapter, merged, tuned, partial = (a.split() for a in sys.argv[5:11])
check, agree = checks.check, checks.agree
torch.set_num_threads(1)

model, bad = load(dir + "/model")
rope = model.model.rotary_emb
check(type(model).__name__ == "Phi3ForCausalLM" and rope.rope_type == "longrope" and not bad,
      f"base: rope {rope.rope_type}, attention factor {rope.attention_scaling:.6f} {bad}")
theirs = hf_loss(model, tok, texts, max_len)
agree("base loss (short factors)", base, theirs)
before = {n: p.detach().clone() for n, p in model.named_parameters()}  # PEFT wraps the modules
far, bad = load(dir + "/long")
other = hf_loss(far, tok, texts, max_len)
check(abs(other[0] - theirs[0]) > 1e-3 and not bad,
      f"the long factors matter: transformers {theirs[0]:.7f} -> {other[0]:.7f}")
agree("long factors (original context 8)", long, other)
part, bad = load(dir + "/partial")
rope = part.model.rotary_emb
check(not bad and part.config.rope_parameters["partial_rotary_factor"] == 0.5
      and rope.inv_freq.numel() == 4 and part.lm_head.weight is part.model.embed_tokens.weight,
      f"partial: RoPE over {2 * rope.inv_freq.numel()} of 16 dims, the head tied {bad}")
agree("partial rotary (Phi-4-mini's, long factors)", partial, hf_loss(part, tok, texts, max_len))
with KeyNoise() as keys:
    peft = PeftModel.from_pretrained(model, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
targets = sorted(peft.peft_config["default"].target_modules)
check(targets == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"], f"adapter targets {targets}")
agree("adapter loss (PEFT)", adapter, hf_loss(peft, tok, texts, max_len))
check(abs(float(adapter[0]) - float(base[0])) > 1e-3, "the adapter changes the loss")
out, bad = load(dir + "/merged")
check(type(out).__name__ == "Phi3ForCausalLM" and not bad
      and out.config.rope_parameters == model.config.rope_parameters
      and out.config.sliding_window == max_len // 2,
      f"merged: no missing/unexpected keys {bad}, rope_parameters and sliding_window as read")
agree("merged loss (transformers)", merged, hf_loss(out, tok, texts, max_len))
ft, bad = load(dir + "/fullrun/best")
moved = [n for n, p in ft.named_parameters() if not torch.equal(p, before[n])]
check(not bad and any("qkv_proj" in n for n in moved) and any("gate_up_proj" in n for n in moved),
      f"full fine-tuning: {len(moved)} tensors moved, the fused ones among them")
agree("fully fine-tuned loss (transformers)", tuned, hf_loss(ft, tok, texts, max_len))

gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
data = open(dir + "/merged.gguf", "rb").read()
keys = ["blk.0.attn_qkv.weight", "blk.1.ffn_up.weight", "rope_factors_long.weight",
        "rope_factors_short.weight", "phi3.rope.scaling.original_context_length",
        "phi3.attention.sliding_window", "output.weight"]
check(gs("general.architecture") + struct.pack("<I", 8) + gs("phi3") in data
      and all(gs(k) in data for k in keys) and gs("blk.0.ffn_gate.weight") not in data,
      f"merged GGUF: architecture phi3, {', '.join(keys)}, no ffn_gate")
data = open(dir + "/adapter.gguf", "rb").read()
check(gs("general.architecture") + struct.pack("<I", 8) + gs("phi3") in data
      and all(gs(f"blk.{l}.{m}.weight.lora_{ab}") in data for l in range(2) for ab in "ab"
              for m in ("attn_qkv", "attn_output", "ffn_up", "ffn_down")),
      "adapter GGUF (export-gguf): architecture phi3, lora_a and lora_b of the 4 modules of both layers")
results = checks.results
print(f"phi3: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if checks.passed() else 1)
EOF
