#!/usr/bin/env bash
# Qwen2 (Qwen2.5) and Qwen3 checkpoints as transformers 5 writes them: a seeded random
# Qwen2ForCausalLM / Qwen3ForCausalLM (2 layers, hidden 64, 4 heads over 2 KV heads, rope_theta 1e6,
# the head tied as the small Qwens'; Qwen3's head_dim 32, so that its heads are twice the width as
# Qwen3-0.6B's and 4B's are) whose q, k and v biases (Qwen2) or q and k head norms (Qwen3) are drawn
# at random too (transformers initialises them to 0 and 1, which would hide them), with the GPT-2
# tokenizer. For each:
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5);
#  2. the same weights with the biases 0 (the norms' weights 1) give a loss more than 1e-3 away, so
#     check 1 sees them;
#  3. the same model as a GGUF (arch qwen2 / qwen3: q and k rows as HF stores them, the biases and
#     head norms as they are, Qwen3's head size as key_length, after llama.cpp's converter;
#     scripts/write-tiny-gguf.py) gives the same loss;
#  4. LoRA on all seven projections trains for a few steps; PEFT loads the adapter onto
#     transformers' model with no missing or unexpected keys and the same loss as `loraft eval
#     --adapter`, and `loraft merge` writes a Qwen2ForCausalLM / Qwen3ForCausalLM directory that
#     transformers loads (no missing or unexpected keys) with that loss too;
#  5. the merge as a GGUF (`loraft merge --format gguf --type f32`) gives that loss in loraft, and
#     holds the model's own tensors and keys and the directory's tokenizer;
#  6. sliding-window attention, which loraft does not compute, is refused by name.
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-qwen
tol=2e-5
max_len=32
write_corpus

# check_arch ARCH: the checks above in $tmp/ARCH
check_arch() {
  local arch=$1 dir=$tmp/$1 base plain adapter merged merged_gguf
  mkdir "$dir"
  "$py" - "$dir" "$vocab" "$arch" <<'EOF'
import json, shutil, sys
import torch
import transformers
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, arch = sys.argv[1:4]
torch.manual_seed(5)
Config, Model = (getattr(transformers, arch.capitalize() + k) for k in ("Config", "ForCausalLM"))
extra = dict(head_dim=32) if arch == "qwen3" else {}
cfg = Config(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
             initializer_range=0.15, rope_theta=1e6, tie_word_embeddings=True,
             bos_token_id=50256, eos_token_id=50256, use_sliding_window=False,
             sliding_window=64, max_window_layers=1, **extra)
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
EOF

  cat >"$dir/run.json" <<EOF
{"model": {"model": "$dir/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"]},
 "train": {"learning_rate": 2e-2, "batch_size": 4, "max_steps": 6, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 6, "save_strategy": "steps", "save_steps": 6,
           "logging_steps": 0, "threads": 1, "output_dir": "$dir/run"}}
EOF
  base=$(eval_loss "$dir/run.json")

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
  merged_gguf=$(eval_loss "$dir/run.json" --set model.model="$dir/merged.gguf")
  "$py" -c "import sys; a, b, c = ${adapter% *}, ${merged% *}, ${merged_gguf% *}; print('ok   $arch: loraft: adapter %.7f, merged %.7f, merged GGUF %.7f' % (a, b, c)); sys.exit(abs(a - b) > $tol or abs(a - c) > $tol)" \
    || { echo "FAIL: $arch: the merged models' losses differ from the adapter's"; exit 1; }

  "$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$base" "$adapter" "$arch" <<'EOF'
import json, struct, sys
import torch
from peft import PeftModel
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import KeyNoise, hf_loss, load
hf_logging.disable_progress_bar()
dir, valid, max_len, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ours = {"base": sys.argv[5].split(), "adapter": sys.argv[6].split()}
arch = sys.argv[7]
cls = arch.capitalize() + "ForCausalLM"
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(valid)]
results = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + arch + ": " + what)
    results.append(bool(ok))

def agree(what, mine, theirs):
    loss, n = theirs
    check(n == int(mine[1]) and abs(loss - float(mine[0])) <= tol,
          f"{what}: loraft {float(mine[0]):.7f} vs transformers {loss:.7f} "
          f"(|diff| {abs(loss - float(mine[0])):.1e}, {n} tokens vs loraft's {mine[1]})")

tok = AutoTokenizer.from_pretrained(dir + "/model")
base, bad = load(dir + "/model")
check(type(base).__name__ == cls and not bad, f"base: {type(base).__name__} {bad}")
agree("base loss", ours["base"], hf_loss(base, tok, texts, max_len))
with KeyNoise() as keys:
    model = PeftModel.from_pretrained(base, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
agree("adapter loss (PEFT)", ours["adapter"], hf_loss(model, tok, texts, max_len))
check(abs(float(ours["adapter"][0]) - float(ours["base"][0])) > 1e-3, "the adapter changes the loss")
merged, bad = load(dir + "/merged")
check(type(merged).__name__ == cls and not bad,
      f"merged: {type(merged).__name__}, no missing/unexpected keys {bad}")
agree("merged loss (transformers)", ours["adapter"], hf_loss(merged, tok, texts, max_len))

data = open(dir + "/merged.gguf", "rb").read()
gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
own = ("blk.0.attn_q.bias", "blk.1.attn_v.bias") if arch == "qwen2" else (
    "blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight", "qwen3.attention.key_length")
check(gs("general.architecture") + struct.pack("<I", 8) + gs(arch) in data
      and all(gs(k) in data for k in own + (f"{arch}.attention.head_count_kv",
                                            "tokenizer.ggml.merges"))
      and gs("output.weight") not in data,
      f"merged GGUF: architecture {arch}, {', '.join(own)}, a tokenizer, the head tied")
print(f"{arch}: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF

  "$py" - "$dir/model/config.json" "$dir/sliding.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["use_sliding_window"] = True
json.dump(c, open(sys.argv[2], "w"))
EOF
  mkdir "$dir/sliding" && cp "$dir/sliding.json" "$dir/sliding/config.json"
  if "$bin" eval --config "$dir/run.json" --set model.model="$dir/sliding" >/dev/null 2>"$dir/err"; then
    echo "FAIL: a sliding-window $arch config loaded"; exit 1
  fi
  grep -q "sliding-window attention" "$dir/err" || { cat "$dir/err"; echo "FAIL: unclear error"; exit 1; }
  echo "ok   $arch: sliding-window attention is refused: $(head -c 160 "$dir/err")"
}

check_arch qwen2
check_arch qwen3
