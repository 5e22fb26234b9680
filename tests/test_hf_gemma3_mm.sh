#!/usr/bin/env bash
# The language model of Gemma 3's multimodal checkpoints (Gemma3ForConditionalGeneration, model_type
# gemma3: gemma-3-4b, 12b, 27b): a seeded random one (text_config as test_hf_gemma.sh's Gemma 3, 4
# layers of which 0 and 2 are windowed, the full ones under rope_scaling linear 8 as the 4B's; a
# 1-layer SigLIP vision_config of 16 wide; every norm weight drawn) saved by transformers 5 with the
# GPT-2 tokenizer, and a copy with transformers 5's module names (model.language_model.*,
# model.vision_tower.*) in two shards (the vision tower in a shard of its own) and a Hub-style
# config.json (transformers 4.50's: text_config with only rope_scaling for RoPE, eos_token_id at the
# top level). Checks:
#  1. the save names the text tensors language_model.model.* (transformers 4.50's, the Hub's);
#     loraft eval's loss equals transformers' (input_ids only; f32: within 2e-5) for both copies;
#     without rope_scaling transformers' loss moves by over 1e-3, and loraft's with it;
#  2. a LoRA run on the seven projections: adapter_config.json's target_modules is the regular
#     expression that PEFT, adapting a model of its own with it, matches on the language model
#     only, giving the adapter file's very tensor names (base_model.model.model.language_model.
#     layers.N...); PEFT loads the adapter onto Gemma3ForConditionalGeneration with no missing or
#     unexpected keys, no LoRA module under the vision tower, and loraft's loss;
#  3. an adapter PEFT made (that regular expression, random B) loads into loraft with PEFT's loss;
#     one with target_modules ["q_proj", "v_proj"], which PEFT also puts on SigLIP's, is refused
#     naming a vision_tower tensor, and one whose target_modules is another regular expression
#     (".*q_proj", which leaves its other projections' tensors out) is refused naming such a tensor;
#  4. `loraft merge` to an HF directory and full fine-tuning are refused (the vision tower would be
#     lost: docs/FORMATS.md), naming the way out; `loraft merge --format gguf --type f32` writes
#     the text model as llama.cpp's gemma3 names it and gives the adapter's loss; `loraft
#     export-gguf` writes the adapter.
# Usage: tests/test_hf_gemma3_mm.sh. Skips, saying why, without the GPT-2 tokenizer or the venv of
# scripts/setup-python.sh.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup hf-gemma3-mm
tol=2e-5
max_len=32
dir=$tmp/mm
mkdir "$dir"
write_corpus

"$py" - "$dir" "$vocab" "$max_len" <<'EOF'
import json, shutil, sys
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
dir, vocab, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(7)
text = dict(vocab_size=50257, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
            max_position_embeddings=64, initializer_range=0.15, sliding_window=max_len // 4,
            pad_token_id=None, bos_token_id=50256, eos_token_id=50256,
            layer_types=["sliding_attention", "full_attention"] * 2,
            rope_scaling={"rope_type": "linear", "factor": 8.0})
vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
              image_size=28, patch_size=14)
cfg = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name and "language_model" in name:
            p.normal_(0.0, 0.5)
model.save_pretrained(dir + "/model")
for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(f"{vocab}/{f}", f"{dir}/model/{f}")
saved = json.load(open(dir + "/model/config.json"))
rope = saved["text_config"]["rope_parameters"]
assert saved["model_type"] == "gemma3" and rope["full_attention"]["rope_type"] == "linear", saved

# the Hub's layout of the same model: transformers 5's module names, two shards, 4.50's config keys
shutil.copytree(dir + "/model", dir + "/hub", ignore=shutil.ignore_patterns("model.safetensors"))
tensors = load_file(dir + "/model/model.safetensors")
assert "language_model.model.layers.0.self_attn.q_proj.weight" in tensors, sorted(tensors)[:5]
renamed = {("model." + k.replace("language_model.model.", "language_model.", 1)): v
           for k, v in tensors.items()}
shards = {"model-00001-of-00002.safetensors": {k: v for k, v in renamed.items()
                                               if "language_model" in k},
          "model-00002-of-00002.safetensors": {k: v for k, v in renamed.items()
                                               if "language_model" not in k}}
for f, part in shards.items():
    save_file(part, f"{dir}/hub/{f}", metadata={"format": "pt"})
json.dump({"metadata": {}, "weight_map": {k: f for f, part in shards.items() for k in part}},
          open(dir + "/hub/model.safetensors.index.json", "w"))
hub_text = {k: v for k, v in saved["text_config"].items() if k != "rope_parameters"}
hub_text["rope_scaling"] = {"factor": 8.0, "rope_type": "linear"}
hub = {**saved, "text_config": hub_text, "eos_token_id": [50256, 106]}
json.dump(hub, open(dir + "/hub/config.json", "w"))
# check 1's: no rope_scaling
shutil.copytree(dir + "/model", dir + "/unscaled")
flat = {**saved["text_config"]["rope_parameters"]["full_attention"], "rope_type": "default"}
flat.pop("factor")
saved["text_config"]["rope_parameters"]["full_attention"] = flat
json.dump(saved, open(dir + "/unscaled/config.json", "w"))
EOF

write_lora_run "$dir"
base=$(eval_loss "$dir/run.json")
hub=$(eval_loss "$dir/run.json" --set model.model="$dir/hub")
unscaled=$(eval_loss "$dir/run.json" --set model.model="$dir/unscaled")
"$bin" train --config "$dir/run.json" >"$dir/train.log" 2>&1 \
  || { cat "$dir/train.log"; echo "FAIL: loraft train"; exit 1; }
adapter=$(eval_loss "$dir/run.json" --adapter "$dir/run/best")

# expect_refusal WHAT WORDS -- COMMAND: COMMAND fails, its stderr holding WORDS
expect_refusal() {
  local what=$1 words=$2
  shift 3
  if "$@" >"$tmp/out" 2>&1; then echo "FAIL: $what succeeded"; exit 1; fi
  grep -qF -- "$words" "$tmp/out" || { cat "$tmp/out"; echo "FAIL: $what: no '$words'"; exit 1; }
  echo "ok   $what refused: $(grep -F -- "$words" "$tmp/out" | head -n 1 | cut -c1-300)"
}
expect_refusal "merge to an HF directory" "merge to GGUF" -- \
  "$bin" merge --model "$dir/model" --adapter "$dir/run/best" --out "$dir/merged"
[ ! -e "$dir/merged" ] || { echo "FAIL: the refused merge left $dir/merged"; exit 1; }
expect_refusal "full fine-tuning" "Gemma 3's multimodal checkpoint" -- \
  "$bin" train --config "$dir/run.json" --set lora.strategy=full --set train.output_dir="$dir/full"
gguf_round "gemma3 multimodal" "$dir"

# check 3's adapters, made by PEFT: on the language model, and (refused) on the vision tower too
"$py" - "$dir" <<'EOF'
import json, sys
import torch
from peft import LoraConfig, get_peft_model
from transformers import Gemma3ForConditionalGeneration
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
dir = sys.argv[1]
regex = json.load(open(dir + "/run/best/adapter_config.json"))["target_modules"]
for name, targets in (("peft", regex), ("vision", ["q_proj", "v_proj"])):
    torch.manual_seed(3)
    model = Gemma3ForConditionalGeneration.from_pretrained(dir + "/model", dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.05)
    peft.save_pretrained(f"{dir}/{name}")
EOF
peft=$(eval_loss "$dir/run.json" --adapter "$dir/peft")
cp -r "$dir/peft" "$dir/anyq"
sed -i 's/"target_modules": "[^"]*"/"target_modules": ".*q_proj"/' "$dir/anyq/adapter_config.json"
expect_refusal "target_modules as another regular expression" "lora_A.weight' is not an adapter of this model" -- \
  "$bin" eval --config "$dir/run.json" --adapter "$dir/anyq"
expect_refusal "PEFT's adapter with LoRA on the vision tower" "vision_tower" -- \
  "$bin" eval --config "$dir/run.json" --adapter "$dir/vision"

"$py" - "$dir" "$tmp/valid.jsonl" "$max_len" "$tol" "$vocab" "$base" "$hub" "$unscaled" \
  "$adapter" "$peft" <<'EOF'
import json, struct, sys
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from transformers import AutoTokenizer, Gemma3ForConditionalGeneration
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import Checks, KeyNoise, hf_loss
hf_logging.disable_progress_bar()
dir, valid, max_len, tol, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
base, hub, unscaled, adapter, peft_made = (a.split() for a in sys.argv[6:11])
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(valid)]
checks = Checks("gemma3 multimodal", tol)
check, agree = checks.check, checks.agree
tok = AutoTokenizer.from_pretrained(vocab)


def load(path):
    model, info = Gemma3ForConditionalGeneration.from_pretrained(
        path, output_loading_info=True, dtype=torch.float32)
    return model.eval(), {k: v for k, v in info.items() if v}


model, bad = load(dir + "/model")
check(not bad, f"transformers loads the checkpoint {bad}")
theirs = hf_loss(model, tok, texts, max_len)
agree("base loss", base, theirs)
other, bad = load(dir + "/hub")
check(not bad, f"transformers loads the copy in transformers 5's names, sharded {bad}")
agree("base loss (transformers 5's names, two shards, the Hub's config.json)", hub,
      hf_loss(other, tok, texts, max_len))
other, bad = load(dir + "/unscaled")
flat = hf_loss(other, tok, texts, max_len)
check(abs(flat[0] - theirs[0]) > 1e-3,
      f"rope_scaling matters: transformers {theirs[0]:.7f} -> {flat[0]:.7f}")
agree("without rope_scaling", unscaled, flat)

config = json.load(open(dir + "/run/best/adapter_config.json"))
regex = config["target_modules"]
with safe_open(dir + "/run/best/adapter_model.safetensors", "pt") as f:
    ours = set(f.keys())
probe = get_peft_model(load(dir + "/model")[0], LoraConfig(r=4, target_modules=regex))
theirs_keys = set(get_peft_model_state_dict(probe))
q = "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"
check(ours == theirs_keys and q in ours and len(ours) == 4 * 7 * 2,
      f"target_modules {regex!r}: PEFT names its tensors as loraft's file does ({len(ours)}, "
      f"e.g. {q}; only in loraft's {sorted(ours - theirs_keys)[:3]}, "
      f"only in PEFT's {sorted(theirs_keys - ours)[:3]})")
with KeyNoise() as keys:
    peft = PeftModel.from_pretrained(model, dir + "/run/best")
check(not keys.noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
lora = [n for n, _ in peft.named_modules() if n.endswith("lora_A")]
vision = [n for n in lora if "language_model" not in n]
check(len(lora) == 28 and not vision,
      f"PEFT put {len(lora)} LoRA modules on the language model, none elsewhere {vision[:3]}")
agree("adapter loss (PEFT)", adapter, hf_loss(peft, tok, texts, max_len))
check(abs(float(adapter[0]) - float(base[0])) > 1e-3, "the adapter changes the loss")
made, bad = load(dir + "/model")
made = PeftModel.from_pretrained(made, dir + "/peft")
agree("PEFT's own adapter (loraft eval --adapter)", peft_made, hf_loss(made, tok, texts, max_len))

gs = lambda t: struct.pack("<Q", len(t)) + t.encode()  # a GGUF string
data = open(dir + "/merged.gguf", "rb").read()
names = ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.3.ffn_down.weight",
         "blk.1.attn_q_norm.weight", "blk.2.post_ffw_norm.weight", "gemma3.rope.freq_base_swa",
         "gemma3.rope.scaling.factor"]
check(gs("general.architecture") + struct.pack("<I", 8) + gs("gemma3") in data
      and gs("gemma3.rope.scaling.type") + struct.pack("<I", 8) + gs("linear") in data
      and all(gs(n) in data for n in names) and gs("output.weight") not in data
      and all(w not in data for w in (b"vision_tower", b"multi_modal", b"language_model")),
      f"merged GGUF: architecture gemma3, {', '.join(names)}, RoPE scaling linear, the head "
      "tied, no vision or projector tensors")
data = open(dir + "/adapter.gguf", "rb").read()
check(all(gs(f"blk.{l}.{m}.weight.lora_{ab}") in data for l in range(4) for ab in "ab"
          for m in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")),
      "adapter GGUF (export-gguf): lora_a and lora_b of the 7 modules of every layer")
results = checks.results
print(f"gemma3 multimodal: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if checks.passed() else 1)
EOF
