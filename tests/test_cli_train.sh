#!/usr/bin/env bash
# End to end through the CLI on a tiny seeded DistilBERT (`loraft init`) and a small
# synthetic sentiment set: train (LoRA, head, full), evaluate, predict, merge, resume, LoRA+'s
# learning rates, NEFTune's noise, and the failure paths (unknown config key, NaN loss keeps the last good
# checkpoint), DoRA and PEFT's rank_pattern, alpha_pattern and layers_to_transform.
. "$(dirname "$0")/cli_common.sh" e2e bert-base-uncased

python3 - "$tmp" <<'EOF'
import json, random, sys
random.seed(5)
pos = ["good", "great", "wonderful", "excellent", "loved", "brilliant"]
neg = ["bad", "awful", "terrible", "boring", "hated", "worst"]
filler = "the movie was a and it film story actor plot really very i this of to".split()
def make(n, path):
    with open(path, "w") as f:
        for i in range(n):
            words = [random.choice(filler) for _ in range(random.randint(4, 12))]
            words.insert(random.randint(0, len(words)), random.choice(pos if i % 2 else neg))
            f.write(json.dumps({"text": " ".join(words), "label": i % 2}) + "\n")
make(64, sys.argv[1] + "/train.jsonl")
make(32, sys.argv[1] + "/val.jsonl")
EOF
"$bin" init --arch distilbert --layers 2 --hidden 32 --heads 4 --ffn 64 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/val.jsonl", "max_length": 32},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_lin", "v_lin", "lin1"]},
 "train": {"learning_rate": 3e-3, "batch_size": 8, "num_epochs": 2, "logging_steps": 4,
           "lr_scheduler": "constant", "output_dir": "$tmp/run"}}
EOF
train() { "$bin" train --config "$tmp/cfg.json" "$@"; }

# 0. loraft init refuses a standard deviation that is negative or not a number, writing nothing
for sd in -1 nan; do
  if "$bin" init --arch distilbert --layers 1 --hidden 8 --heads 2 --vocab-from "$vocab" \
     --init-std "$sd" --out "$tmp/bad" >"$tmp/bad.log" 2>&1; then fail "--init-std $sd taken"; fi
  grep -q -- "--init-std .*finite and >= 0" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "--init-std message"; }
  [ ! -e "$tmp/bad" ] || fail "--init-std $sd wrote $tmp/bad"
done; ok

# 1. a LoRA run: PEFT's counts line, metrics log, adapter checkpoints
train >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "LoRA training run"; }
grep -q "trainable params: 2,914 || all params: 1,014,276 || trainable%: 0.2873" "$tmp/log" \
  || { grep trainable "$tmp/log"; fail "trainable parameter line"; }; ok
for f in best/adapter_config.json best/adapter_model.safetensors last/training_state.safetensors \
         last/trainer_state.json metrics.jsonl train_config.json; do
  [ -s "$tmp/run/$f" ] || fail "missing $f"
done; ok
[ "$(grep -c '"event":"eval"' "$tmp/run/metrics.jsonl")" = 3 ] || fail "expected 3 evaluations"; ok

# 2. eval with the best adapter reproduces the best evaluation of the run
best_loss=$(python3 -c "
import json
ev=[json.loads(l) for l in open('$tmp/run/metrics.jsonl') if '\"eval\"' in l][1:]
print('%.4f' % min(e['eval_loss'] for e in ev))")
"$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/run/best" >"$tmp/eval" 2>&1 || fail "eval"
grep -q "eval: eval_loss $best_loss" "$tmp/eval" || { cat "$tmp/eval"; fail "eval loss != best ($best_loss)"; }; ok

# 3. merge: the merged model alone evaluates like base + adapter
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null || fail merge
"$bin" eval --config "$tmp/cfg.json" --set model.model="$tmp/merged" --set lora.strategy=head >"$tmp/eval2" 2>&1 \
  || { cat "$tmp/eval2"; fail "eval of merged model"; }
grep -q "eval: eval_loss $best_loss" "$tmp/eval2" || { cat "$tmp/eval2"; fail "merged eval_loss differs"; }; ok

# 4. predict prints a label and a probability per text
out=$("$bin" predict --model "$tmp/model" --adapter "$tmp/run/best" "a great film" "an awful film")
[ "$(echo "$out" | grep -cE '^LABEL_[01]	0\.[0-9]{4}	')" = 2 ] || { echo "$out"; fail predict; }
out=$("$bin" predict --model "$tmp/model" --adapter "$tmp/run/best" --labels neg,pos "a great film")
echo "$out" | grep -qE '^(neg|pos)	' || { echo "$out"; fail "predict --labels"; }
if "$bin" predict --model "$tmp/model" --labels a,b,c "x" 2>"$tmp/err"; then fail "3 labels for 2 classes"; fi
grep -q "model has 2 classes" "$tmp/err" || fail "label count message"; ok

# 5. resume: 1 epoch + resume to 2 epochs == 2 epochs straight (deterministic, constant lr)
train --set train.num_epochs=1 --set train.output_dir="$tmp/r1" >/dev/null 2>&1 || fail "1-epoch run"
train --set train.output_dir="$tmp/r1" --resume "$tmp/r1/last" >"$tmp/resume" 2>&1 || { cat "$tmp/resume"; fail resume; }
grep -q "resumed from" "$tmp/resume" || fail "no resume message"
cmp "$tmp/r1/last/adapter_model.safetensors" "$tmp/run/last/adapter_model.safetensors" \
  || fail "resumed run differs from the straight run"; ok

# 6. NaN loss stops the run with a clear message and keeps the last good checkpoint
cp "$tmp/r1/last/adapter_model.safetensors" "$tmp/good.safetensors"
if train --set train.output_dir="$tmp/r1" --set train.num_epochs=3 --set train.learning_rate=1e38 \
   --set train.max_grad_norm=0 --resume "$tmp/r1/last" >"$tmp/nan" 2>&1; then fail "NaN run succeeded"; fi
grep -qE "(loss is (NaN|infinite)|gradient norm is not finite).*last good checkpoint" "$tmp/nan" \
  || { tail -3 "$tmp/nan"; fail "NaN message"; }
cmp "$tmp/good.safetensors" "$tmp/r1/last/adapter_model.safetensors" || fail "last checkpoint overwritten"; ok

# 7. head-only and full fine-tuning save HF model directories; less trains, fewer params
for s in head full; do
  train --set lora.strategy=$s --set train.output_dir="$tmp/$s" >"$tmp/$s.log" 2>&1 \
    || { cat "$tmp/$s.log"; fail "$s run"; }
  [ -s "$tmp/$s/best/model.safetensors" ] && [ -s "$tmp/$s/best/config.json" ] || fail "$s best model"
done
grep -q "trainable params: 1,122 " "$tmp/head.log" || fail "head trainable count"
grep -q "trainable params: 1,011,362 " "$tmp/full.log" || fail "full trainable count"; ok

# 8. bad input: unknown config key, missing data file
if train --set train.learnin_rate=1 >"$tmp/bad" 2>&1; then fail "typo accepted"; fi
grep -q "learnin_rate" "$tmp/bad" || fail "typo message"; ok
if train --set data.train_file="$tmp/nope.jsonl" >"$tmp/bad2" 2>&1; then fail "missing file accepted"; fi
grep -q "nope.jsonl" "$tmp/bad2" || fail "missing file message"; ok

# 9. data parallel needs GPUs: model.devices 2 on the cpu is refused before anything is written,
#    by the config check (device cpu) or, without a GPU, by each device's process (device auto)
if train --set model.device=cpu --set model.devices=2 --set train.output_dir="$tmp/dp" \
   >"$tmp/dp.log" 2>&1; then fail "devices 2 on the cpu accepted"; fi
grep -q "model.devices 2 needs model.device cuda" "$tmp/dp.log" || { cat "$tmp/dp.log"; fail "dp message"; }
if ! nvidia-smi -L >/dev/null 2>&1; then
  if train --set model.devices=2 --set train.output_dir="$tmp/dp2" >"$tmp/dp2.log" 2>&1; then
    fail "devices 2 without a GPU accepted"; fi
  grep -q "model.devices 2: data parallel needs the cuda device" "$tmp/dp2.log" \
    || { cat "$tmp/dp2.log"; fail "dp2 message"; }
  [ ! -e "$tmp/dp2" ] || fail "a refused data-parallel run wrote $tmp/dp2"
fi; ok

# 10. LoRA+ (train.loraplus_lr_ratio): AdamW's first step moves a weight by its learning rate
#     wherever its gradient is well above eps (m / sqrt(v) = +-1), so after one step the largest
#     B value (B starts at 0) is 16 lr under a ratio of 16, and lr without
for ratio in 0 16; do
  train --set train.max_steps=1 --set train.loraplus_lr_ratio=$ratio --set train.weight_decay=0 \
    --set train.learning_rate=1e-3 --set train.output_dir="$tmp/lp$ratio" >"$tmp/lp$ratio.log" 2>&1 ||
    { cat "$tmp/lp$ratio.log"; fail "loraplus_lr_ratio $ratio run"; }
done
python3 - "$tmp/lp0/last/adapter_model.safetensors" "$tmp/lp16/last/adapter_model.safetensors" \
  <<'EOF' && ok || bad "LoRA+: B's first step is 16 times plain LoRA's"
import json, struct, sys
def largest_b(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    big = 0.0
    for name, t in json.loads(raw[8:8 + n]).items():
        if "lora_B" in name:
            s, e = t["data_offsets"]
            big = max([big] + [abs(x) for x in struct.unpack("<%df" % ((e - s) // 4), raw[8 + n + s:8 + n + e])])
    return big
plain, plus = largest_b(sys.argv[1]), largest_b(sys.argv[2])
assert abs(plain - 1e-3) < 1e-6 and abs(plus - 16e-3) < 16e-6, (plain, plus)
EOF

# 11. NEFTune (train.neftune_noise_alpha): noise on the embeddings in training only, so the
#     evaluation before training is the plain run's to the digit and the first step's loss is not
for alpha in 0 5; do
  train --set train.max_steps=1 --set train.logging_steps=1 --set train.neftune_noise_alpha=$alpha \
    --set lora.dropout=0 --set train.output_dir="$tmp/nef$alpha" >"$tmp/nef$alpha.log" 2>&1 ||
    { cat "$tmp/nef$alpha.log"; fail "neftune_noise_alpha $alpha run"; }
done
python3 - "$tmp/nef0/metrics.jsonl" "$tmp/nef5/metrics.jsonl" <<'EOF' && ok || bad "NEFTune: the training loss moves, the evaluation does not"
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
ev = [[e["eval_loss"] for e in r if e["event"] == "eval" and e["step"] == 0] for r in runs]
tr = [[e["loss"] for e in r if e["event"] == "train"] for r in runs]
assert ev[0] and ev[0] == ev[1] and tr[0] and tr[1] and tr[0][0] != tr[1][0], (ev, tr)
EOF

# 12. DoRA (lora.use_dora): the magnitudes train too (PEFT's counts: q_lin's 32, v_lin's 32 and
#     lin1's 64 a layer more), the adapter holds them and says use_dora; evaluating the best
#     adapter reproduces the run's best evaluation, and so does the merged model alone; with lora
#     dropout (the base's term on what it removed outside the magnitudes' scale, as PEFT's) it
#     trains otherwise (its train losses differ) and evaluates as its best evaluation said
train --set lora.use_dora=true --set lora.dropout=0 --set train.output_dir="$tmp/dora" \
  >"$tmp/dora.log" 2>&1 || { cat "$tmp/dora.log"; fail "DoRA run"; }
grep -q "trainable params: 3,170 || all params: 1,014,532 || trainable%: 0.3125" "$tmp/dora.log" \
  || { grep trainable "$tmp/dora.log"; bad "DoRA's trainable parameter line"; }
python3 - "$tmp/dora/best" <<'EOF' && ok || bad "DoRA's adapter: use_dora and the magnitudes"
import json, struct, sys
cfg = json.load(open(sys.argv[1] + "/adapter_config.json"))
with open(sys.argv[1] + "/adapter_model.safetensors", "rb") as f:
    head = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
mags = [k for k in head if k.endswith(".lora_magnitude_vector")]
assert cfg["use_dora"] is True and len(mags) == 6, (cfg["use_dora"], mags)
lin1 = "base_model.model.distilbert.transformer.layer.1.ffn.lin1.lora_magnitude_vector"
assert head[lin1]["shape"] == [64], head[lin1]
EOF
dora_loss=$(python3 -c "
import json
ev=[json.loads(l) for l in open('$tmp/dora/metrics.jsonl') if '\"eval\"' in l][1:]
print('%.4f' % min(e['eval_loss'] for e in ev))")
"$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/dora/best" >"$tmp/dora_eval" 2>&1 || fail "DoRA eval"
grep -q "eval: eval_loss $dora_loss" "$tmp/dora_eval" || { cat "$tmp/dora_eval"; bad "DoRA eval != best ($dora_loss)"; }
"$bin" merge --model "$tmp/model" --adapter "$tmp/dora/best" --out "$tmp/dora_merged" >/dev/null || fail "DoRA merge"
"$bin" eval --config "$tmp/cfg.json" --set model.model="$tmp/dora_merged" --set lora.strategy=head \
  >"$tmp/dora_eval2" 2>&1 || { cat "$tmp/dora_eval2"; fail "eval of the merged DoRA model"; }
grep -q "eval: eval_loss $dora_loss" "$tmp/dora_eval2" && ok || { cat "$tmp/dora_eval2"; bad "merged DoRA eval_loss differs"; }
train --set lora.use_dora=true --set lora.dropout=0.1 --set train.output_dir="$tmp/dora_drop" \
  >"$tmp/dora_drop.log" 2>&1 || { cat "$tmp/dora_drop.log"; fail "DoRA run under lora dropout"; }
drop_loss=$(python3 - "$tmp/dora/metrics.jsonl" "$tmp/dora_drop/metrics.jsonl" "$tmp/dora_drop/best" <<'EOF'
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:3]]
tr = [[e["loss"] for e in r if e["event"] == "train"] for r in runs]
assert len(tr[0]) == len(tr[1]) > 1 and tr[0] != tr[1], tr
cfg = json.load(open(sys.argv[3] + "/adapter_config.json"))
assert cfg["use_dora"] is True and cfg["lora_dropout"] == 0.1, cfg
print("%.4f" % min(e["eval_loss"] for e in runs[1] if e["event"] == "eval" and e["step"] > 0))
EOF
) || bad "DoRA under lora dropout: its losses and adapter"
"$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/dora_drop/best" >"$tmp/dora_drop_eval" 2>&1 \
  || fail "eval of the DoRA adapter trained under lora dropout"
grep -q "eval: eval_loss $drop_loss" "$tmp/dora_drop_eval" && ok \
  || { cat "$tmp/dora_drop_eval"; bad "DoRA under lora dropout: eval != best ($drop_loss)"; }

# and a LoRA adapter that says use_dora (no magnitudes in its file), or says it as a number, is
# refused with the reason
cp -rL "$tmp/run/best" "$tmp/not_dora"
sed -i 's/"use_dora":[[:space:]]*false/"use_dora": true/' "$tmp/not_dora/adapter_config.json"
"$bin" predict --model "$tmp/model" --adapter "$tmp/not_dora" "a film" >"$tmp/nd.log" 2>&1 && bad "use_dora without magnitudes taken"
grep -q "lora_magnitude_vector' not found" "$tmp/nd.log" && ok || { cat "$tmp/nd.log"; bad "use_dora without magnitudes: the message"; }
sed -i 's/"use_dora": true/"use_dora": 1/' "$tmp/not_dora/adapter_config.json"
"$bin" predict --model "$tmp/model" --adapter "$tmp/not_dora" "a film" >"$tmp/nd.log" 2>&1 && bad "use_dora 1 taken"
grep -q "key 'use_dora' must be true or false" "$tmp/nd.log" && ok || { cat "$tmp/nd.log"; bad "use_dora 1: the message"; }

# 13. PEFT's rank_pattern, alpha_pattern and layers_to_transform: the second layer's targets alone
#     (PEFT's counts: q_lin 8 x (32 + 32), v_lin and lin1 as before, of layer 1 only), the adapter
#     says so and holds those shapes; evaluating the best adapter reproduces the run's best
#     evaluation; a layer with no target, and a key POSIX cannot match, are refused writing nothing
train --set lora.rank_pattern=q_lin:8 --set lora.alpha_pattern=v_lin:2 --set lora.layers_to_transform=1 \
  --set train.output_dir="$tmp/patterns" >"$tmp/patterns.log" 2>&1 || { cat "$tmp/patterns.log"; fail "patterns run"; }
grep -q "trainable params: 2,274 || all params: 1,013,636 || trainable%: 0.2243" "$tmp/patterns.log" \
  || { grep trainable "$tmp/patterns.log"; bad "the patterns run's trainable parameter line"; }
python3 - "$tmp/patterns/best" <<'PYEOF' && ok || bad "the patterns adapter: its config and shapes"
import json, struct, sys
cfg = json.load(open(sys.argv[1] + "/adapter_config.json"))
with open(sys.argv[1] + "/adapter_model.safetensors", "rb") as f:
    head = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
assert cfg["rank_pattern"] == {"q_lin": 8} and cfg["alpha_pattern"] == {"v_lin": 2}, cfg
assert cfg["layers_to_transform"] == [1] and cfg["layers_pattern"] is None, cfg
loras = sorted(k for k in head if ".lora_" in k)
assert len(loras) == 6 and all(".layer.1." in k for k in loras), loras
q = "base_model.model.distilbert.transformer.layer.1.attention.q_lin.lora_"
assert head[q + "A.weight"]["shape"] == [8, 32] and head[q + "B.weight"]["shape"] == [32, 8]
PYEOF
patterns_loss=$(python3 -c "
import json
ev=[json.loads(l) for l in open('$tmp/patterns/metrics.jsonl') if '\"eval\"' in l][1:]
print('%.4f' % min(e['eval_loss'] for e in ev))")
"$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/patterns/best" >"$tmp/patterns_eval" 2>&1 || fail "patterns eval"
grep -q "eval: eval_loss $patterns_loss" "$tmp/patterns_eval" && ok || { cat "$tmp/patterns_eval"; bad "patterns eval != best ($patterns_loss)"; }
if train --set lora.layers_to_transform=5 --set train.output_dir="$tmp/no_layer" >"$tmp/no_layer.log" 2>&1; then
  bad "layers_to_transform with no target taken"; fi
grep -q "no LoRA target is left by lora.layers_to_transform" "$tmp/no_layer.log" && [ ! -e "$tmp/no_layer" ] && ok \
  || { cat "$tmp/no_layer.log"; bad "layers_to_transform 5: the message, nothing written"; }
if train --set 'lora.rank_pattern={"(?=q)_lin": 2}' --set train.output_dir="$tmp/lookahead" >"$tmp/la.log" 2>&1; then
  bad "a lookahead key taken"; fi
grep -q '(?= is not supported' "$tmp/la.log" && [ ! -e "$tmp/lookahead" ] && ok \
  || { cat "$tmp/la.log"; bad "a lookahead key: the message, nothing written"; }

# 14. an adapter whose file holds tensors its config does not target (lin1's, here) is refused
#     naming one, not loaded without them
cp -rL "$tmp/run/best" "$tmp/stray"
python3 - "$tmp/stray/adapter_config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); c["target_modules"] = ["q_lin", "v_lin"]
json.dump(c, open(sys.argv[1], "w"))
PYEOF
"$bin" predict --model "$tmp/model" --adapter "$tmp/stray" "a film" >"$tmp/stray.log" 2>&1 && bad "stray adapter tensors taken"
grep -q "ffn.lin1.lora_A.weight' is not an adapter of this model" "$tmp/stray.log" && ok \
  || { cat "$tmp/stray.log"; bad "stray adapter tensors: the message"; }

# 15. peft's init_lora_weights: one that rewrites the base weights on every load (PiSSA's) is
#     refused with the way out; one that only drew A and B (gaussian) loads as any adapter
cp -rL "$tmp/run/best" "$tmp/pissa"
for init in '"pissa_niter_4"' '"gaussian"'; do
  python3 - "$tmp/pissa/adapter_config.json" "$init" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); c["init_lora_weights"] = json.loads(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"))
PYEOF
  if "$bin" predict --model "$tmp/model" --adapter "$tmp/pissa" "a film" >"$tmp/pissa.log" 2>&1; then
    [ "$init" = '"gaussian"' ] && ok || bad "init_lora_weights $init taken"
  else
    [ "$init" != '"gaussian"' ] && grep -q 'init_lora_weights "pissa_niter_4" rewrites the base model' "$tmp/pissa.log" \
      && ok || { cat "$tmp/pissa.log"; bad "init_lora_weights $init: the message"; }
  fi
done

# 15b. peft's options that change what the adapter computes and that loraft does not run are
#      refused, naming the key; the same keys unset (null, false, empty) load; trainable token
#      indices that are neither the embedding's rows nor the LM head's (a classifier has none), or
#      whose rows the file lacks, are refused
cp -rL "$tmp/run/best" "$tmp/peft_opts"
for opt in 'lora_bias=true' 'layer_replication=[[0, 1]]' \
  'use_qalora=true' 'target_parameters=["ffn.lin1.weight"]' 'alora_invocation_tokens=[3]' \
  'ensure_weight_tying=1' 'trainable_token_indices=null' 'lora_bias=false' \
  'target_parameters=[]' 'ensure_weight_tying=true' 'trainable_token_indices=[5, 9]' \
  'trainable_token_indices={"word_embeddings": [5], "lm_head": [5]}' \
  'trainable_token_indices={"word_embeddings": [5], "classifier": [5]}' \
  'trainable_token_indices={"classifier": [5]}' 'trainable_token_indices=[5, 5]' \
  'trainable_token_indices=[1.5]' 'trainable_token_indices={}'; do
  python3 - "$tmp/run/best/adapter_config.json" "$tmp/peft_opts/adapter_config.json" "$opt" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); key, value = sys.argv[3].split("=", 1)
c[key] = json.loads(value)
json.dump(c, open(sys.argv[2], "w"))
PYEOF
  key=${opt%%=*}
  case $opt in
    *=null | *=false | *=\[\] | ensure_weight_tying=true) # ensure_weight_tying: no tied head here
      "$bin" predict --model "$tmp/model" --adapter "$tmp/peft_opts" "a film" >"$tmp/opts.log" 2>&1 \
        && ok || { cat "$tmp/opts.log"; bad "adapter_config $opt refused"; } ;;
    trainable_token_indices={}) # none, as peft reads it
      "$bin" predict --model "$tmp/model" --adapter "$tmp/peft_opts" "a film" >"$tmp/opts.log" 2>&1 \
        && ok || { cat "$tmp/opts.log"; bad "adapter_config $opt refused"; } ;;
    trainable_token_indices=*) # peft's trainable tokens: loraft's too, checked
      case $opt in
        *'[5, 9]') want="token_adapter.trainable_tokens_delta" ;; # the file lacks its rows
        *lm_head*) want="trainable_token_indices names lm_head, which this model does not have" ;;
        *'"word_embeddings": [5], "classifier"'*) want="names two modules besides lm_head" ;;
        *classifier*) want="trainable_token_indices names 'classifier', which is neither the token embedding" ;;
        *'[5, 5]') want="trainable_token_indices: token id 5 is listed twice" ;;
        *) want="trainable_token_indices\[0\] is not a token id" ;;
      esac
      ! "$bin" predict --model "$tmp/model" --adapter "$tmp/peft_opts" "a film" >"$tmp/opts.log" 2>&1 \
        && grep -q "$want" "$tmp/opts.log" \
        && ok || { cat "$tmp/opts.log"; bad "adapter_config $opt: the message"; } ;;
    ensure_weight_tying=1)
      ! "$bin" predict --model "$tmp/model" --adapter "$tmp/peft_opts" "a film" >"$tmp/opts.log" 2>&1 \
        && grep -q "key 'ensure_weight_tying' must be true or false" "$tmp/opts.log" \
        && ok || { cat "$tmp/opts.log"; bad "adapter_config $opt: the message"; } ;;
    *)
      ! "$bin" predict --model "$tmp/model" --adapter "$tmp/peft_opts" "a film" >"$tmp/opts.log" 2>&1 \
        && grep -q "adapter_config.json: $key is set: .*which loraft does not compute" "$tmp/opts.log" \
        && ok || { cat "$tmp/opts.log"; bad "adapter_config $opt: the message"; } ;;
  esac
done

# 16. PiSSA (lora.init_lora_weights pissa) on weights quantised at load: the residual is what
#     q8_0 stores; the run trains and its adapter says pissa
train --set lora.init_lora_weights=pissa --set model.base_dtype=q8_0 --set train.output_dir="$tmp/pissa_q" \
  >"$tmp/pissa_q.log" 2>&1 && grep -q '"init_lora_weights":[[:space:]]*"pissa"' "$tmp/pissa_q/best/adapter_config.json" \
  && ! grep -q "^note: lora.init_lora_weights" "$tmp/pissa_q.log" \
  && ok || { cat "$tmp/pissa_q.log"; bad "PiSSA on q8_0 weights"; }
# 17. over a 4-bit type the split's rest is rounded a second time: the run says so, naming the type
train --set lora.init_lora_weights=pissa --set model.base_dtype=q4_1 --set train.output_dir="$tmp/pissa_q4" \
  >"$tmp/pissa_q4.log" 2>&1 \
  && grep -q "^note: lora.init_lora_weights pissa quantises the rest of each adapted weight back to Q4_1" "$tmp/pissa_q4.log" \
  && ok || { cat "$tmp/pissa_q4.log"; bad "PiSSA on q4_1 weights: the note"; }

finish
