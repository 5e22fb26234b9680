#!/usr/bin/env bash
# The llama family's other model_types as transformers 5 writes them: Qwen2 (Qwen2.5), Qwen3 and
# Mistral. A seeded random Qwen2ForCausalLM / Qwen3ForCausalLM / MistralForCausalLM (2 layers,
# hidden 64, 4 heads over 2 KV heads, rope_theta 1e6) with the GPT-2 tokenizer:
#  - qwen2, qwen3: the head tied as the small Qwens'; Qwen3's head_dim 32, so that its heads are
#    twice the width as Qwen3-0.6B's and 4B's are; q, k and v biases (Qwen2) or q and k head norms
#    (Qwen3) drawn at random too (transformers initialises them to 0 and 1, which would hide them);
#  - mistral: the head untied as Mistral 7B's; head_dim 32 (heads wider than hidden / heads, as
#    Mistral-Nemo's 32 x 128 over 5120); sliding_window 16, half of max_length: every check below
#    runs through the window.
# For each:
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5);
#  2. qwen2, qwen3: the same weights with the biases 0 (the norms' weights 1) give a loss more than
#     1e-3 away, so check 1 sees them; mistral: the same weights without the window (null) give a
#     loss more than 1e-3 away in transformers, and that loss in loraft too;
#  3. the same model as a GGUF (arch qwen2 / qwen3: q and k rows as HF stores them, the biases and
#     head norms as they are, Qwen3's head size as key_length; mistral: arch llama, q and k rows
#     permuted as Llama's, its head size as key_length; after llama.cpp's converter;
#     scripts/write-tiny-gguf.py) gives the same loss;
#  4. LoRA on all seven projections trains for a few steps; PEFT loads the adapter onto
#     transformers' model with no missing or unexpected keys and the same loss as `loraft eval
#     --adapter`, and `loraft merge` writes a Qwen2ForCausalLM / Qwen3ForCausalLM /
#     MistralForCausalLM directory that transformers loads (no missing or unexpected keys) with that
#     loss too;
#  5. the merge as a GGUF (`loraft merge --format gguf --type f32`) gives that loss in loraft, and
#     holds the model's own tensors and keys (mistral: general.architecture llama, llama.* keys
#     with llama.attention.sliding_window, which loraft reads back as a Mistral)
#     and the directory's tokenizer; `loraft export-gguf` writes the adapter under the same
#     architecture (mistral: llama) with every module's lora_a and lora_b;
#  6. qwen2, qwen3: their per-layer sliding windows (check_qwen_window below) and YaRN
#     (check_yarn); mistral: `loraft generate` runs past the window (its KV cache reads the
#     window's keys; test_generate checks it against recomputation).
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-llama-family
tol=2e-5
max_len=32
write_corpus

# check_arch ARCH: the checks above in $tmp/ARCH
check_arch() {
  local arch=$1 dir=$tmp/$1 base plain adapter merged merged_gguf narrow
  mkdir "$dir"
  "$py" - "$dir" "$vocab" "$arch" "$max_len" <<'EOF'
import json, shutil, sys
import torch
import transformers
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, arch, max_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.manual_seed(5)
name = {"smollm3": "SmolLM3"}.get(arch, arch.capitalize())
Config, Model = (getattr(transformers, name + k) for k in ("Config", "ForCausalLM"))
if arch == "mistral":
    extra = dict(head_dim=32, tie_word_embeddings=False, sliding_window=max_len // 2)
elif arch == "smollm3":  # 4 layers, the last without RoPE (every fourth, as llama.cpp's)
    extra = dict(tie_word_embeddings=True, pad_token_id=None)
else:
    extra = dict(tie_word_embeddings=True, use_sliding_window=False, sliding_window=64,
                 max_window_layers=1, **(dict(head_dim=32) if arch == "qwen3" else {}))
cfg = Config(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=4 if arch == "smollm3" else 2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
             initializer_range=0.15, rope_theta=1e6, bos_token_id=50256, eos_token_id=50256,
             **extra)
model = Model(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith(".bias") or ("self_attn" in name and "_norm." in name):
            p.normal_(1.0 if "_norm." in name else 0.0, 0.5)
model.save_pretrained(dir + "/model")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{dir}/model/{f}")
saved = json.load(open(dir + "/model/config.json"))
assert saved["model_type"] == arch and "rope_parameters" in saved, saved
assert arch != "mistral" or (saved["sliding_window"] == max_len // 2 and saved["head_dim"] == 32
                             and "attention_bias" not in saved), saved
EOF

  write_lora_run "$dir"
  base=$(eval_loss "$dir/run.json")

  if [ "$arch" = qwen2 ] || [ "$arch" = qwen3 ]; then
    cp -r "$dir/model" "$dir/plain"
    "$py" - "$dir/plain/model.safetensors" <<'EOF'
import sys
from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
own = [k for k in w if k.endswith(".bias") or ("self_attn" in k and "_norm." in k)]
assert len(own) in (4, 6), own  # of 2 layers: Qwen2's q, k and v biases; Qwen3's q and k norms
save_file({k: v * 0 + k.endswith(".weight") if k in own else v for k, v in w.items()},
          sys.argv[1], metadata={"format": "pt"})
EOF
    read -r plain _ < <(eval_loss "$dir/run.json" --set model.model="$dir/plain")
    "$py" -c "import sys; sys.exit(abs($plain - ${base% *}) <= 1e-3)" \
      || { echo "FAIL: $arch: as initialised the loss is $plain, drawn ${base% *}: too close"; exit 1; }
    echo "ok   $arch: the biases or head norms matter: loss ${base% *} -> $plain as initialised"
  fi

  mkdir "$dir/gguf"
  "$py" scripts/write-tiny-gguf.py "$dir/model" "$dir/gguf/model.gguf"
  [ "$(eval_loss "$dir/run.json" --set model.model="$dir/gguf/model.gguf")" = "$base" ] \
    || { echo "FAIL: the $arch GGUF's loss differs from the HF directory's"; exit 1; }
  echo "ok   the $arch GGUF gives the HF directory's loss ($base)"

  "$bin" train --config "$dir/run.json" >"$dir/train.log" 2>&1 \
    || { cat "$dir/train.log"; echo "FAIL: $arch: loraft train"; exit 1; }
  adapter=$(eval_loss "$dir/run.json" --adapter "$dir/run/best")
  "$bin" merge --model "$dir/model" --adapter "$dir/run/best" --out "$dir/merged" >/dev/null
  merged=$(eval_loss "$dir/run.json" --set model.model="$dir/merged")
  "$bin" merge --model "$dir/model" --adapter "$dir/run/best" --format gguf --type f32 \
    --out "$dir/merged.gguf" >/dev/null
  "$bin" export-gguf --adapter "$dir/run/best" --out "$dir/adapter.gguf" >/dev/null
  merged_gguf=$(eval_loss "$dir/run.json" --set model.model="$dir/merged.gguf")
  "$py" -c "import sys; a, b, c = ${adapter% *}, ${merged% *}, ${merged_gguf% *}; print('ok   $arch: loraft: adapter %.7f, merged %.7f, merged GGUF %.7f' % (a, b, c)); sys.exit(abs(a - b) > $tol or abs(a - c) > $tol)" \
    || { echo "FAIL: $arch: the merged models' losses differ from the adapter's"; exit 1; }

  # mistral: the same weights without the window; smollm3: with RoPE in every layer
  narrow="-"
  if [ "$arch" = smollm3 ]; then
    cp -r "$dir/model" "$dir/nowindow"
    "$py" - "$dir/nowindow/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["no_rope_layers"] = [1] * c["num_hidden_layers"]
json.dump(c, open(sys.argv[1], "w"))
EOF
    narrow=$(eval_loss "$dir/run.json" --set model.model="$dir/nowindow")
  fi
  if [ "$arch" = mistral ]; then
    cp -r "$dir/model" "$dir/nowindow"
    "$py" - "$dir/nowindow/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["sliding_window"] = None
json.dump(c, open(sys.argv[1], "w"))
EOF
    narrow=$(eval_loss "$dir/run.json" --set model.model="$dir/nowindow")
  fi

  "$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$adapter" "$arch" "$narrow" <<'EOF'
import json, struct, sys
import torch
from peft import PeftModel
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import Checks, KeyNoise, hf_loss, load
hf_logging.disable_progress_bar()
dir, valid, max_len, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ours = {"base": sys.argv[5].split(), "adapter": sys.argv[6].split(), "narrow": sys.argv[8].split()}
arch = sys.argv[7]
cls = {"smollm3": "SmolLM3"}.get(arch, arch.capitalize()) + "ForCausalLM"
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(valid)]
checks = Checks(arch, tol)
check, agree = checks.check, checks.agree

tok = AutoTokenizer.from_pretrained(dir + "/model")
base, bad = load(dir + "/model")
check(type(base).__name__ == cls and not bad, f"base: {type(base).__name__} {bad}")
agree("base loss", ours["base"], hf_loss(base, tok, texts, max_len))
if arch == "mistral":
    full, bad = load(dir + "/nowindow")
    check(full.config.sliding_window is None and not bad, f"nowindow: {bad}")
    theirs = hf_loss(full, tok, texts, max_len)
    window = hf_loss(base, tok, texts, max_len)[0]
    check(abs(theirs[0] - window) > 1e-3,
          f"the window matters: transformers at max_length {max_len}: window "
          f"{base.config.sliding_window} {window:.7f}, none {theirs[0]:.7f}")
    agree("without the window", ours["narrow"], theirs)
    del full
if arch == "smollm3":
    allrope, bad = load(dir + "/nowindow")
    check(allrope.config.no_rope_layers == [1, 1, 1, 1]
          and base.config.no_rope_layers == [1, 1, 1, 0] and not bad,
          f"no_rope_layers {base.config.no_rope_layers}, all RoPE {bad}")
    theirs = hf_loss(allrope, tok, texts, max_len)
    nope = hf_loss(base, tok, texts, max_len)[0]
    check(abs(theirs[0] - nope) > 1e-3,
          f"the NoPE layer matters: transformers {nope:.7f}, with RoPE in it {theirs[0]:.7f}")
    agree("with RoPE in every layer", ours["narrow"], theirs)
    del allrope
with KeyNoise() as keys:
    model = PeftModel.from_pretrained(base, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
agree("adapter loss (PEFT)", ours["adapter"], hf_loss(model, tok, texts, max_len))
check(abs(float(ours["adapter"][0]) - float(ours["base"][0])) > 1e-3, "the adapter changes the loss")
merged, bad = load(dir + "/merged")
check(type(merged).__name__ == cls and not bad,
      f"merged: {type(merged).__name__}, no missing/unexpected keys {bad}")
agree("merged loss (transformers)", ours["adapter"], hf_loss(merged, tok, texts, max_len))
if arch == "mistral":
    saved = json.load(open(dir + "/merged/config.json"))
    check(saved["sliding_window"] == max_len // 2 and saved["head_dim"] == 32
          and merged.config.sliding_window == max_len // 2,
          f"merged config.json: sliding_window {saved.get('sliding_window')}, head_dim "
          f"{saved.get('head_dim')} as read")

data = open(dir + "/merged.gguf", "rb").read()
gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
gguf_arch = "llama" if arch == "mistral" else arch  # as llama.cpp's converter writes Mistral
own = {"qwen2": ("blk.0.attn_q.bias", "blk.1.attn_v.bias"),
       "qwen3": ("blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight",
                 "qwen3.attention.key_length"),
       "mistral": ("llama.attention.key_length", "llama.attention.sliding_window",
                   "output.weight"),
       "smollm3": ("smollm3.rope.freq_base",)}[arch]
tied = arch != "mistral"
check(gs("general.architecture") + struct.pack("<I", 8) + gs(gguf_arch) in data
      and all(gs(k) in data for k in own + (f"{gguf_arch}.attention.head_count_kv",
                                            "tokenizer.ggml.merges"))
      and (gs("output.weight") not in data) == tied and gs(gguf_arch + ".block_count") in data,
      f"merged GGUF: architecture {gguf_arch}, {', '.join(own)}, a tokenizer, the head "
      f"{'tied' if tied else 'its own'}")
data = open(dir + "/adapter.gguf", "rb").read()
check(gs("general.architecture") + struct.pack("<I", 8) + gs(gguf_arch) in data
      and all(gs(f"blk.{l}.{m}.weight.lora_{ab}") in data for l in (0, 1) for ab in "ab"
              for m in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                        "ffn_down")),
      f"adapter GGUF (export-gguf): architecture {gguf_arch}, lora_a and lora_b of the 7 modules "
      f"of both layers")
results = checks.results
print(f"{arch}: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if checks.passed() else 1)
EOF

  if [ "$arch" = mistral ]; then
    "$bin" generate --model "$dir/model" --max-new-tokens 24 "Anne walked to the garden" \
      >/dev/null 2>"$dir/err" || { cat "$dir/err"; echo "FAIL: mistral: a generation past the window"; exit 1; }
    echo "ok   mistral: a generation past the window of $((max_len / 2)) runs"
    return
  fi
  check_qwen_window "$dir" "$base"
  check_yarn "$dir" "$base"
}

# check_qwen_window DIR BASE: the qwen model of DIR with layer 1 windowed (use_sliding_window,
# sliding_window max_len / 4, max_window_layers 1, no layer_types), or the smollm3 one with its
# NoPE layer windowed (SmolLM3Config's default), gives transformers' loss, which differs from the
# model's without the window (BASE); its merge with the adapter writes the windows as
# layer_types, which transformers reads to the loss of `loraft eval --adapter`; a GGUF of it is
# refused (llama.cpp's qwen2, qwen3 and smollm3 have no per-layer windows).
check_qwen_window() {
  local dir=$1 base=$2 window=$((max_len / 4)) slide slide_adapter
  cp -r "$dir/model" "$dir/sliding"
  "$py" - "$dir/sliding/config.json" "$window" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(use_sliding_window=True, sliding_window=int(sys.argv[2]), max_window_layers=1)
del c["layer_types"]
json.dump(c, open(sys.argv[1], "w"))
EOF
  slide=$(eval_loss "$dir/run.json" --set model.model="$dir/sliding")
  slide_adapter=$(eval_loss "$dir/run.json" --set model.model="$dir/sliding" --adapter "$dir/run/best")
  "$bin" merge --model "$dir/sliding" --adapter "$dir/run/best" --out "$dir/sliding_merged" >/dev/null
  if "$bin" merge --model "$dir/sliding" --adapter "$dir/run/best" --format gguf --type f32 \
    --out "$dir/sliding.gguf" >/dev/null 2>"$dir/err"; then
    echo "FAIL: $arch: a GGUF of per-layer windows was written"; exit 1
  fi
  grep -q "sliding window" "$dir/err" || { cat "$dir/err"; echo "FAIL: unclear error"; exit 1; }
  echo "ok   $arch: a GGUF of per-layer windows is refused: $(head -c 160 "$dir/err")"
  "$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$slide" "$slide_adapter" <<'EOF'
import json, sys
sys.path.insert(0, "tests")
from lm_compat import family_case, hf_loss, load
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
dir, texts, max_len, tok, checks = family_case(sys.argv)
base, slide, slide_adapter = (sys.argv[i].split() for i in (5, 6, 7))
report, agree = checks.check, checks.agree
model, bad = load(dir + "/sliding")
types = model.config.layer_types
# Qwen: from max_window_layers 1 on; SmolLM3: its NoPE layers
slid = ([r == 0 for r in model.config.no_rope_layers] if model.config.model_type == "smollm3"
        else [l >= 1 for l in range(len(types))])
report(types == ["sliding_attention" if s else "full_attention" for s in slid]
       and "full_attention" in types and "sliding_attention" in types and not bad,
       f"windowed: transformers reads layer_types {types}")
agree("windowed loss", slide, hf_loss(model, tok, texts, max_len))
report(abs(float(slide[0]) - float(base[0])) > 1e-3,
       f"the window matters: {slide[0]} vs {base[0]} without it")
merged, bad = load(dir + "/sliding_merged")
saved = json.load(open(dir + "/sliding_merged/config.json"))
report(saved.get("layer_types") == types and saved.get("use_sliding_window") is True
       and merged.config.sliding_window == max_len // 4 and not bad,
       f"merged config.json: layer_types {saved.get('layer_types')}, sliding_window "
       f"{saved.get('sliding_window')}, max_window_layers {saved.get('max_window_layers')}")
agree("windowed merge (transformers) vs loraft eval --adapter", slide_adapter,
      hf_loss(merged, tok, texts, max_len))
sys.exit(0 if checks.passed() else 1)
EOF
}

# check_yarn DIR BASE: the model of DIR with YaRN (rope_parameters yarn, factor 4 over an original
# context of max_len / 2, as Qwen2.5's long-context setting is written) gives transformers' loss,
# which differs from the model's without it (BASE); so do its merge as a GGUF (llama.cpp's yarn
# keys) and that GGUF's config read back.
check_yarn() {
  local dir=$1 base=$2 yarn yarn_gguf
  cp -r "$dir/model" "$dir/yarn"
  "$py" - "$dir/yarn/config.json" "$((max_len / 2))" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["rope_parameters"].update(rope_type="yarn", factor=4.0,
                            original_max_position_embeddings=int(sys.argv[2]))
json.dump(c, open(sys.argv[1], "w"))
EOF
  yarn=$(eval_loss "$dir/run.json" --set model.model="$dir/yarn")
  "$bin" merge --model "$dir/yarn" --adapter "$dir/run/best" --format gguf --type f32 \
    --out "$dir/yarn_merged.gguf" >/dev/null
  "$bin" merge --model "$dir/yarn" --adapter "$dir/run/best" --out "$dir/yarn_merged" >/dev/null
  local merged merged_gguf
  merged=$(eval_loss "$dir/run.json" --set model.model="$dir/yarn_merged")
  merged_gguf=$(eval_loss "$dir/run.json" --set model.model="$dir/yarn_merged.gguf")
  "$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$yarn" "$merged" "$merged_gguf" <<'EOF'
import json, sys
sys.path.insert(0, "tests")
from lm_compat import family_case, hf_loss, load
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
dir, texts, max_len, tok, checks = family_case(sys.argv)
base, yarn, merged, merged_gguf = (sys.argv[i].split() for i in (5, 6, 7, 8))
report, agree = checks.check, checks.agree
model, bad = load(dir + "/yarn")
rope = model.model.rotary_emb
report(rope.rope_type == "yarn" and rope.attention_scaling > 1 and not bad,
       f"yarn: transformers' rope_type {rope.rope_type}, attention_scaling {rope.attention_scaling:.6f}")
agree("yarn loss", yarn, hf_loss(model, tok, texts, max_len))
report(abs(float(yarn[0]) - float(base[0])) > 1e-3, f"yarn matters: {yarn[0]} vs {base[0]} without it")
merged_model, bad = load(dir + "/yarn_merged")
report(merged_model.config.rope_parameters.get("rope_type") == "yarn" and not bad,
       f"yarn merge: transformers reads {merged_model.config.rope_parameters}")
theirs = hf_loss(merged_model, tok, texts, max_len)
agree("yarn merge (transformers)", merged, theirs)
agree("yarn merge as GGUF (loraft)", merged_gguf, theirs)
sys.exit(0 if checks.passed() else 1)
EOF
}

for arch in ${LLAMA_FAMILY_ARCHS:-qwen2 qwen3 mistral smollm3}; do check_arch "$arch"; done
