#!/usr/bin/env python3
"""End-to-end LoRA training speed on one GPU: loraft against PyTorch + PEFT (bf16 autocast,
SDPA attention), same model, LoRA targets, rank, dropout, batch and length, each side in its
own process, in the same run (issue 10).

    bench/bench-gpu-e2e.py [--cases distilbert-128,distilbert-512,smollm2-512,smollm2-2048]
        [--precision bf16,fp32] [--steps 10] [--tokens 8192] [--device cuda|cpu] [--smoke]
        [--loraft-bench build/bench_train_step] [--no-pytorch] [--timeout 150] [--prompt F] [--dpo]
        [--qlora] [--dora]

Models: DistilBERT-base (sequence classification, LoRA on q_lin, v_lin), SmolLM2-135M and
(--cases llama3-2048) Llama-3.2-1B's shape, (--cases qwen3-2048) Qwen3-0.6B's (heads of 128
over hidden 1024, head norms), (--cases gemma3-2048) Gemma 3 270M's (heads of 256, a window
of 512 in five layers of six, GeGLU, a 262k vocabulary; causal LM, LoRA on all seven
projections) and (--cases phi4mini-2048) 8 of Phi-4-mini's 32 layers (heads of 128 over hidden
3072, RoPE over 96 of their dims, q, k, v one linear and gate, up one, a 200k vocabulary; LoRA
on qkv_proj, o_proj, gate_up_proj and down_proj), r 8,
alpha 16, dropout 0.1 / 0.05, built from
their real configs (below) with random weights on both sides: loraft from the config.json
this script writes (bench_train_step --random), PyTorch with from_config. Nothing is read
from disk or the network. Each step is forward, backward, clipping and AdamW over
--tokens tokens (batch = tokens / T); one warm-up step, then --steps timed.

FLOPs per token (the model's, the same for both sides; 2 per multiply-add):
    4 * frozen     every dense layer's weights in the layers, forward + input gradient
                   (frozen: no weight gradient)
  + 6 * r * sum(in + out) over the LoRA-adapted layers (forward, dA, dB, input gradient)
  + 12 * L * NH * HS * keys   attention (QK^T and PV forward, twice that backward), keys = T
                   for the encoder (no padding here), (T + 1) / 2 causal
  + head           DistilBERT: 6 * (C*C + C*K) / T (pre_classifier and classifier, trained,
                   once per sequence); SmolLM2: 4 * C * V (tied LM head, frozen: forward +
                   input gradient)
  + reference    --dpo: the reference policy's forward, 2 * frozen + 4 * L * NH * HS * keys
                   + 2 * C * V (no LoRA: its adapters are off)
--dpo trains DPO (sigmoid loss, beta 0.1) on the causal cases instead: rows 2i and 2i + 1 a
chosen and a rejected response after a shared prompt (--prompt's share of the row, labelled
-100), and each step first the reference policy's forward (the model with its adapters off,
no gradient), as TRL's DPOTrainer runs a PEFT model without a reference model of its own and
loraft's trainer its first epoch. PyTorch's side takes each row's log-prob as TRL does (the
labelled tokens' log-softmax, summed).
MFU = FLOPs per token * tokens/s / peak, against H200 dense BF16 989 TFLOP/s and FP32
67 TFLOP/s (both printed). Device memory: PyTorch torch.cuda.max_memory_allocated; loraft
cudaMemGetInfo's bytes in use after the steps minus before the model (bench_train_step).
loraft's precision is one parameter, --precision: model.precision for bench_train_step
(bf16: frozen weights' GEMMs on bf16 tensor cores, the rest f32 / TF32; fp32; tf32), each step
one CUDA Graph launch unless the precision carries '/nographs' (train.cuda_graphs off), with
loraft's attention kernels unless it carries '/cudnn' (model.attention cudnn), the frozen
projections in bf16 unless it carries a block type, '/q8_0' .. '/q4_0' or '/nf4' (model.base_dtype:
quantised as the model is made, dequantised for each GEMM; PyTorch's side stays bf16 unless
--qlora). --qlora: PyTorch's side is QLoRA instead, its frozen linears in bitsandbytes' NF4 with
bf16 compute (BitsAndBytesConfig load_in_4bit, nf4; the random model saved and loaded
quantised, then peft's prepare_model_for_kbit_training without gradient checkpointing), which
loraft's '/nf4' matches; where bitsandbytes is not installed the row says so. --smoke:
tiny configs, 1 step, for a CPU check that the script works (--device cpu --smoke). --dora:
both sides DoRA (peft's use_dora, loraft's lora.use_dora) at the same lora dropout as LoRA's
rows (both run one more base GEMM each way for the part of the input the dropout removed), rows
"pytorch+dora" and "loraft/dora".
Informative only: speed lives in bench/, never in tests.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

PEAK_BF16, PEAK_FP32 = 989e12, 67e12

CONFIGS = {
    "distilbert": {  # distilbert-base-uncased
        "model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"],
        "activation": "gelu", "attention_dropout": 0.1, "dim": 768, "dropout": 0.1,
        "hidden_dim": 3072, "initializer_range": 0.02, "max_position_embeddings": 512,
        "n_heads": 12, "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False, "tie_weights_": True,
        "vocab_size": 30522},
    "smollm2": {  # HuggingFaceTB/SmolLM2-135M
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu",
        "hidden_size": 576, "initializer_range": 0.041666666666666664,
        "intermediate_size": 1536, "max_position_embeddings": 8192, "mlp_bias": False,
        "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_theta": 100000.0,
        "tie_word_embeddings": True, "vocab_size": 49152},
    "llama3": {  # meta-llama/Llama-3.2-1B: 128k vocabulary, llama3 RoPE scaling
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": 128001,
        "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
        "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "vocab_size": 128256},
    "qwen3": {  # Qwen/Qwen3-0.6B: 16 heads of 128 over hidden 1024, q and k head norms
        "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
        "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
        "intermediate_size": 3072, "max_position_embeddings": 40960, "num_attention_heads": 16,
        "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000, "tie_word_embeddings": True, "use_sliding_window": False,
        "vocab_size": 151936},
    "gemma3": {  # google/gemma-3-270m: 4 heads of 256 over 1 KV head, hidden 640
        "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": None,
        "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640, "initializer_range": 0.02,
        "intermediate_size": 2048, "max_position_embeddings": 32768, "num_attention_heads": 4,
        "num_hidden_layers": 18, "num_key_value_heads": 1, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
        "rope_theta": 1000000.0, "sliding_window": 512, "tie_word_embeddings": True,
        "use_bidirectional_attention": False, "vocab_size": 262144},
    "phi4mini": {  # microsoft/Phi-4-mini-instruct, 8 of its 32 layers: the step fits the budget
        "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 199999, "embd_pdrop": 0.0, "eos_token_id": 200020, "hidden_act": "silu",
        "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192,
        "max_position_embeddings": 131072, "num_attention_heads": 24, "num_hidden_layers": 8,
        "num_key_value_heads": 8, "original_max_position_embeddings": 4096,
        "pad_token_id": 199999, "partial_rotary_factor": 0.75, "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05, "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 48,
                                                "long_factor": [1.0 + i for i in range(48)]},
        "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": True,
        "vocab_size": 200064},
}
SMOKE = {"distilbert": {"dim": 64, "hidden_dim": 128, "n_heads": 2, "n_layers": 2,
                        "vocab_size": 1000, "max_position_embeddings": 64},
         "smollm2": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000},
         "llama3": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
                    "head_dim": 16, "bos_token_id": 0, "eos_token_id": 1},
         "qwen3": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
                   "head_dim": 32, "bos_token_id": 0, "eos_token_id": 1},
         "gemma3": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
                    "head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 16},
         "phi4mini": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
                      "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 1,
                      "max_position_embeddings": 256, "original_max_position_embeddings": 64,
                      "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 6,
                                       "long_factor": [2.0] * 6}}}
LORA = {"distilbert": (["q_lin", "v_lin"], 0.1),
        "smollm2": (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                     "down_proj"], 0.05)}
LORA["llama3"] = LORA["qwen3"] = LORA["gemma3"] = LORA["smollm2"]
LORA["phi4mini"] = (["qkv_proj", "o_proj", "gate_up_proj", "down_proj"], 0.05)


def dims(name, cfg):
    """(layers, C, NH, HS, NKV, F, V, per-layer dense layers {name: (in, out)})."""
    if name == "distilbert":
        L, C, NH, F = cfg["n_layers"], cfg["dim"], cfg["n_heads"], cfg["hidden_dim"]
        NKV = NH
        dense = {"q_lin": (C, C), "k_lin": (C, C), "v_lin": (C, C), "out_lin": (C, C),
                 "lin1": (C, F), "lin2": (F, C)}
    else:
        L, C, NH = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
        NKV, F = cfg["num_key_value_heads"], cfg["intermediate_size"]
        HS = cfg.get("head_dim") or C // NH  # Qwen3's: wider than C // NH
        q, kv = NH * HS, NKV * HS
        dense = {"q_proj": (C, q), "k_proj": (C, kv), "v_proj": (C, kv), "o_proj": (q, C),
                 "gate_proj": (C, F), "up_proj": (C, F), "down_proj": (F, C)}
        if name == "phi4mini":  # Phi-3's fused linears
            dense = {"qkv_proj": (C, q + 2 * kv), "o_proj": (q, C), "gate_up_proj": (C, 2 * F),
                     "down_proj": (F, C)}
        return L, C, NH, HS, NKV, F, cfg["vocab_size"], dense
    return L, C, NH, C // NH, NKV, F, cfg["vocab_size"], dense


def flops_per_token(name, cfg, T, r, dpo=False):
    """The module docstring's formula."""
    L, C, NH, HS, _, _, V, dense = dims(name, cfg)
    targets, _ = LORA[name]
    frozen = L * sum(i * o for i, o in dense.values())
    lora = L * sum(6 * r * (dense[t][0] + dense[t][1]) for t in targets)
    causal = name != "distilbert"
    keys = (T + 1) / 2 if causal else T
    attention = 12 * L * NH * HS * keys
    head = 4 * C * V if causal else 6 * (C * C + C * 2) / T
    reference = 2 * frozen + attention / 3 + head / 2 if dpo else 0
    return 4 * frozen + lora + attention + head + reference


def prompt_tokens(fraction, T):
    """The tokens at the start of every row labelled -100 (--prompt), at most T - 1."""
    return min(int(fraction * T), T - 1)


def qlora_base(auto, hf, dev):
    """QLoRA's base: the random model in bf16, saved and loaded with bitsandbytes' NF4 linears
    (bf16 compute) on dev, prepared as peft prepares k-bit training; None (and a skipped line)
    where bitsandbytes is not installed."""
    import torch
    from transformers import BitsAndBytesConfig
    from peft import prepare_model_for_kbit_training
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        print(json.dumps({"skipped": f"no bitsandbytes ({e}); scripts/gpu-deps.sh carries it"}))
        return None
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as d:
        auto.from_config(hf, dtype=torch.bfloat16).save_pretrained(d)
        model = auto.from_pretrained(d, quantization_config=quant, attn_implementation="sdpa",
                                     device_map={"": "cuda:0" if dev.type == "cuda" else "cpu"})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def pytorch_side(a):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    dev = torch.device(a.device)
    cfg = json.loads(a.pytorch_config)
    name, T, B = a.pytorch_case, a.seq, a.batch
    targets, dropout = LORA[name]
    hf = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    causal = name != "distilbert"
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    model = qlora_base(auto, hf, dev) if a.qlora else \
        auto.from_config(hf, attn_implementation="sdpa", dtype=torch.float32)
    if model is None:
        return
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM" if causal else "SEQ_CLS",
                                             r=a.r, lora_alpha=2 * a.r,
                                             lora_dropout=dropout,
                                             target_modules=targets, use_dora=a.dora))
    if not a.qlora:  # a quantised model is on its device already, and refuses .to
        model = model.to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, cfg["vocab_size"], (B, T), generator=g).to(dev)
    k = prompt_tokens(a.prompt, T)
    if a.dpo:  # pairs: a chosen and a rejected response after one prompt
        ids[1::2, :k] = ids[0::2, :k]
    labels = ids.clone() if causal else (torch.arange(B) % 2).to(dev)
    if causal:
        labels[:, :k] = -100  # SFT's prompt (DPO's): no loss there

    def logps(labels):
        """Every row's log-prob of its labelled tokens (TRL's concatenated_forward)."""
        logits = model(input_ids=ids).logits[:, :-1].float()
        lab = labels[:, 1:]
        tok = logits.gather(2, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        return (tok * (lab != -100)).sum(-1)

    def dpo_loss():
        with torch.no_grad(), model.disable_adapter():
            ref = logps(labels)
        pi = logps(labels)
        x = (pi[0::2] - pi[1::2]) - (ref[0::2] - ref[1::2])
        return -torch.nn.functional.logsigmoid(0.1 * x).mean()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = 0.0
    for s in range(a.steps + 1):
        if s == 1:
            sync()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss = dpo_loss() if a.dpo else model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    sync()
    dt = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0.0
    print(json.dumps({"ms_per_step": 1e3 * dt / a.steps, "tokens_per_s": B * T * a.steps / dt,
                      "device_mib": mem, "trainable": sum(p.numel() for p in params)}))


def run(cmd, timeout):
    """(stdout, None) or (None, why)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    except OSError as e:
        return None, str(e)
    if p.returncode:
        lines = (p.stderr.strip() or p.stdout.strip()).splitlines()
        return None, lines[-1][:160] if lines else f"exit {p.returncode}"
    return p.stdout, None


def loraft_side(a, name, model_dir, T, B, precision):
    targets, dropout = LORA[name]
    precision, *flags = precision.split("/")
    graphs = "off" if "nographs" in flags else "auto"
    attention = "cudnn" if "cudnn" in flags else "loraft"
    ckpt = ["--checkpointing"] if "ckpt" in flags else []
    base = [f for f in flags if re.fullmatch(r"q[0-9]_[01]|nf4", f)]  # model.base_dtype q8_0 .. nf4
    out, why = run([a.loraft_bench, model_dir, "--random", "--device", a.device, "--batch",
                    str(B), "--seq", str(T), "--steps", str(a.steps), "--r", str(a.r),
                    "--targets", ",".join(targets), "--dropout", str(dropout),
                    "--precision", precision, "--graphs", graphs, "--attention", attention,
                    "--prompt", str(prompt_tokens(a.prompt, T) if name != "distilbert" else 0)]
                   + ckpt + (["--base-dtype", base[0]] if base else [])
                   + (["--dpo"] if a.dpo else []) + (["--dora"] if a.dora else []), a.timeout)
    if why:
        return None, why
    m = re.search(r"([\d.]+) ms/step, (\d+) tokens/s, .*device memory (\d+) MiB, "
                  r"trainable (\d+), weights (\d+) MiB, activations (\d+) MiB", out)
    if not m:
        return None, "unexpected output: " + out.strip()[-160:]
    return {"ms_per_step": float(m[1]), "tokens_per_s": float(m[2]),
            "device_mib": float(m[3]), "trainable": int(m[4]), "weights_mib": int(m[5]),
            "activations_mib": int(m[6])}, None


def row(case, side, precision, r, fpt):
    if r is None:
        return
    flops = fpt * r["tokens_per_s"]
    print(f"e2e   {case:22} {side:14} {precision:20} {r['tokens_per_s']:10.0f} "
          f"{r['ms_per_step']:9.1f} {flops * 1e-12:8.2f} {100 * flops / PEAK_BF16:8.2f} "
          f"{100 * flops / PEAK_FP32:8.1f} {r['device_mib']:10.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="distilbert-128,distilbert-512,smollm2-512,smollm2-2048")
    ap.add_argument("--precision", help="loraft's model.precision, comma-separated; a "
                    "'/nographs' suffix runs it without CUDA Graphs, '/cudnn' with cuDNN's "
                    "attention, '/ckpt' with gradient checkpointing, '/q4_0' (or q8_0, q5_1, q5_0, "
                    "q4_1, nf4) with that base_dtype (default: bf16/nographs,"
                    "bf16/nographs/cudnn,bf16,fp32 on the GPU, and bf16/nographs/ckpt for "
                    "SmolLM2; fp32 on the CPU, which computes fp32 only)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--prompt", type=float, default=0.0, help="causal cases: this fraction of "
                    "every row's tokens, from its start, labelled -100 on both sides (SFT's "
                    "prompt, whose logits loraft's LM head skips)")
    ap.add_argument("--dpo", action="store_true", help="causal cases: DPO on pairs of rows, "
                    "with the reference policy's forward each step (the module docstring)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--loraft-bench", default="build/bench_train_step")
    ap.add_argument("--no-pytorch", action="store_true")
    ap.add_argument("--qlora", action="store_true", help="PyTorch + PEFT on a bitsandbytes NF4 "
                    "base (QLoRA) instead of bf16: the match of loraft's '/nf4'")
    ap.add_argument("--dora", action="store_true", help="DoRA on both sides")
    ap.add_argument("--timeout", type=int, default=150, help="seconds per side and case")
    ap.add_argument("--pytorch-case", help=argparse.SUPPRESS)
    ap.add_argument("--pytorch-config", help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not 0.0 <= a.prompt < 1.0:
        ap.error(f"--prompt {a.prompt:g}: a fraction of the row, at least 0 and below 1")
    if a.pytorch_case:
        return pytorch_side(a)
    if a.dpo and "distilbert" in a.cases:
        ap.error("--dpo: DPO trains decoders; the distilbert cases classify")
    if a.dora and a.qlora:
        ap.error("--dora and --qlora: one comparison at a time")
    if a.smoke:
        a.steps, a.tokens = 1, 64
    gpu = a.device == "cuda"
    default = "bf16/nographs,bf16/nographs/cudnn,bf16,fp32" if gpu else "fp32"
    print(f"# e2e: {a.tokens} tokens per step, {a.steps} timed steps after 1 warm-up, LoRA r "
          f"{a.r}; MFU vs H200 dense BF16 {PEAK_BF16 * 1e-12:.0f} and FP32 "
          f"{PEAK_FP32 * 1e-12:.0f} TFLOP/s; device MiB: loraft cudaMemGetInfo delta, PyTorch "
          f"max_memory_allocated" + ("; SMOKE (numbers meaningless)" if a.smoke else "")
          + (f"; the first {a.prompt:g} of every causal row labelled -100" if a.prompt else "")
          + ("; DPO on pairs of rows, the reference policy's forward each step" if a.dpo else "")
          + ("; DoRA on both sides" if a.dora else ""))
    print(f"e2e   {'case':22} {'side':14} {'precision':20} {'tokens/s':>10} {'ms/step':>9} "
          f"{'TFLOP/s':>8} {'MFU%bf16':>8} {'MFU%fp32':>8} {'device MiB':>10}", flush=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases.split(","):
            name, T = case.rsplit("-", 1)
            T = int(T) // 16 if a.smoke else int(T)
            cfg = dict(CONFIGS[name], **(SMOKE[name] if a.smoke else {}))
            model_dir = os.path.join(tmp, name)
            os.makedirs(model_dir, exist_ok=True)
            with open(os.path.join(model_dir, "config.json"), "w") as f:
                json.dump(cfg, f)
            B = max(1, a.tokens // T)
            if a.dpo:  # whole pairs
                B = max(2, B - B % 2)
            fpt = flops_per_token(name, cfg, T, a.r, a.dpo)
            label = f"{name} T={T} B={B}"
            print(f"# {label}: {fpt * 1e-6:.1f} MFLOP per token", flush=True)
            results = {}
            ckpt = ",bf16/nographs/ckpt" if gpu and name == "smollm2" else ""
            for precision in (a.precision or default + ckpt).split(","):
                r, why = loraft_side(a, name, model_dir, T, B, precision)
                if why:
                    print(f"e2e   {label:22} {'loraft':14} {precision:20} FAILED: {why}")
                    failed += 1
                row(label, "loraft", precision, r, fpt)
                if r:
                    print(f"# {label} loraft {precision}: of its device memory, weights "
                          f"{r['weights_mib']} MiB, activation plan {r['activations_mib']} MiB",
                          flush=True)
                results[precision] = r
            if a.no_pytorch:
                continue
            side, how, ratio = ("pytorch+qlora", "nf4-bf16-autocast", "loraft/qlora") \
                if a.qlora else ("pytorch+dora", "bf16-autocast", "loraft/dora") \
                if a.dora else ("pytorch+peft", "bf16-autocast", "loraft/pytorch")
            out, why = run([sys.executable, __file__, "--pytorch-case", name, "--pytorch-config",
                            json.dumps(cfg), "--seq", str(T), "--batch", str(B), "--steps",
                            str(a.steps), "--r", str(a.r), "--device", a.device, "--prompt",
                            str(a.prompt)] + (["--dpo"] if a.dpo else [])
                           + (["--qlora"] if a.qlora else []) + (["--dora"] if a.dora else []),
                           a.timeout)
            if why:
                print(f"e2e   {label:22} {side:14} {how:20} FAILED: {why}")
                failed += 1
                continue
            pt = json.loads(out.strip().splitlines()[-1])
            if "skipped" in pt:
                print(f"# {label} {side}: skipped: {pt['skipped']}")
                continue
            row(label, side, how, pt, fpt)
            ours = [r["trainable"] for r in results.values() if r]
            if ours and ours[0] != pt["trainable"]:
                print(f"# {label}: trainable parameters differ: loraft {ours[0]}, "
                      f"PyTorch + PEFT {pt['trainable']}")
            for precision, r in results.items():
                if r and pt["device_mib"]:
                    print(f"e2e   {label:22} {ratio:14} {precision:20} "
                          f"{r['tokens_per_s'] / pt['tokens_per_s']:9.2f}x speed, "
                          f"{r['device_mib'] / pt['device_mib']:.2f}x memory", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
