#!/usr/bin/env bash
# Gemma 3's text models as transformers 5 writes them: a seeded random Gemma3ForCausalLM (4 layers,
# hidden 64, 4 heads of 32 over 2 KV heads, query_pre_attn_scalar 32; sliding_window_pattern 2:
# layers 0 and 2 windowed (window max_length / 4) with RoPE base 1e4, layers 1 and 3 full with 1e6;
# the head tied) with the GPT-2 tokenizer; every RMS norm's weight drawn at random (transformers
# initialises them to 0, which would hide the 1 + w that Gemma's norms multiply by, and norms that
# were left out).
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5);
#  2. the same weights with every layer full (layer_types) give a loss more than 1e-3 away in
#     transformers, and that loss in loraft too; so do they with one RoPE base for all layers;
#  3. LoRA on all seven projections trains for a few steps; PEFT loads the adapter onto
#     transformers' model with no missing or unexpected keys and the same loss as `loraft eval
#     --adapter`, and `loraft merge` writes a Gemma3ForCausalLM directory (rope_theta,
#     rope_local_base_freq and layer_types as transformers 4 and 5 read them) that transformers
#     loads with that loss;
#  4. full fine-tuning (the norms too) for a few steps: transformers loads the checkpoint with the
#     loss loraft gives it;
#  5. the same model as a GGUF (scripts/write-tiny-gguf.py, after llama.cpp's converter: the norms
#     as 1 + w, every second layer full as attention.sliding_window_pattern 2) gives the
#     directory's loss; the merge as a GGUF (`loraft merge --format gguf --type f32`: the pattern
#     as a flag a layer) gives the adapter's, and `loraft export-gguf` writes the adapter under
#     gemma3 with every module's lora_a and lora_b. (scripts/check-llama-cpp.sh with
#     LLAMA_CPP_CHECK_BASE checks such files against llama.cpp itself.)
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-gemma3
tol=2e-5
max_len=32
write_corpus
dir=$tmp/gemma3
mkdir "$dir"

"$py" - "$dir" "$vocab" "$max_len" <<'EOF'
import json, shutil, sys
import torch
import transformers
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(7)
cfg = transformers.Gemma3TextConfig(
    vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
    max_position_embeddings=64, initializer_range=0.15, sliding_window=max_len // 4,
    sliding_window_pattern=2, rope_theta=1e6, rope_local_base_freq=1e4, pad_token_id=None,
    bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)
model = transformers.Gemma3ForCausalLM(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name:
            p.normal_(0.0, 0.5)
model.save_pretrained(dir + "/model")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{dir}/model/{f}")
saved = json.load(open(dir + "/model/config.json"))
assert saved["model_type"] == "gemma3_text" and saved["layer_types"] == [
    "sliding_attention", "full_attention"] * 2, saved
# the variants of check 2: every layer full; one RoPE base (1e6) for all
for name, edit in (("full", dict(layer_types=["full_attention"] * 4)),
                   ("onebase", dict(rope_parameters={k: {"rope_type": "default",
                                                         "rope_theta": 1e6}
                                                     for k in ("full_attention",
                                                               "sliding_attention")}))):
    shutil.copytree(dir + "/model", f"{dir}/{name}")
    json.dump({**saved, **edit}, open(f"{dir}/{name}/config.json", "w"))
EOF

write_lora_run "$dir"
base=$(eval_loss "$dir/run.json")
full=$(eval_loss "$dir/run.json" --set model.model="$dir/full")
onebase=$(eval_loss "$dir/run.json" --set model.model="$dir/onebase")
"$bin" train --config "$dir/run.json" >"$dir/train.log" 2>&1 \
  || { cat "$dir/train.log"; echo "FAIL: gemma3: loraft train"; exit 1; }
adapter=$(eval_loss "$dir/run.json" --adapter "$dir/run/best")
"$bin" merge --model "$dir/model" --adapter "$dir/run/best" --out "$dir/merged" >/dev/null
merged=$(eval_loss "$dir/run.json" --set model.model="$dir/merged")
"$bin" train --config "$dir/run.json" --set lora.strategy=full --set train.learning_rate=1e-3 \
  --set train.output_dir="$dir/fullrun" >"$dir/full.log" 2>&1 \
  || { cat "$dir/full.log"; echo "FAIL: gemma3: loraft train (full)"; exit 1; }
tuned=$(eval_loss "$dir/run.json" --set model.model="$dir/fullrun/best")

"$py" scripts/write-tiny-gguf.py "$dir/model" "$dir/model.gguf"
[ "$(eval_loss "$dir/run.json" --set model.model="$dir/model.gguf")" = "$base" ] \
  || { echo "FAIL: the gemma3 GGUF's loss differs from the HF directory's"; exit 1; }
echo "ok   the gemma3 GGUF gives the HF directory's loss ($base)"
"$bin" merge --model "$dir/model" --adapter "$dir/run/best" --format gguf --type f32 \
  --out "$dir/merged.gguf" >/dev/null
"$bin" export-gguf --adapter "$dir/run/best" --out "$dir/adapter.gguf" >/dev/null
merged_gguf=$(eval_loss "$dir/run.json" --set model.model="$dir/merged.gguf")
[ "$merged_gguf" = "$adapter" ] \
  || { echo "FAIL: the merged GGUF's loss $merged_gguf is not the adapter's $adapter"; exit 1; }
echo "ok   the merged gemma3 GGUF gives the adapter's loss ($adapter)"

"$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$full" "$onebase" "$adapter" \
  "$merged" "$tuned" "$vocab" <<'EOF'
import json, struct, sys
import torch
from peft import PeftModel
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import Checks, KeyNoise, hf_loss, load
hf_logging.disable_progress_bar()
dir, valid, max_len, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
base, full, onebase, adapter, merged, tuned = (a.split() for a in sys.argv[5:11])
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(valid)]
checks = Checks("gemma3", tol)
check, agree = checks.check, checks.agree
tok = AutoTokenizer.from_pretrained(sys.argv[11])  # GPT-2's (the model_type would pick Gemma's)

model, bad = load(dir + "/model")
check(type(model).__name__ == "Gemma3ForCausalLM" and not bad, f"base: {bad}")
theirs = hf_loss(model, tok, texts, max_len)
agree("base loss", base, theirs)
for name, ours, what in (("full", full, "every layer full"), ("onebase", onebase, "one RoPE base")):
    variant, bad = load(f"{dir}/{name}")
    other = hf_loss(variant, tok, texts, max_len)
    check(abs(other[0] - theirs[0]) > 1e-3 and not bad,
          f"{what} matters: transformers {theirs[0]:.7f} -> {other[0]:.7f}")
    agree(what, ours, other)
with KeyNoise() as keys:
    peft = PeftModel.from_pretrained(model, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
agree("adapter loss (PEFT)", adapter, hf_loss(peft, tok, texts, max_len))
check(abs(float(adapter[0]) - float(base[0])) > 1e-3, "the adapter changes the loss")
out, bad = load(dir + "/merged")
saved = json.load(open(dir + "/merged/config.json"))
check(type(out).__name__ == "Gemma3ForCausalLM" and not bad
      and saved["layer_types"] == model.config.layer_types
      and out.config.rope_parameters == model.config.rope_parameters,
      f"merged: no missing/unexpected keys {bad}, layer_types {saved['layer_types']}, "
      f"RoPE as read {out.config.rope_parameters}")
agree("merged loss (transformers)", merged, hf_loss(out, tok, texts, max_len))
check(abs(float(merged[0]) - float(adapter[0])) <= tol, f"merged {merged[0]} = adapter {adapter[0]}")
ft, bad = load(dir + "/fullrun/best")
norms = [n for n, p in ft.named_parameters() if "norm" in n
         and not torch.equal(p, dict(model.named_parameters())[n])]
check(not bad and len(norms) == 4 * 6 + 1, f"full fine-tuning trained all {len(norms)} norms")
agree("fully fine-tuned loss (transformers)", tuned, hf_loss(ft, tok, texts, max_len))
gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
data = open(dir + "/merged.gguf", "rb").read()
keys = ("gemma3.attention.sliding_window", "gemma3.rope.freq_base_swa", "gemma3.attention.key_length",
        "blk.3.post_ffw_norm.weight", "blk.0.post_attention_norm.weight", "blk.1.attn_q_norm.weight")
pattern = gs("gemma3.attention.sliding_window_pattern") + struct.pack("<IIQ", 9, 7, 4) + bytes([1, 0, 1, 0])
check(gs("general.architecture") + struct.pack("<I", 8) + gs("gemma3") in data
      and all(gs(k) in data for k in keys) and pattern in data and gs("output.weight") not in data,
      f"merged GGUF: architecture gemma3, {', '.join(keys)}, the windowed layers as flags 1 0 1 0, the head tied")
data = open(dir + "/adapter.gguf", "rb").read()
check(gs("general.architecture") + struct.pack("<I", 8) + gs("gemma3") in data
      and all(gs(f"blk.{l}.{m}.weight.lora_{ab}") in data for l in range(4) for ab in "ab"
              for m in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                        "ffn_down")),
      "adapter GGUF (export-gguf): architecture gemma3, lora_a and lora_b of the 7 modules of every layer")
results = checks.results
print(f"gemma3: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if checks.passed() else 1)
EOF
