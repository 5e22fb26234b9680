#!/usr/bin/env python3
"""bench-rl-vs-trl.py: loraft's RLOO or GRPO step against TRL's RLOOTrainer or GRPOTrainer on the
same model, reward model, prompts and shapes, on the CPU.

    scripts/setup-python.sh --trl      # once: TRL 1.16 and gguf, layered on the reference venv
    bench/bench-rl-vs-trl.py --reward-adapter runs/hh-smollm2-reward/best               # RLOO
    bench/bench-rl-vs-trl.py --reward-adapter runs/hh-smollm2-reward/best --trainer grpo
    bench/bench-rl-vs-trl.py --reward-adapter runs/hh-smollm2-reward/best --trainer grpo \
        --num-iterations 2                # a generation trained on 2 steps (clipped ratio)

Both sides: SmolLM2-135M-Instruct (the GGUF dequantised to an f32 HF directory, as
bench-decoder-vs-pytorch.py caches it), LoRA r 8, alpha 16, no dropout, on the seven
projections; the reward model that adapter makes, merged by `loraft merge` into a
LlamaForSequenceClassification directory both read; 64 HH helpful-base prompts of 40-64 tokens
as plain text (no chat template); 2 prompts x 4 completions of up to 48 tokens a step,
sampled at --temperature (1 by default; the log-probs' logits divided by it on both sides), lr 5e-4
constant; RLOO beta 0.05, GRPO beta 0 with dapo and rewards scaled by their
group (TRL's defaults); --num-iterations steps on each generation (1); 2 threads. A step: sample, score, the reference and
the training forward, backward, AdamW. Timing: loraft, (run of 1 + STEPS steps - run of 1 step)
/ STEPS; TRL, the steps after the first, from its callbacks. Completions stop at EOS, so their
lengths differ between the sides: the mean length is printed beside the time."""
import argparse, importlib.util, json, os, re, resource, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HH = os.path.join(ROOT, "..", "shared", "data", "preferences", "hh_rlhf_helpful_base.jsonl")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def decoder_bench():
    """bench-decoder-vs-pytorch.py as a module: its cached f32 HF directory of a GGUF."""
    spec = importlib.util.spec_from_file_location(
        "decoder_bench", os.path.join(ROOT, "bench", "bench-decoder-vs-pytorch.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prompts(model_dir, out):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    n = 0
    with open(out, "w") as f:
        for line in open(HH):
            p = json.loads(line)["prompt"]
            if 40 <= len(tok(p)["input_ids"]) <= 64:
                f.write(json.dumps({"prompt": p}) + "\n")
                n += 1
            if n == 64:
                return


def loraft_run(a, policy, rm, data, steps, out):
    config = os.path.join(ROOT, "configs", f"hh-smollm2-{a.trainer}.json")
    cmd = [a.loraft, "train", "--config", config, "--overwrite"]
    sets = {"model.model": policy, "model.reward_model": rm, "model.reward_adapter": "",
            "data.train_file": data, "data.chat_template": "", "data.holdout_examples": 0,
            "train.eval_strategy": "no", "train.save_strategy": "no", "train.max_steps": steps,
            "train.learning_rate": 5e-4, "train.lr_scheduler": "constant",
            "train.warmup_steps": 0, "train.threads": a.threads, "train.output_dir": out,
            "train.temperature": a.temperature}
    sets["train.num_iterations"] = a.num_iterations
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    log = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    done = re.search(r"done: \d+ steps in ([0-9.]+) s, peak memory (\d+) MiB", log)
    lens = [float(x) for x in re.findall(r"completions of ([0-9.]+) tokens", log)]
    return float(done.group(1)), float(done.group(2)), lens


def loraft_side(a, policy, rm, data):
    t1, _, _ = loraft_run(a, policy, rm, data, 1, tempfile.mkdtemp())
    tn, mem, lens = loraft_run(a, policy, rm, data, 1 + a.steps, tempfile.mkdtemp())
    return {"s_per_step": (tn - t1) / a.steps, "mean_length": mean(lens[1:]),
            "peak_rss_mib": mem}


def mean(xs):
    """The mean of the lengths logged after the first step (a step without a generation, under
    num_iterations > 1, logs none)."""
    return sum(xs) / max(1, len(xs))


def trl_side(a, policy, rm, data):
    import torch, trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ends, lens = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.time())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lens.append(float(logs["completions/mean_length"]))

    grpo = a.trainer == "grpo"
    own = (dict(beta=0.0, loss_type="dapo", scale_rewards="group") if grpo
           else dict(beta=0.05))
    args = (trl.GRPOConfig if grpo else trl.RLOOConfig)(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=8, num_generations=4,
        max_completion_length=48, temperature=a.temperature, learning_rate=5e-4,
        lr_scheduler_type="constant", max_steps=1 + a.steps, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False, disable_tqdm=True,
        seed=0, dataloader_num_workers=0, num_iterations=a.num_iterations, **own)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS,
                      task_type="CAUSAL_LM")
    trainer = (trl.GRPOTrainer if grpo else trl.RLOOTrainer)(
        model=AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32),
        reward_funcs=rm, args=args, processing_class=AutoTokenizer.from_pretrained(policy),
        train_dataset=Dataset.from_list([json.loads(l) for l in open(data)]),
        peft_config=lora, callbacks=[Clock()])
    trainer.train()
    return {"s_per_step": (ends[-1] - ends[0]) / a.steps, "mean_length": mean(lens[1:]),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "version": trl.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2",
                                                    "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--reward-adapter", required=True,
                    help="a loraft reward run's checkpoint (configs/hh-smollm2-reward.json)")
    ap.add_argument("--loraft", default=os.path.join(ROOT, "build", "loraft"))
    ap.add_argument("--trainer", choices=["rloo", "grpo"], default="rloo")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    ap.add_argument("--num-iterations", type=int, default=1,
                    help="steps on each generation (TRL's num_iterations)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--side", choices=["trl"], help=argparse.SUPPRESS)  # the TRL process
    ap.add_argument("--dirs", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(trl_side(a, *a.dirs)))
        return
    for path in (a.model, a.reward_adapter, a.loraft, HH):
        if not os.path.exists(path):
            sys.exit(f"bench-rl-vs-trl: {path} not found")
    policy = decoder_bench().hf_dir(a.model)
    work = tempfile.mkdtemp(prefix="loraft-rl-bench-")
    rm, data = os.path.join(work, "reward-model"), os.path.join(work, "prompts.jsonl")
    subprocess.run([a.loraft, "merge", "--model", policy, "--adapter", a.reward_adapter, "--out",
                    rm], check=True, stdout=subprocess.DEVNULL)
    prompts(policy, data)
    rows = {"loraft": loraft_side(a, policy, rm, data)}
    out = subprocess.run([sys.executable, __file__, "--side", "trl", "--trainer", a.trainer,
                          "--steps", str(a.steps), "--temperature", str(a.temperature),
                          "--num-iterations", str(a.num_iterations),
                          "--threads", str(a.threads), "--reward-adapter", a.reward_adapter,
                          "--dirs", policy, rm, data], capture_output=True, text=True, check=True)
    trl_row = json.loads(out.stdout.splitlines()[-1])
    rows["TRL " + trl_row["version"]] = trl_row
    print("| side | s / step | mean completion, tokens | peak RSS MiB |\n|---|---|---|---|")
    for side, r in rows.items():
        print(f"| {side} | {r['s_per_step']:.1f} | {r['mean_length']:.1f} | "
              f"{r['peak_rss_mib']:,.0f} |")


if __name__ == "__main__":
    main()
