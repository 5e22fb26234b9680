#!/usr/bin/env bash
# A Qwen2 (Qwen2.5) checkpoint as transformers 5 writes one: a seeded random Qwen2ForCausalLM
# (2 layers, hidden 64, 4 heads over 2 KV heads, rope_theta 1e6, the head tied as Qwen2.5-0.5B's)
# whose q, k and v biases are drawn at random too (transformers initialises them to 0, which would
# hide them), with the GPT-2 tokenizer:
#  1. loraft eval's loss equals transformers' (each text alone, no BOS, the mean over every
#     predicted token; f32 on both sides: within 2e-5);
#  2. the same weights with the biases zeroed give a loss more than 1e-3 away, so check 1 sees them;
#  3. the same model as a GGUF (arch qwen2: q and k rows as HF stores them, the biases as they are,
#     after llama.cpp's converter; scripts/write-tiny-gguf.py) gives the same loss;
#  4. LoRA on all seven projections trains for a few steps; PEFT loads the adapter onto
#     transformers' model with no missing or unexpected keys and the same loss as `loraft eval
#     --adapter`, and `loraft merge` writes a Qwen2ForCausalLM directory that transformers loads
#     (no missing or unexpected keys: the biases are there) with that loss too;
#  5. the merge as a GGUF (`loraft merge --format gguf --type f32`) gives that loss in loraft, and
#     holds a qwen2 model with its biases and the directory's tokenizer;
#  6. sliding-window attention, which loraft does not compute, is refused by name.
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-qwen2
tol=2e-5
max_len=32
write_corpus

"$py" - "$tmp" "$vocab" <<'EOF'
import json, shutil, sys
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
tmp, vocab = sys.argv[1], sys.argv[2]
torch.manual_seed(5)
cfg = Qwen2Config(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  initializer_range=0.15, rope_theta=1e6, tie_word_embeddings=True,
                  bos_token_id=50256, eos_token_id=50256, use_sliding_window=False,
                  sliding_window=64, max_window_layers=1)
model = Qwen2ForCausalLM(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.normal_(0.0, 0.5)
model.save_pretrained(tmp + "/model")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{tmp}/model/{f}")
saved = json.load(open(tmp + "/model/config.json"))
assert saved["model_type"] == "qwen2" and "rope_parameters" in saved, saved
EOF

cat >"$tmp/run.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"]},
 "train": {"learning_rate": 2e-2, "batch_size": 4, "max_steps": 6, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 6, "save_strategy": "steps", "save_steps": 6,
           "logging_steps": 0, "threads": 1, "output_dir": "$tmp/run"}}
EOF
base=$(eval_loss "$tmp/run.json")

cp -r "$tmp/model" "$tmp/nobias"
"$py" - "$tmp/nobias/model.safetensors" <<'EOF'
import sys
from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
n = sum(1 for k in w if k.endswith(".bias"))
assert n == 6, n  # q, k and v of 2 layers
save_file({k: v * 0 if k.endswith(".bias") else v for k, v in w.items()}, sys.argv[1],
          metadata={"format": "pt"})
EOF
read -r nobias _ < <(eval_loss "$tmp/run.json" --set model.model="$tmp/nobias")
"$py" -c "import sys; sys.exit(abs($nobias - ${base% *}) <= 1e-3)" \
  || { echo "FAIL: without the biases the loss is $nobias, with them ${base% *}: too close"; exit 1; }
echo "ok   the biases matter: loss ${base% *} -> $nobias without them"

mkdir "$tmp/gguf"
"$py" scripts/write-tiny-gguf.py "$tmp/model" "$tmp/gguf/model.gguf"
[ "$(eval_loss "$tmp/run.json" --set model.model="$tmp/gguf/model.gguf")" = "$base" ] \
  || { echo "FAIL: the qwen2 GGUF's loss differs from the HF directory's"; exit 1; }
echo "ok   the qwen2 GGUF gives the HF directory's loss ($base)"

"$bin" train --config "$tmp/run.json" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; echo "FAIL: loraft train"; exit 1; }
adapter=$(eval_loss "$tmp/run.json" --adapter "$tmp/run/best")
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null
merged=$(eval_loss "$tmp/run.json" --set model.model="$tmp/merged")
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/best" --format gguf --type f32 \
  --out "$tmp/merged.gguf" >/dev/null
merged_gguf=$(eval_loss "$tmp/run.json" --set model.model="$tmp/merged.gguf")
"$py" -c "import sys; a, b, c = ${adapter% *}, ${merged% *}, ${merged_gguf% *}; print('ok   loraft: adapter %.7f, merged %.7f, merged GGUF %.7f' % (a, b, c)); sys.exit(abs(a - b) > $tol or abs(a - c) > $tol)" \
  || { echo "FAIL: the merged models' losses differ from the adapter's"; exit 1; }

"$py" - "$tmp" "$max_len" "$tol" "$base" "$adapter" <<'EOF'
import json, logging, sys, warnings
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
tmp, max_len, tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ours = {"base": sys.argv[4].split(), "adapter": sys.argv[5].split()}
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(tmp + "/valid.jsonl")]
results = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    results.append(bool(ok))

class Grab(logging.Handler):  # peft and transformers report missing/unexpected keys as warnings
    def __init__(self): super().__init__(); self.msgs = []
    def emit(self, r): self.msgs.append(r.getMessage())
grab = Grab()
for name in ("peft", "transformers"): logging.getLogger(name).addHandler(grab)

def hf_loss(model, tok):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t)["input_ids"][:max_len]
            if len(ids) < 2: continue
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0, :-1].double()
            total += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(ids) - 1
    return total / count, count

def load(path):
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True,
                                                       dtype=torch.float32)
    return model, {k: v for k, v in info.items() if v}

def agree(what, mine, theirs):
    loss, n = theirs
    check(n == int(mine[1]) and abs(loss - float(mine[0])) <= tol,
          f"{what}: loraft {float(mine[0]):.7f} vs transformers {loss:.7f} "
          f"(|diff| {abs(loss - float(mine[0])):.1e}, {n} tokens vs loraft's {mine[1]})")

tok = AutoTokenizer.from_pretrained(tmp + "/model")
base, bad = load(tmp + "/model")
check(type(base).__name__ == "Qwen2ForCausalLM" and not bad, f"base: {type(base).__name__} {bad}")
agree("base loss", ours["base"], hf_loss(base, tok))
grab.msgs.clear()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = PeftModel.from_pretrained(base, tmp + "/run/best")
noise = [m for m in grab.msgs + [str(w.message) for w in caught]
         if "missing" in m.lower() or "unexpected" in m.lower()]
check(not noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {noise}")
agree("adapter loss (PEFT)", ours["adapter"], hf_loss(model, tok))
check(abs(float(ours["adapter"][0]) - float(ours["base"][0])) > 1e-3, "the adapter changes the loss")
merged, bad = load(tmp + "/merged")
check(type(merged).__name__ == "Qwen2ForCausalLM" and not bad,
      f"merged: {type(merged).__name__}, no missing/unexpected keys {bad}")
agree("merged loss (transformers)", ours["adapter"], hf_loss(merged, tok))

import struct
data = open(tmp + "/merged.gguf", "rb").read()
gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
check(gs("general.architecture") + struct.pack("<I", 8) + gs("qwen2") in data
      and all(gs(k) in data for k in ("blk.0.attn_q.bias", "blk.1.attn_v.bias",
                                      "qwen2.attention.head_count_kv", "tokenizer.ggml.merges"))
      and gs("output.weight") not in data,
      "merged GGUF: architecture qwen2, q/k/v biases, qwen2.* keys, a tokenizer, the head tied")
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF

"$py" - "$tmp/model/config.json" "$tmp/sliding.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["use_sliding_window"] = True
json.dump(c, open(sys.argv[2], "w"))
EOF
mkdir "$tmp/sliding" && cp "$tmp/sliding.json" "$tmp/sliding/config.json"
if "$bin" eval --config "$tmp/run.json" --set model.model="$tmp/sliding" >/dev/null 2>"$tmp/err"; then
  echo "FAIL: a sliding-window qwen2 config loaded"; exit 1
fi
grep -q "sliding-window attention" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: unclear error"; exit 1; }
echo "ok   sliding-window attention is refused: $(head -c 160 "$tmp/err")"
