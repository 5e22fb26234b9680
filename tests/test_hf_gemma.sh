#!/usr/bin/env bash
# Google's Gemma 3 text models and Gemma 2 as transformers 5 writes them: a seeded random
# Gemma3ForCausalLM / Gemma2ForCausalLM (4 layers, hidden 64, 4 heads of 32 over 2 KV heads,
# query_pre_attn_scalar 32; layers 0 and 2 windowed (window max_length / 4), 1 and 3 full; Gemma 3's
# windowed layers with RoPE base 1e4 and the full ones 1e6; Gemma 2's attention scores soft-capped at
# 3 and its logits at 2, where they bite; the head tied) with the GPT-2 tokenizer; every RMS norm's
# weight drawn at random (transformers initialises them to 0, which would hide the 1 + w that
# Gemma's norms multiply by, and norms that were left out). For each:
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5);
#  2. the same weights with every layer full (layer_types), and (Gemma 3) with one RoPE base for all
#     layers, (Gemma 2) without soft-capping or with query_pre_attn_scalar 24 (27B's way: not the
#     head size), give a loss more than 1e-3 away in transformers, and that loss in loraft too;
#  3. LoRA on all seven projections trains for a few steps; PEFT loads the adapter onto
#     transformers' model with no missing or unexpected keys and the same loss as `loraft eval
#     --adapter`, and `loraft merge` writes a directory of the same class (layer_types, RoPE and
#     the soft-capping as transformers 4 and 5 read them) that transformers loads with that loss;
#  4. full fine-tuning (the norms too) for a few steps: transformers loads the checkpoint with the
#     loss loraft gives it;
#  5. the same model as a GGUF (scripts/write-tiny-gguf.py, after llama.cpp's converter: the norms
#     as 1 + w; Gemma 3's every second layer full as attention.sliding_window_pattern 2, Gemma 2's
#     soft-capping keys) gives the directory's loss; the merge as a GGUF (`loraft merge --format
#     gguf --type f32`) gives the adapter's, and `loraft export-gguf` writes the adapter with every
#     module's lora_a and lora_b. (scripts/check-llama-cpp.sh with LLAMA_CPP_CHECK_BASE checks such
#     files against llama.cpp itself.)
# Usage: [GEMMA_ARCHS="gemma3 gemma2"] tests/test_hf_gemma.sh
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-gemma
tol=2e-5
max_len=32
write_corpus

# check_arch ARCH: the checks above for gemma3 or gemma2, in $tmp/ARCH
check_arch() {
  local arch=$1 dir=$tmp/$1
  local variants name losses='{}'
  mkdir "$dir"
  variants=$("$py" - "$dir" "$vocab" "$max_len" "$arch" <<'EOF'
import json, shutil, sys
import torch
import transformers
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, max_len, arch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.manual_seed(7)
sizes = dict(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
             max_position_embeddings=64, initializer_range=0.15, sliding_window=max_len // 4,
             pad_token_id=None, bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)
if arch == "gemma3":
    cfg = transformers.Gemma3TextConfig(**sizes, sliding_window_pattern=2, rope_theta=1e6,
                                        rope_local_base_freq=1e4)
    model = transformers.Gemma3ForCausalLM(cfg).eval()
    one_base = {k: {"rope_type": "default", "rope_theta": 1e6}
                for k in ("full_attention", "sliding_attention")}
    variants = {"onebase": dict(rope_parameters=one_base)}
else:
    cfg = transformers.Gemma2Config(**sizes, rope_theta=1e4, attn_logit_softcapping=3.0,
                                    final_logit_softcapping=2.0)
    model = transformers.Gemma2ForCausalLM(cfg).eval()
    variants = {"nocap": dict(attn_logit_softcapping=None, final_logit_softcapping=None),
                "scalar": dict(query_pre_attn_scalar=24)}
variants["full"] = dict(layer_types=["full_attention"] * 4)
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name:
            p.normal_(0.0, 0.5)
model.save_pretrained(dir + "/model")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{dir}/model/{f}")
saved = json.load(open(dir + "/model/config.json"))
assert saved["model_type"] == cfg.model_type and saved["layer_types"] == [
    "sliding_attention", "full_attention"] * 2, saved
for name, edit in variants.items():  # check 2's
    shutil.copytree(dir + "/model", f"{dir}/{name}")
    json.dump({**saved, **edit}, open(f"{dir}/{name}/config.json", "w"))
print(" ".join(variants))
EOF
  )
  write_lora_run "$dir"
  base=$(eval_loss "$dir/run.json")
  for name in $variants; do
    losses=$("$py" -c 'import json, sys; d = json.loads(sys.argv[1]); d[sys.argv[2]] = sys.argv[3]; print(json.dumps(d))' \
      "$losses" "$name" "$(eval_loss "$dir/run.json" --set model.model="$dir/$name")")
  done
  lora_round "$arch" "$dir" "$base"

  "$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$arch" "$base" "$losses" "$adapter" \
    "$merged" "$tuned" "$vocab" <<'EOF'
import json, struct, sys
import torch
from peft import PeftModel
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import Checks, KeyNoise, hf_loss, load
hf_logging.disable_progress_bar()
dir, valid, max_len, tol, arch = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
variants = json.loads(sys.argv[7])
base, adapter, merged, tuned = (a.split() for a in (sys.argv[6], *sys.argv[8:11]))
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(valid)]
checks = Checks(arch, tol)
check, agree = checks.check, checks.agree
tok = AutoTokenizer.from_pretrained(sys.argv[11])  # GPT-2's (the model_type would pick Gemma's)
cls = {"gemma3": "Gemma3ForCausalLM", "gemma2": "Gemma2ForCausalLM"}[arch]
what = {"full": "every layer full", "onebase": "one RoPE base", "nocap": "no soft-capping",
        "scalar": "query_pre_attn_scalar 24"}

model, bad = load(dir + "/model")
check(type(model).__name__ == cls and not bad, f"base: {bad}")
theirs = hf_loss(model, tok, texts, max_len)
agree("base loss", base, theirs)
for name, ours in variants.items():
    variant, bad = load(f"{dir}/{name}")
    other = hf_loss(variant, tok, texts, max_len)
    check(abs(other[0] - theirs[0]) > 1e-3 and not bad,
          f"{what[name]} matters: transformers {theirs[0]:.7f} -> {other[0]:.7f}")
    agree(what[name], ours.split(), other)
with KeyNoise() as keys:
    peft = PeftModel.from_pretrained(model, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
agree("adapter loss (PEFT)", adapter, hf_loss(peft, tok, texts, max_len))
check(abs(float(adapter[0]) - float(base[0])) > 1e-3, "the adapter changes the loss")
out, bad = load(dir + "/merged")
saved = json.load(open(dir + "/merged/config.json"))
same = ("layer_types", "rope_parameters", "query_pre_attn_scalar", "attn_logit_softcapping",
        "final_logit_softcapping")
check(type(out).__name__ == cls and not bad
      and all(getattr(out.config, k) == getattr(model.config, k) for k in same),
      f"merged: no missing/unexpected keys {bad}, as read: "
      + ", ".join(f"{k} {getattr(out.config, k)}" for k in same))
agree("merged loss (transformers)", merged, hf_loss(out, tok, texts, max_len))
check(abs(float(merged[0]) - float(adapter[0])) <= tol, f"merged {merged[0]} = adapter {adapter[0]}")
ft, bad = load(dir + "/fullrun/best")
norms = [n for n, p in ft.named_parameters() if "norm" in n
         and not torch.equal(p, dict(model.named_parameters())[n])]
per_layer = 6 if arch == "gemma3" else 4  # Gemma 3's q_norm and k_norm
check(not bad and len(norms) == 4 * per_layer + 1, f"full fine-tuning trained all {len(norms)} norms")
agree("fully fine-tuned loss (transformers)", tuned, hf_loss(ft, tok, texts, max_len))
gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
data = open(dir + "/merged.gguf", "rb").read()
keys = [f"{arch}.attention.sliding_window", f"{arch}.attention.key_length",
        "blk.3.post_ffw_norm.weight", "blk.0.post_attention_norm.weight"]
if arch == "gemma3":
    keys += ["gemma3.rope.freq_base_swa", "blk.1.attn_q_norm.weight"]
    pattern = gs("gemma3.attention.sliding_window_pattern") + struct.pack("<IIQ", 9, 7, 4) + bytes([1, 0, 1, 0])
    layout, has = "the windowed layers as flags 1 0 1 0", pattern in data
else:
    keys += ["gemma2.attn_logit_softcapping", "gemma2.final_logit_softcapping"]
    layout, has = "no head norms", gs("blk.1.attn_q_norm.weight") not in data
check(gs("general.architecture") + struct.pack("<I", 8) + gs(arch) in data
      and all(gs(k) in data for k in keys) and has and gs("output.weight") not in data,
      f"merged GGUF: architecture {arch}, {', '.join(keys)}, {layout}, the head tied")
data = open(dir + "/adapter.gguf", "rb").read()
check(gs("general.architecture") + struct.pack("<I", 8) + gs(arch) in data
      and all(gs(f"blk.{l}.{m}.weight.lora_{ab}") in data for l in range(4) for ab in "ab"
              for m in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                        "ffn_down")),
      f"adapter GGUF (export-gguf): architecture {arch}, lora_a and lora_b of the 7 modules of every layer")
results = checks.results
print(f"{arch}: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if checks.passed() else 1)
EOF
}

for arch in ${GEMMA_ARCHS:-gemma3 gemma2}; do check_arch "$arch"; done
