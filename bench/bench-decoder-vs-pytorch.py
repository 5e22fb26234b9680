#!/usr/bin/env python3
"""LoRA training speed and peak memory of a decoder, like for like: loraft vs PyTorch + PEFT
(and TRL, when its venv exists), on the same model, task, batch, row length, LoRA config,
AdamW and thread count; each run in its own process, the sides interleaved, every run repeated.

    bench/bench-decoder-vs-pytorch.py models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        [--task all|sft|dpo|reward|causal-lm] [--steps 2] [--rounds 2] [--threads 2] \\
        [--sides loraft,pytorch,trl] [--loraft build/loraft] [--tokens 1,2] [--head-tokens 2]
        [--no-lora]

Shapes: sft, dpo and reward take batch size, max length, prompt length, learning rate, DPO beta
and the LoRA config (r 8, alpha 16, dropout 0.05 on the seven projections) from
configs/dolly-smollm2-sft.json, configs/hh-smollm2-dpo.json and configs/hh-smollm2-reward.json;
causal-lm uses --batch x --seq (default 4 x 256) on Persuasion. --batch / --seq override.
--tokens trains those rows of the token embedding too (lora.trainable_token_indices, peft's
trainable_token_indices; SmolLM2's <|im_start|> and <|im_end|> are 1 and 2), --head-tokens rows
of the LM head's own (lora.lm_head_token_indices, peft's {"lm_head": ids}); --no-lora trains the
--tokens rows alone (lora.strategy tokens, peft's TrainableTokensConfig).

Same rows on every side: loraft trains on records long enough that every row is cut to exactly
the max length (Dolly answers of over 1,300 characters, unpacked; HH pairs with prompts of over
300 characters, cut to max_prompt_length from the left as loraft and TRL 0.12 do, and both
responses over 400, cut to max_length - max_prompt_length), so a batch is
rows x max_length with no padding; the bench checks that from loraft's data line. PyTorch and
TRL train on random ids of that same shape (a step's cost does not depend on the ids), so all
sides count the same tokens: rows x max_length per step (DPO and reward: 2 rows per pair).

Timing: one warm-up step, then --steps timed steps, from the end of the warm-up step to the end
of the last (loraft: when metrics.jsonl logs each step; PyTorch: around its loop; TRL: a
TrainerCallback's on_step_end). A step is forward, backward, gradient clipping at 1.0 and AdamW.
DPO on PyTorch / TRL includes the reference forward with the adapters disabled (TRL's default
with a PEFT model); loraft computes a row's reference log-probs once per run, i.e. on every
step here, since each step sees new rows.

PyTorch + PEFT: transformers' models in f32 (a .gguf dequantised once into an HF directory
cached under ~/.cache/loraft/bench/, which needs gguf), run by the reference venv
(scripts/setup-python.sh). TRL: SFTTrainer (prompt/completion rows, loss on the completion),
DPOTrainer (sigmoid loss, no precomputed reference), RewardTrainer, run by the venv of
scripts/setup-python.sh --trl (TRL and gguf on top of the reference venv), in f32 with
activations kept and dropout on as on the other sides (TRL's defaults would turn on gradient
checkpointing and, for DPO and reward, turn off dropout). DPOTrainer drops prompts of
max_length tokens or more rather than cutting them, so its prompts are cut to their last 250
characters first. Prints the load average before and after and one table.
Informative only: speed lives in bench/, never in tests.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"sft": "configs/dolly-smollm2-sft.json", "dpo": "configs/hh-smollm2-dpo.json",
           "reward": "configs/hh-smollm2-reward.json"}
TARGETS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "gpt2": ["c_attn", "c_proj", "c_fc"]}
ITEM = {"causal-lm": "rows", "sft": "examples", "dpo": "pairs", "reward": "pairs"}
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "loraft")


def targets(model):
    """Every linear layer of the model's architecture (a .gguf is taken for a Llama)."""
    if model.endswith(".gguf"):
        return TARGETS["llama"]
    with open(os.path.join(model, "config.json")) as f:
        return TARGETS[json.load(f)["model_type"]]


def shape(a):
    """The task's shape: batch (items), seq, prompt tokens, rows per item, lr, beta, LoRA."""
    s = {"batch": 4, "seq": 256, "prompt": 64, "rows": 1, "lr": 5e-4, "beta": 0.1,
         "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": targets(a.model)}}
    if a.task in CONFIGS:
        with open(os.path.join(ROOT, CONFIGS[a.task])) as f:
            c = json.load(f)
        s.update(batch=c["train"]["batch_size"], seq=c["data"]["max_length"],
                 prompt=c["data"].get("max_prompt_length", 64), lr=c["train"]["learning_rate"],
                 beta=c["train"].get("dpo_beta", 0.1), rows=2 if a.task in ("dpo", "reward") else 1,
                 lora=c["lora"], config=c)
    s["batch"] = a.batch or s["batch"]
    s["seq"] = a.seq or s["seq"]
    ids = lambda text: [int(t) for t in text.split(",")]
    if a.tokens:  # the same dict in s["config"], where the task has one
        s["lora"]["trainable_token_indices"] = ids(a.tokens)
    if a.head_tokens:
        s["lora"]["lm_head_token_indices"] = ids(a.head_tokens)
    if a.no_lora:
        s["lora"].update(strategy="tokens", target_modules=[])
    return s


# ------------------------------------------------------------------------------- data ----

def long_records(a, n):
    """n records whose rows are all cut to the max length (cycled when the file has fewer)."""
    data = os.path.join(ROOT, "../shared/data")
    if a.task == "sft":
        path = os.path.join(data, "instructions/dolly_open_qa.jsonl")
        keep = lambda r: (len(r["output"]) >= 1300 and
                          len(r["instruction"]) + len(r.get("input", "")) <= 300)
    else:
        path = os.path.join(data, "preferences/hh_rlhf_helpful_base.jsonl")
        keep = lambda r: (len(r["prompt"]) >= 300 and len(r["chosen"]) >= 400 and
                          len(r["rejected"]) >= 400)
    with open(path) as f:
        recs = [r for r in map(json.loads, f) if keep(r)]
    return [recs[i % len(recs)] for i in range(n)]


# ----------------------------------------------------------------------------- loraft ----

def loraft_side(a, s, d):
    steps = a.steps + 1
    if a.task == "causal-lm":
        data = {"train_file": a.corpus or os.path.join(ROOT, "../shared/data/austen/persuasion.txt"),
                "max_length": s["seq"], "text_unit": "paragraph"}
        cfg = {"model": {}, "data": data, "lora": s["lora"], "train": {"learning_rate": s["lr"]}}
    else:
        path = os.path.join(d, "data.jsonl")
        with open(path, "w") as f:
            for r in long_records(a, steps * s["batch"]):
                f.write(json.dumps(r) + "\n")
        cfg = json.loads(json.dumps(s["config"]))
        cfg["data"].update(train_file=path, holdout_examples=0, max_length=s["seq"],
                           packing=False, bucket_by_length=0)
    cfg["model"].update(model=a.model, task=a.task)
    out_dir = os.path.join(d, "out")
    cfg["train"].update(max_steps=steps, batch_size=s["batch"], eval_strategy="no",
                        save_strategy="no", logging_steps=1, threads=a.threads,
                        output_dir=out_dir)
    path = os.path.join(d, "cfg.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    log = os.path.join(out_dir, "metrics.jsonl")
    p = subprocess.Popen([a.loraft, "train", "--config", path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    ends, seen = [], 0
    while p.poll() is None:  # the time each step's log line appears
        time.sleep(0.02)
        if os.path.exists(log):
            with open(log) as f:
                n = sum('"event":"train"' in line for line in f)
            ends += [time.time()] * (n - seen)
            seen = n
    out = p.stdout.read()
    if p.returncode or len(ends) != steps:
        sys.exit(f"loraft train failed ({len(ends)} of {steps} steps logged): {out[-800:]}")
    full = ""
    m = re.search(r"data: .*?: (\d+) pairs, (\d+) tokens", out)
    if m:
        full = int(m.group(2)) == 2 * int(m.group(1)) * s["seq"]
    m = re.search(r"data: .*?(\d+) tokens in (\d+) rows of up to (\d+)", out)
    if m and a.task == "sft":
        full = int(m.group(1)) == int(m.group(2)) * s["seq"]
    if full is False:
        print(f"warning: loraft's {a.task} rows are not all {s['seq']} tokens long", file=sys.stderr)
    dt = ends[-1] - ends[0]
    mem = re.search(r"peak memory (\d+) MiB", out)
    return {"s_per_step": dt / a.steps, "peak_rss_mib": float(mem.group(1))}


# ---------------------------------------------------------------------------- pytorch ----

def hf_dir(model):
    """An HF directory of the model: a .gguf dequantised to f32 once, cached."""
    if not model.endswith(".gguf"):
        return model
    out = os.path.join(CACHE, "bench", os.path.basename(model)[:-5] + "-f32")
    if not os.path.exists(os.path.join(out, "config.json")):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        d, f = os.path.split(model)
        tmp = out + ".tmp"
        m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        m.hf_quantizer = None  # dequantised to f32 already: save it as a plain checkpoint
        m.config.__dict__.pop("quantization_config", None)
        m.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(tmp)
        os.replace(tmp, out)
    return out


def load_model(a, s, seq_cls):
    import torch
    from peft import LoraConfig, TrainableTokensConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d = hf_dir(a.model)
    model = (AutoModelForSequenceClassification.from_pretrained(d, num_labels=1,
                                                                dtype=torch.float32)
             if seq_cls else AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32))
    rows, head = s["lora"].get("trainable_token_indices"), s["lora"].get("lm_head_token_indices")
    if a.no_lora:
        return model, TrainableTokensConfig(token_indices=rows), d
    if head:  # peft's dict form: the embedding's rows (if any) and the head's own
        rows = dict({"embed_tokens": rows} if rows else {}, lm_head=head)
    lora = LoraConfig(task_type="SEQ_CLS" if seq_cls else "CAUSAL_LM", r=s["lora"]["r"],
                      lora_alpha=s["lora"]["alpha"], lora_dropout=s["lora"]["dropout"],
                      target_modules=s["lora"]["target_modules"], trainable_token_indices=rows)
    return model, lora, d


def random_rows(s, n):
    import torch
    g = torch.Generator().manual_seed(n)  # ids >= 100: never a pad or special token
    return torch.randint(100, 20000, (s["rows"] * s["batch"], s["seq"]), generator=g)


def seq_logps(model, ids, prompt):
    """Sum of the log-probs of every token after the prompt, per row (TRL's selective form)."""
    import torch
    logits = model(input_ids=ids).logits[:, prompt - 1:-1].float()
    y = ids[:, prompt:]
    return (logits.gather(-1, y[..., None])[..., 0] - torch.logsumexp(logits, -1)).sum(-1)


def step_loss(a, s, model, ids):
    import torch
    import torch.nn.functional as F
    P = s["prompt"]
    if a.task in ("causal-lm", "sft"):
        labels = ids.clone()
        if a.task == "sft":
            labels[:, :P] = -100
        return model(input_ids=ids, labels=labels).loss
    if a.task == "reward":
        r = model(input_ids=ids).logits[:, 0]
        return -F.logsigmoid(r[0::2] - r[1::2]).mean()
    pol = seq_logps(model, ids, P)
    with torch.no_grad(), model.disable_adapter():
        ref = seq_logps(model, ids, P)
    d = s["beta"] * ((pol[0::2] - ref[0::2]) - (pol[1::2] - ref[1::2]))
    return -F.logsigmoid(d).mean()


def pytorch_side(a, s):
    import torch
    from peft import get_peft_model
    model, lora, _ = load_model(a, s, a.task == "reward")
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s["lr"], weight_decay=0.0)
    for k in range(a.steps + 1):
        step_loss(a, s, model, random_rows(s, k)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if k == 0:
            t0 = time.time()
    return {"s_per_step": (time.time() - t0) / a.steps}


# -------------------------------------------------------------------------------- trl ----

def trl_dataset(a, s, tok):
    """The rows as TRL takes them: SFT and DPO as text (cut to max_length by TRL's collators),
    reward as ids (RewardTrainer drops rows over max_length rather than cutting them)."""
    from datasets import Dataset
    recs = long_records(a, (a.steps + 1) * s["batch"])
    if a.task == "sft":
        return Dataset.from_list([{
            "prompt": [{"role": "user", "content": r["instruction"] +
                        ("\n\n" + r["input"] if r.get("input") else "")}],
            "completion": [{"role": "assistant", "content": r["output"]}]} for r in recs])
    if a.task == "dpo":  # DPOTrainer drops prompts of max_length tokens: cut from the left
        return Dataset.from_list([{"prompt": r["prompt"][-250:], "chosen": r["chosen"],
                                   "rejected": r["rejected"]} for r in recs])
    rows = []
    for r in recs:
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"][-s["prompt"]:]
        ids = {k + "_ids": p + tok(" " + r[k], add_special_tokens=False)["input_ids"]
               for k in ("chosen", "rejected")}
        rows.append({k: v[: s["seq"]] for k, v in ids.items()})
    return Dataset.from_list(rows)


def trl_side(a, s):
    import trl
    from transformers import AutoTokenizer, TrainerCallback
    model, lora, d = load_model(a, s, a.task == "reward")
    tok = AutoTokenizer.from_pretrained(d)
    ends, shapes = [], set()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.time())

    common = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=s["batch"],
                  max_steps=a.steps + 1, learning_rate=s["lr"], lr_scheduler_type="constant",
                  weight_decay=0.0, max_grad_norm=1.0, logging_steps=1000, save_strategy="no",
                  report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
                  max_length=s["seq"], gradient_checkpointing=False, bf16=False, seed=0)
    if a.task == "sft":
        args = trl.SFTConfig(packing=False, **common)
        cls = trl.SFTTrainer
    elif a.task == "dpo":
        args = trl.DPOConfig(beta=s["beta"], loss_type=["sigmoid"], disable_dropout=False,
                             precompute_ref_log_probs=False, **common)
        cls = trl.DPOTrainer
    else:
        args = trl.RewardConfig(disable_dropout=False, **common)
        cls = trl.RewardTrainer
    trainer = cls(model=model, args=args, train_dataset=trl_dataset(a, s, tok),
                  processing_class=tok, peft_config=lora, callbacks=[Clock()])
    collate = trainer.data_collator

    def watched(examples):  # the rows each batch really has
        batch = collate(examples)
        shapes.update(tuple(v.shape) for k, v in batch.items() if k.endswith("input_ids"))
        return batch

    trainer.data_collator = watched
    trainer.train()
    want = (s["rows"] * s["batch"], s["seq"])
    if shapes != {want}:
        print(f"warning: TRL's {a.task} batches are {sorted(shapes)}, not {want}", file=sys.stderr)
    return {"s_per_step": (ends[-1] - ends[0]) / a.steps, "version": trl.__version__}


# ----------------------------------------------------------------------------- driver ----

def venv_python(trl):
    """The python of the reference venv (or its TRL layer), or None when it is not set up."""
    out = subprocess.run([os.path.join(ROOT, "scripts/setup-python.sh"), "--check"]
                         + (["--trl"] if trl else []), capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def python_side(a, side, py):
    argv = [py, __file__, a.model, "--task", a.task, "--steps", str(a.steps), "--threads",
            str(a.threads), "--side", side] + (["--batch", str(a.batch)] if a.batch else []) \
        + (["--seq", str(a.seq)] if a.seq else []) + (["--tokens", a.tokens] if a.tokens else []) \
        + (["--head-tokens", a.head_tokens] if a.head_tokens else []) \
        + (["--no-lora"] if a.no_lora else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--loraft", default=os.path.join(ROOT, "build/loraft"))
    ap.add_argument("--task", choices=["all", "causal-lm", "sft", "dpo", "reward"], default="all")
    ap.add_argument("--sides", default="loraft,pytorch,trl")
    ap.add_argument("--corpus", help="causal-lm: a text file (default Persuasion)")
    ap.add_argument("--batch", type=int, help="items per step (default: the task's config)")
    ap.add_argument("--seq", type=int, help="tokens per row (default: the task's config)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", help="token ids whose embedding rows train too, e.g. 1,2")
    ap.add_argument("--head-tokens", help="token ids whose LM head rows train apart, e.g. 2")
    ap.add_argument("--no-lora", action="store_true", help="the --tokens rows alone, no LoRA")
    ap.add_argument("--side", choices=["pytorch", "trl", "convert"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side == "convert":
        return hf_dir(a.model)
    if a.side:
        s = shape(a)
        r = pytorch_side(a, s) if a.side == "pytorch" else trl_side(a, s)
        r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return print(json.dumps(r))

    tasks = ["sft", "dpo", "reward"] if a.task == "all" else [a.task]
    sides = a.sides.split(",")
    pys = {"pytorch": venv_python(False), "trl": venv_python(True)}
    for side in ("pytorch", "trl"):
        if side in sides and not pys[side]:
            print(f"{side}: no venv (scripts/setup-python.sh{' --trl' if side == 'trl' else ''}):"
                  " skipped", file=sys.stderr)
            sides.remove(side)
    if a.model.endswith(".gguf") and (set(sides) & {"pytorch", "trl"}):  # untimed, once
        if not pys["trl"]:
            sys.exit("reading a .gguf into transformers needs gguf: scripts/setup-python.sh --trl")
        subprocess.run([pys["trl"], __file__, a.model, "--side", "convert"], check=True)
    load0 = os.getloadavg()
    results = {}
    for rnd in range(a.rounds):
        for task in tasks:
            a.task = task
            s = shape(a)
            for side in sides:
                if side == "loraft":
                    with tempfile.TemporaryDirectory() as d:
                        r = loraft_side(a, s, d)
                else:
                    r = python_side(a, side, pys[side])
                results.setdefault((task, side), []).append(r)
                print(f"round {rnd + 1} {task} {side}: {json.dumps(r)}", file=sys.stderr)
    load1 = os.getloadavg()

    print(f"{a.threads} threads, {a.steps} timed steps after 1 warm-up, {a.rounds} rounds "
          f"interleaved; load average before {load0[0]:.2f} {load0[1]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f}")
    print(f"{'task':8}{'side':16}{'rows x tokens':>14}{'items/s':>16}{'tokens/s':>16}"
          f"{'peak RSS MiB':>16}")
    for task in tasks:
        a.task = task
        s = shape(a)
        rows = s["rows"] * s["batch"]
        for side in sides:
            print(table_row(task, side, s, rows, results[(task, side)]))
    print(f"items: {', '.join(f'{t} {ITEM[t]}' for t in tasks)}; every side counts "
          "rows x max_length tokens per step (no padding); one number per round")


def table_row(task, side, s, rows, rs):
    versions = [r["version"] for r in rs if "version" in r]
    name = {"pytorch": "pytorch + peft", "trl": "trl " + (versions[0] if versions else "")}
    name = name.get(side, side)
    errs = [r["error"] for r in rs if "error" in r]
    if errs:
        return f"{task:8}{name:16}  failed: {errs[0][:100]}"
    items = ", ".join("%.2f" % (s["batch"] / r["s_per_step"]) for r in rs)
    tokens = ", ".join("%.0f" % (rows * s["seq"] / r["s_per_step"]) for r in rs)
    rss = ", ".join("%.0f" % r["peak_rss_mib"] for r in rs)
    shape_txt = "%d x %d" % (rows, s["seq"])
    return f"{task:8}{name:16}{shape_txt:>14}{items:>16}{tokens:>16}{rss:>16}"

if __name__ == "__main__":
    main()
