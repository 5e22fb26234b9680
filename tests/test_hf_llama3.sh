#!/usr/bin/env bash
# A Llama checkpoint as transformers 5 writes a Llama 3.1-family model: config.json with
# rope_parameters (rope_theta inside it, rope_type llama3) and the weights in shards named by
# model.safetensors.index.json (save_pretrained with a small max_shard_size), made by transformers
# itself from a seeded random LlamaForCausalLM (2 layers, hidden 64, 4 heads over 2 KV heads:
# head size 16, so RoPE has frequencies in each of llama3's bands), with the GPT-2 tokenizer.
#  1. loraft eval's loss on a few texts equals transformers' (each text alone, no BOS, the mean
#     over every predicted token; f32 on both sides: within 2e-5, observed ~2e-7);
#  2. the same weights with the scaling taken out of the config give a loss more than 1e-3 away,
#     so check 1 sees the scaling;
#  3. a shard missing from the directory is a clear error naming it.
# Skips, saying why, without the GPT-2 tokenizer or the venv of scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-llama3
tol=2e-5
max_len=32
write_corpus

"$py" - "$tmp" "$vocab" "$max_len" <<'EOF' >"$tmp/hf.txt"
import json, shutil, sys
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
tmp, vocab, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(3)
torch.set_num_threads(1)
cfg = LlamaConfig(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  initializer_range=0.15, bos_token_id=50256, eos_token_id=50256,
                  rope_theta=10000.0, rope_scaling=dict(rope_type="llama3", factor=8.0,
                  low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32))
model = LlamaForCausalLM(cfg).eval()
model.save_pretrained(tmp + "/model", max_shard_size="4MB")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{tmp}/model/{f}")
saved = json.load(open(tmp + "/model/config.json"))
assert "rope_parameters" in saved and "rope_theta" not in saved, saved
tok = AutoTokenizer.from_pretrained(tmp + "/model")
total, count = 0.0, 0
with torch.no_grad():
    for line in open(tmp + "/valid.jsonl"):
        ids = tok(json.loads(line)["text"])["input_ids"][:max_len]
        if len(ids) < 2: continue
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0, :-1].double()
        total += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
        count += len(ids) - 1
print("%.9f %d" % (total / count, count))
EOF
shards=$(ls "$tmp/model" | grep -c '^model-.*\.safetensors$')
[ "$shards" -ge 2 ] && [ -f "$tmp/model/model.safetensors.index.json" ] \
  || { ls "$tmp/model"; echo "FAIL: transformers wrote $shards shards, expected several"; exit 1; }

cat >"$tmp/eval.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "train": {"threads": 1, "output_dir": "$tmp/run"}}
EOF
read -r hf n_hf <"$tmp/hf.txt"
read -r ours n_ours < <(eval_loss "$tmp/eval.json")
"$py" -c "import sys; d = abs($ours - $hf); print('loraft %.7f, transformers %.7f (|diff| %.1e, %d and %d tokens)' % ($ours, $hf, d, $n_ours, $n_hf)); sys.exit(d > $tol or $n_ours != $n_hf)" \
  || { echo "FAIL: the sharded llama3 checkpoint's loss differs from transformers'"; exit 1; }
echo "ok   $shards shards, rope_parameters llama3: loraft's loss is transformers'"

cp -r "$tmp/model" "$tmp/plain"
"$py" - "$tmp/plain/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["rope_parameters"] = {"rope_type": "default", "rope_theta": c["rope_parameters"]["rope_theta"]}
json.dump(c, open(sys.argv[1], "w"))
EOF
read -r plain _ < <(eval_loss "$tmp/eval.json" --set model.model="$tmp/plain")
"$py" -c "import sys; sys.exit(abs($plain - $ours) <= 1e-3)" \
  || { echo "FAIL: without the scaling the loss is $plain, with it $ours: too close to tell"; exit 1; }
echo "ok   without the scaling the loss moves ($ours -> $plain)"

first=$(ls "$tmp/plain" | grep '^model-.*\.safetensors$' | head -1)
rm "$tmp/plain/$first"
if "$bin" eval --config "$tmp/eval.json" --set model.model="$tmp/plain" >/dev/null 2>"$tmp/err"; then
  echo "FAIL: eval with a shard missing succeeded"; exit 1
fi
grep -q "$first" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: the error does not name $first"; exit 1; }
echo "ok   a missing shard: $(head -c 200 "$tmp/err")"
