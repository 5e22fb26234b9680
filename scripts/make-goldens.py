#!/usr/bin/env python3
"""Golden references for the CPU model, computed by PyTorch + transformers + peft.

For each case, `loraft init` writes a tiny seeded checkpoint; transformers loads it
(AutoModelForSequenceClassification, or AutoModelForCausalLM for the Llama and GPT-2 cases), peft
wraps it as a LoRA SEQ_CLS / CAUSAL_LM model (or the body is frozen / everything trains), and one
batch is run in eval mode (no dropout; the lora_dropout case in training mode, its model
having no other dropout, with loraft's masks: LoraftDropout). The preference cases pair the rows (2i chosen, 2i+1
rejected): DPO is a direct PyTorch implementation of TRL 0.12's formulas on the causal LM (the
reference is the same peft model under disable_adapter(), computed once), the reward model is
AutoModelForSequenceClassification(num_labels=1) + peft SEQ_CLS with -log sigmoid(r_chosen -
r_rejected). The SFT case is the causal-LM loss with labels -100 on the prompts. The golden
file holds the batch, the initial LoRA weights (peft draws them), the logits, the loss, the
gradient of every trainable tensor, and every trainable tensor after 3 AdamW steps with
gradient clipping (HF Trainer's weight-decay grouping; the LoRA+ case peft's
create_loraplus_optimizer). Tensors are in transformers' layout
(GPT-2's Conv1D weights [in, out]). tests/test_golden.c rebuilds the same checkpoint with
`loraft init` and compares.

    scripts/make-goldens.py --loraft build/loraft            # rewrite tests/golden/model_*.json
    scripts/make-goldens.py --loraft build/loraft --case llama_dpo   # one of them
    scripts/make-goldens.py --loraft build/loraft --model models/all-MiniLM-L6-v2 \
        --out /tmp/minilm.json                                # the same check on a real model

Needs: torch, transformers, peft (pip; scripts/setup-python.sh makes a venv). No network: the
vocabularies come from ../shared/data/tokenizers (bert-base-uncased, gpt2).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from peft import LoraConfig, TrainableTokensConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZERS = os.path.join(ROOT, "..", "shared", "data", "tokenizers")
VOCAB = os.path.join(TOKENIZERS, "bert-base-uncased")

TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--ffn", "48",
        "--max-positions", "64", "--seed", "7"]
LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=32)
CASES = [
    dict(name="distilbert_lora", init=["--arch", "distilbert", "--num-labels", "2"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]),
    dict(name="bert_lora", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="lora", r=3, alpha=6.0, rslora=True, targets=["query", "value", "dense"]),
    # LoRA+ (peft's create_loraplus_optimizer): B and the head's biases at 16 times the rate
    dict(name="distilbert_loraplus", init=["--arch", "distilbert", "--num-labels", "2"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["q_lin", "v_lin", "lin1"],
         loraplus_lr_ratio=16.0),
    # DoRA (peft's use_dora): lin1 has a bias, which the magnitude's scale leaves out
    dict(name="distilbert_dora", init=["--arch", "distilbert", "--num-labels", "2"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["q_lin", "v_lin", "lin1"],
         dora=True),
    dict(name="distilbert_full", init=["--arch", "distilbert", "--num-labels", "2"] + TINY,
         strategy="full"),
    dict(name="bert_head", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="head"),
    dict(name="llama_lora", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    # Llama 3.1's RoPE scaling, every band at head size 8 (tests/golden/rope_freqs.json's tiny case)
    dict(name="llama3_lora", init=["--arch", "llama", "--kv-heads", "2", "--rope-theta", "100",
                                   "--rope-scaling", json.dumps(LLAMA3_ROPE)] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj"]),
    dict(name="llama_full", init=["--arch", "llama", "--untied"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="full"),
    # Qwen2: Llama with q, k, v biases (0 from `loraft init`, as transformers initialises them;
    # their gradients and 3 AdamW steps are what this checks; tests/test_hf_llama_family.sh random ones)
    dict(name="qwen2_full", init=["--arch", "qwen2", "--kv-heads", "2", "--untied"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="full", after_atol=3e-3),
    # Qwen3: Llama with an RMS norm over each head of q and k, its heads (16) wider than hidden / heads
    dict(name="qwen3_full", init=["--arch", "qwen3", "--kv-heads", "2", "--head-dim", "16"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="full"),
    dict(name="llama_dpo", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="dpo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         dpo=dict(beta=0.5, loss="sigmoid", label_smoothing=0.1), prompt_len=3,
         after_atol=2e-2),
    dict(name="llama_ipo", init=["--arch", "llama", "--untied"] + TINY, task="dpo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=True,
         targets=["q_proj", "v_proj", "down_proj"],
         dpo=dict(beta=0.2, loss="ipo", label_smoothing=0.0), prompt_len=3, after_atol=2e-2),
    # RLOO (TRL 1.16's RLOOTrainer): two groups of two completions, the KL penalty in the
    # reward; then one group of four, the advantages normalised, on an untied Llama
    dict(name="llama_rloo", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="rloo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         rloo=dict(beta=0.5, generations=2, normalize=False), rewards=[0.7, -0.3, 1.2, 0.1],
         prompt_len=3, after_atol=2e-2),
    dict(name="llama_rloo_normalized", init=["--arch", "llama", "--untied"] + TINY, task="rloo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "down_proj"],
         rloo=dict(beta=0.1, generations=4, normalize=True), rewards=[0.7, -0.3, 1.2, 0.1],
         prompt_len=3, after_atol=2e-2),
    # GRPO (TRL 1.16's GRPOTrainer, beta 0): dapo over two groups of two, the rewards scaled by
    # their group; then the per-completion mean (loss_type grpo) scaled by the batch's std, under
    # lora dropout (training mode: the head's one pass writes the hidden states' gradient)
    dict(name="llama_grpo", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="grpo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         grpo=dict(generations=2, loss="dapo", scale="group", max_completion=6),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    dict(name="llama_grpo_dropout", init=["--arch", "llama", "--untied"] + TINY, task="grpo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "down_proj"],
         grpo=dict(generations=2, loss="grpo", scale="batch", max_completion=6),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, lora_dropout=0.1, after_atol=2e-2),
    # and with its KL penalty to the reference (the adapters off; TRL's bias-corrected k3),
    # dr_grpo over rewards not scaled
    dict(name="llama_grpo_kl", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="grpo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         grpo=dict(beta=0.5, generations=2, loss="dr_grpo", scale="none", max_completion=6),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # both at a sampling temperature (TRL divides the logits of every log-prob by it): GRPO with
    # its KL penalty, dapo, on a Gemma 2 (the temperature after the final soft-cap); RLOO above 1
    dict(name="gemma2_grpo_tempered", init=["--arch", "gemma2", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"], temperature=0.7,
         grpo=dict(beta=0.2, generations=2, loss="dapo", scale="group", max_completion=6),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # num_iterations 3: the three steps train on one generation, steps 2 and 3 on the ratio to the
    # first step's log-probs (the sampling policy's), clipped to [1 - 0.02, 1 + 0.03] (DAPO's
    # clip-higher) and at 1.04 for negative advantages (delta: two-sided), with the KL penalty
    # (the ratio on it too)
    dict(name="llama_grpo_iterations", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         grpo=dict(beta=0.1, generations=2, loss="dapo", scale="group", max_completion=6,
                   iterations=3, epsilon=0.02, epsilon_high=0.03, delta=1.04),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # GSPO (importance_sampling_level sequence): one ratio a completion, the exp of its tokens'
    # mean log-ratio, clipped as a whole, on the KL's term too; loss_type grpo
    dict(name="llama_gspo_iterations", init=["--arch", "llama", "--untied"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         grpo=dict(beta=0.1, generations=2, loss="grpo", scale="group", max_completion=6,
                   iterations=3, epsilon=0.005, epsilon_high=0.01,
                   importance_sampling_level="sequence"),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # LUSPO: GSPO's ratio, each completion's loss summed over its tokens, then the mean over rows;
    # the KL penalty without the ratio (use_bias_correction_kl False)
    dict(name="llama_luspo_iterations", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         grpo=dict(beta=0.2, generations=2, loss="luspo", scale="group", max_completion=6,
                   iterations=3, epsilon=0.01, epsilon_high=0.02,
                   importance_sampling_level="sequence", bias_correction_kl=False),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # the other policy terms: cispo (the ratio capped at epsilon_high, detached, times the
    # log-prob; dapo's sum) and sapo (the ratio's sigmoid; grpo's mean), num_iterations 3
    dict(name="llama_grpo_cispo", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         grpo=dict(beta=0.1, generations=2, loss="cispo", scale="group", max_completion=6,
                   iterations=3, epsilon_high=1.01),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # VESPO: each completion's gamma weight (TRL's k 2, lambda 3 for advantages >= 0; 3, 2 below)
    # of its summed log-ratio, detached, times the log-probs; the KL's ratio each token's
    dict(name="llama_grpo_vespo", init=["--arch", "llama", "--untied"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         grpo=dict(beta=0.1, generations=2, loss="vespo", scale="group", max_completion=6,
                   iterations=3),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    dict(name="llama_grpo_sapo", init=["--arch", "llama", "--untied"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "down_proj"],
         grpo=dict(generations=2, loss="sapo", scale="batch", max_completion=6, iterations=3),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # RLOO at num_iterations 3: steps 2 and 3 train on step 1's generation, its advantages (the
    # KL from the sampling policy's log-probs, normalised) kept, one ratio a completion (the exp
    # of its summed log-ratio: TRL's RLOOTrainer) clipped to [1 - 0.2, 1 + 0.3]
    dict(name="llama_rloo_iterations", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="rloo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         rloo=dict(beta=0.1, generations=2, normalize=True, iterations=3, epsilon=0.2,
                   epsilon_high=0.3),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    dict(name="llama_rloo_tempered", init=["--arch", "llama", "--untied"] + TINY, task="rloo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "down_proj"], temperature=1.3,
         rloo=dict(beta=0.1, generations=2, normalize=False), rewards=[0.7, -0.3, 1.2, 0.1],
         prompt_len=3, after_atol=2e-2),
    # the off-policy sequence mask (DeepSeek-V3.2, TRL's off_policy_mask_threshold): at steps 2
    # and 3 a completion whose advantage is negative and whose tokens' mean drift from the
    # sampling policy (lp_old - lp) is above 0.05 has no policy term, its KL term kept
    dict(name="llama_grpo_off_policy", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         grpo=dict(beta=0.1, generations=2, loss="dapo", scale="group", max_completion=6,
                   iterations=3, off_policy_mask=0.05),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # the entropy mask (TRL's top_entropy_quantile: the policy term at the completion tokens
    # whose entropy is at least the batch's median alone) and bonus (entropy_coef: the loss less
    # 0.05 times the kept tokens' mean entropy, whose gradient reaches the logits), at
    # num_iterations 2 with a KL penalty
    dict(name="llama_grpo_entropy", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         temperature=0.1,
         grpo=dict(beta=0.1, generations=2, loss="dapo", scale="group", max_completion=6,
                   iterations=2, top_entropy_quantile=0.5, entropy_coef=0.05),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # completions no reward function scored (None: TRL's nan-aware advantages, 0 for them):
    # GRPO over a group of four with one unscored, its KL penalty; RLOO's leave-one-out over the
    # scored others, normalised; GDPO's second step (multi_objective_aggregation
    # normalize_then_sum: the sums less the generation's mean, over its std)
    dict(name="llama_grpo_unscored", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         grpo=dict(beta=0.1, generations=4, loss="dapo", scale="group", max_completion=6),
         rewards=[0.7, None, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    # RLOO's reward_clip_range: the rewards clamped into [-0.2, 1.0] (two of the four), then the
    # KL penalty, the leave-one-out baselines, normalised
    dict(name="llama_rloo_clipped", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="rloo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "up_proj"],
         rloo=dict(beta=0.1, generations=2, normalize=True, reward_clip_range=[-0.2, 1.0]),
         rewards=[0.7, -0.3, 1.2, 0.1], prompt_len=3, after_atol=2e-2),
    dict(name="llama_rloo_unscored", init=["--arch", "llama", "--untied"] + TINY, task="rloo",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "down_proj"],
         rloo=dict(beta=0.1, generations=4, normalize=True), rewards=[0.7, -0.3, None, 0.1],
         prompt_len=3, after_atol=2e-2),
    dict(name="llama_grpo_gdpo", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="grpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         grpo=dict(generations=2, loss="grpo", scale="generation", max_completion=6),
         rewards=[0.9, -1.1, None, 0.4], prompt_len=3, after_atol=2e-2),
    dict(name="llama_reward", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="reward",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "up_proj"], pad_token_id=102),
    # SFT: the causal-LM loss with the prompt (and what follows the answer's end) labelled -100
    dict(name="llama_sft", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="sft",
         vocab="gpt2", strategy="lora", r=4, alpha=8.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    dict(name="gpt2_lora", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn", "c_proj", "c_fc"],
         fan_in_fan_out=True),
    # DoRA on a Llama: q and v in the q, k, v group, gate in gate and up's, down alone; GPT-2's
    # Conv1D weights (fan_in_fan_out)
    dict(name="llama_dora", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=True,
         targets=["q_proj", "v_proj", "gate_proj", "down_proj"], dora=True),
    dict(name="gpt2_dora", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn", "c_fc"],
         fan_in_fan_out=True, dora=True),
    dict(name="gpt2_full", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="full"),
    # peft's rank_pattern and alpha_pattern: q, k, v and gate, up of other ranks or scales (so
    # loraft runs them apart), one layer's down_proj by a dotted key
    dict(name="llama_patterns", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         rank_pattern={"q_proj": 4, r"layers\.1\.mlp\.down_proj": 3},
         alpha_pattern={"v_proj": 16.0, "gate_proj": 2.0}),
    # layers_to_transform: GPT-2's second block only, by layers_pattern "h"; rsLoRA per rank
    dict(name="gpt2_layers", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=True, targets=["c_attn", "c_fc"],
         fan_in_fan_out=True, rank_pattern={"c_fc": 3}, layers_to_transform=[1],
         layers_pattern="h"),
    # layers_to_transform without layers_pattern (peft's guess: the first number), a classifier
    dict(name="distilbert_layers", init=["--arch", "distilbert", "--num-labels", "2"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["q_lin", "v_lin", "lin1"],
         layers_to_transform=[0], alpha_pattern={"lin1": 12.0}),
    # target_modules "all-linear" (every linear but the output layer: the untied lm_head here; the
    # classifier, not the pooler, for BERT), and exclude_modules as a regular expression
    dict(name="llama_all_linear", init=["--arch", "llama", "--kv-heads", "2", "--untied"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets="all-linear", exclude_modules=r".*layers\.0\.self_attn\.(k|v)_proj"),
    dict(name="bert_all_linear", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets="all-linear"),
    # target_modules as a regular expression (full-matched), exclude_modules as names
    dict(name="gpt2_regex", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=r".*\.(c_attn|c_fc)",
         fan_in_fan_out=True, exclude_modules=["transformer.h.0.attn.c_attn"]),
    # peft's bias: "all" (every bias, the LayerNorms' and the embeddings' norm's too), "lora_only"
    # (the adapted linears': Qwen2's q and v; o has none)
    dict(name="bert_bias_all", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["query", "value"], bias="all"),
    dict(name="gpt2_bias_all", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn"], fan_in_fan_out=True,
         bias="all"),
    dict(name="qwen2_bias_lora_only", init=["--arch", "qwen2", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj"], bias="lora_only", after_atol=3e-3),
    # DoRA with peft's bias: the bias is added after the magnitude's scale, so its gradient is the
    # output's, unscaled (Qwen2's q and v; GPT-2's Conv1D with every bias)
    dict(name="qwen2_dora_bias", init=["--arch", "qwen2", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj"], bias="lora_only", dora=True, after_atol=3e-3),
    dict(name="gpt2_dora_bias_all", init=["--arch", "gpt2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn", "c_fc"],
         fan_in_fan_out=True, bias="all", dora=True),
    # PiSSA: A and B from each weight's principal singular directions, the weight the rest (B not
    # 0, so the first step already has A's gradients); GPT-2's Conv1D weights (fan_in_fan_out)
    dict(name="llama_pissa", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         init_lora_weights="pissa"),
    # OLoRA: A and B the first r rows of R and columns of Q of each weight's QR, the weight the rest
    dict(name="llama_olora", init=["--arch", "llama", "--kv-heads", "2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=True,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         init_lora_weights="olora"),
    dict(name="gpt2_pissa", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=4, alpha=4.0, rslora=True, targets=["c_attn", "c_fc"],
         fan_in_fan_out=True, init_lora_weights="pissa"),
    # LoRA on the token embedding (peft's lora_embedding_A / _B), peft's own start (A 0, B
    # normal): Llama's tied table with padding_idx 101, a token every row starts with, whose A
    # column gets no gradient; GPT-2's wte (no padding_idx) with Conv1D c_attn; BERT's
    # word_embeddings under a classifier, with rank_pattern giving it its own rank
    dict(name="llama_embed_lora", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["embed_tokens", "q_proj", "v_proj"], init_lora_weights=True, pad_token_id=101),
    dict(name="gpt2_embed_lora", init=["--arch", "gpt2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=True, targets=["wte", "c_attn"],
         fan_in_fan_out=True, init_lora_weights=True),
    dict(name="bert_embed_lora", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["word_embeddings", "query"],
         rank_pattern={"word_embeddings": 3}, init_lora_weights=True),
    # LoRA on the LM head (peft's lm_head target; its B starts at 0, so at step 0 only B has a
    # gradient): an untied Llama's with embed_tokens' too (Unsloth's continued-pretraining targets),
    # a tied Llama's (peft adapts the lm_head module; the table stays the embedding's, unadapted),
    # GPT-2's tied head beside Conv1D c_attn (peft turns fan_in_fan_out off for the nn.Linear head)
    dict(name="llama_head_lora", init=["--arch", "llama", "--kv-heads", "2", "--untied"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "lm_head", "embed_tokens"], init_lora_weights=True,
         alpha_pattern={"lm_head": 8.0}),
    dict(name="llama_tied_head_lora", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=True,
         targets=["q_proj", "lm_head"], init_lora_weights=True),
    dict(name="gpt2_head_lora", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn", "lm_head"],
         fan_in_fan_out=True, init_lora_weights=True),
    # peft's trainable tokens (trainable_token_indices: rows of the embedding trained in place of
    # the table's, and of a tied head's): a tied Llama's, padding_idx 101 among them (torch gives
    # its row no gradient), 7 in no row of the batch (the tied head alone trains it), in training
    # mode under lora dropout (loraft's training forward writes the head's du), and under DPO
    # (the reference policy without them: peft's disable_adapter() takes them off too); an untied
    # Llama's named as {module: ids} (the head keeps its own rows); GPT-2's wte and tied head;
    # BERT's word_embeddings under a classifier. Rows of the LM head's own ({"lm_head": ids},
    # peft's wrapper of the head): an untied Llama's beside the embedding's (ids in both, in
    # another order); a tied Llama's with other ids than the embedding's (peft then ties neither
    # to the other: the head's rows start from the same table but train apart), under lora
    # dropout; GPT-2's with the same list for wte and lm_head (peft ties them into one: the
    # list's case)
    dict(name="llama_tokens", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj"], init_lora_weights=True, pad_token_id=101,
         trainable_token_indices=[101, 23986, 102, 7], lora_dropout=0.1),
    dict(name="llama_untied_tokens",
         init=["--arch", "llama", "--kv-heads", "2", "--untied"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False, targets=["q_proj"],
         init_lora_weights=True, trainable_token_indices={"embed_tokens": [23986, 102, 7]}),
    dict(name="llama_dpo_tokens", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="dpo", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj"], dpo=dict(beta=0.5, loss="sigmoid", label_smoothing=0.0),
         prompt_len=3, after_atol=2e-2, trainable_token_indices=[101, 102, 7]),
    dict(name="gpt2_tokens", init=["--arch", "gpt2"] + TINY, task="causal-lm", vocab="gpt2",
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn"], fan_in_fan_out=True,
         init_lora_weights=True, trainable_token_indices=[102, 23986, 7]),
    dict(name="llama_head_tokens",
         init=["--arch", "llama", "--kv-heads", "2", "--untied"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False, targets=["q_proj"],
         init_lora_weights=True,
         trainable_token_indices={"embed_tokens": [23986, 102, 7], "lm_head": [7, 50, 23986]}),
    dict(name="llama_tied_head_tokens", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj"], init_lora_weights=True, lora_dropout=0.1,
         trainable_token_indices={"embed_tokens": [101, 23986], "lm_head": [102, 7, 23986]}),
    dict(name="gpt2_same_tokens", init=["--arch", "gpt2"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False, targets=["c_attn"],
         fan_in_fan_out=True, init_lora_weights=True,
         trainable_token_indices={"wte": [102, 23986, 7], "lm_head": [102, 23986, 7]}),
    # peft's TrainableTokens method alone (TrainableTokensConfig; loraft's strategy tokens): a
    # tied Llama's embedding rows (peft ties the head's layer to them), padding_idx among them,
    # under DPO (the reference policy without them); an untied Llama's embedding and head, the
    # same ids (target_modules names both)
    dict(name="llama_dpo_trainable_tokens", init=["--arch", "llama", "--kv-heads", "2"] + TINY,
         task="dpo", vocab="gpt2", strategy="tokens", token_indices=[101, 23986, 102, 7],
         pad_token_id=101, dpo=dict(beta=0.5, loss="sigmoid", label_smoothing=0.0),
         prompt_len=3, after_atol=2e-2),
    dict(name="llama_untied_trainable_tokens",
         init=["--arch", "llama", "--kv-heads", "2", "--untied"] + TINY, task="causal-lm",
         vocab="gpt2", strategy="tokens", token_indices=[23986, 102, 7],
         target_modules=["model.embed_tokens", "lm_head"]),
    dict(name="bert_tokens", init=["--arch", "bert", "--num-labels", "3"] + TINY,
         strategy="lora", r=2, alpha=4.0, rslora=False, targets=["query", "value"],
         init_lora_weights=True, trainable_token_indices=[101, 102, 7]),
    # DoRA under lora dropout, in training mode, where peft's DoRA takes the base's term from the
    # dropped input too: loraft's masks (LoraftDropout), each magnitude moved off its norm first
    # (magnitude_jitter) so that the base's term on what the dropout removed counts from the first
    # step; Qwen2's q and v with biases, o and down without
    dict(name="qwen2_dora_dropout", init=["--arch", "qwen2", "--kv-heads", "2"] + TINY,
         task="causal-lm", vocab="gpt2", strategy="lora", r=2, alpha=4.0, rslora=False,
         targets=["q_proj", "v_proj", "o_proj", "down_proj"], dora=True, lora_dropout=0.25,
         magnitude_jitter=0.5),
]
# after_atol: the absolute tolerance of the weights after the AdamW steps, as a fraction of lr
# (default 1e-3, see tests/test_golden.c). DPO's gradient is the difference of two sequences'
# gradients, so more of its elements are float rounding on both sides, and AdamW turns any
# gradient, noise or not, into a step of up to lr: 2e-2 (a real error moves a weight by ~lr).
# Qwen2's q and k biases get gradients some 500x smaller than v's here (a row of scores' gradient
# sums to 0, so what a bias adds to a whole row alike gets none; only the keys' differences and
# RoPE's rotation leave any), so AdamW's first steps amplify their rounding too, less: 3e-3.
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, max_grad_norm=1.0)
STEPS = 3


def c_name(name):
    """peft's parameter name -> loraft's (HF name; LoRA as ...q_lin.lora_A.weight)."""
    name = name.replace("base_model.model.", "")
    name = name.replace("lora_magnitude_vector.default.weight", "lora_magnitude_vector")  # DoRA's
    name = name.replace(".base_layer.", ".")  # an adapted linear's own (bias="all", "lora_only")
    return name.replace(".modules_to_save.default", "").replace(".default", "")


def encode(t, zeros=False):
    """Small tensors in full; large ones as sum, sum of squares and the first 256 values, or
    (zeros: a start, which must be given whole) all 0 as their count."""
    flat = t.detach().double().flatten()
    if zeros and flat.numel() > 4096 and not flat.any():
        return {"zeros": flat.numel()}  # peft's embedding A
    if flat.numel() <= 4096:
        return {"values": [float("%.9g" % v) for v in flat.tolist()]}
    return {"sum": flat.sum().item(), "sumsq": (flat * flat).sum().item(),
            "head": [float("%.9g" % v) for v in flat[:256].tolist()]}


def make_batch(vocab_size, num_labels, seed, case, B=3, T=9):
    """Right-padded rows of lengths T, T-3, 4; a class per row, or (causal LM) the ids with
    -100 on the padding, as transformers' language-modelling collator makes them. Preference
    cases: two pairs of rows (lengths T, T-3, 4, T-1), labels -100 on the padding and (DPO) on
    the prompt; padding ids are the pad token (reward: transformers pools by it). SFT: as causal
    LM, plus -100 on each row's prompt (its first 4, 3, 2 tokens) and on row 0's last token
    (after the answer's end of turn)."""
    g = torch.Generator().manual_seed(seed)
    task = case.get("task")
    B = 4 if task in ("dpo", "reward", "rloo", "grpo") else B
    lengths = [T, T - 3, 4, T - 1][:B]
    ids = torch.full((B, T), case.get("pad_token_id", 0), dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n - 1] = 101, 102
        ids[b, 1:n - 1] = torch.randint(1000, min(vocab_size, 29000), (n - 2,), generator=g)
        mask[b, :n] = 1
    if task in ("causal-lm", "sft", "dpo", "reward", "rloo", "grpo"):
        labels = ids.masked_fill(mask == 0, -100)
        if task in ("dpo", "rloo", "grpo"):  # the prompt (RL: the completion alone counts)
            labels[:, :case["prompt_len"]] = -100
        if task == "sft":
            for b, prompt in enumerate([4, 3, 2][:B]):
                labels[b, :prompt] = -100
            labels[0, T - 1] = -100
        return ids, mask, labels
    labels = torch.randint(0, num_labels, (B,), generator=g)
    return ids, mask, labels


def causal_lm(case):
    return case.get("task") in ("causal-lm", "sft", "dpo", "rloo", "grpo")  # SFT: causal-LM's


def seq_logps(model, ids, mask, labels, temperature=1.0):
    """The logits, and each row's summed log-prob of its labelled tokens (of the logits divided
    by the temperature, as TRL's RL trainers take them) and their count."""
    logits = model(input_ids=ids, attention_mask=mask).logits
    logp = torch.log_softmax(logits[:, :-1] / temperature, -1)
    target = labels[:, 1:]
    keep = target != -100
    tok = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
    return logits, tok.sum(-1), keep.sum(-1)


def dpo_loss(case, pi, ref, count):
    """TRL v0.12.0 DPOTrainer.dpo_loss (sigmoid with label smoothing, ipo on length-averaged
    log-probs as its concatenated_forward), the mean over pairs."""
    d = case["dpo"]
    beta, eps = d["beta"], d["label_smoothing"]
    if d["loss"] == "ipo":
        pi, ref = pi / count, ref / count
    x = (pi[0::2] - pi[1::2]) - (ref[0::2] - ref[1::2])
    if d["loss"] == "ipo":
        return ((x - 1 / (2 * beta)) ** 2).mean()
    F = torch.nn.functional
    return (-F.logsigmoid(beta * x) * (1 - eps) - F.logsigmoid(-beta * x) * eps).mean()


def case_rewards(case):
    """The case's rewards, None (a completion no reward function scored) as NaN."""
    return torch.tensor([math.nan if x is None else x for x in case["rewards"]])


def nanstd(x, dim=None):
    """TRL 1.16's trl.trainer.utils.nanstd: Bessel's over the values that are not NaN (NaN over
    fewer than two), over dim or all."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    var = torch.nanmean((x - torch.nanmean(x, dim=dim, keepdim=True)) ** 2, dim=dim)
    count = torch.sum(~torch.isnan(x), dim=dim)
    return torch.sqrt(var * torch.where(count > 1, count / (count - 1), math.nan))


def rloo_loss(case, pi, ref, out, old):
    """TRL 1.16 RLOOTrainer: the advantages as _generate_and_score_completions computes them (the
    KL to the reference, first order and summed over the completion, from the sampling policy's
    log-probs, taken from the reward; the leave-one-out baseline; optionally normalised over the
    generation with Bessel's std + 1e-4), all under no_grad, and _compute_loss's clipped
    objective on the sequence log-probs, whose old log-probs are the sampling policy's (old: a
    generation's first step's, under num_iterations > 1; None: this forward's, detached, the
    ratio 1). out gets the log-probs (old_logps) and the rows clipped low and high (clipped)."""
    d = case["rloo"]
    k, beta = d["generations"], d["beta"]
    eps_low = d.get("epsilon", 0.2)
    eps_high = d.get("epsilon_high", eps_low)
    old = pi.detach() if old is None else old
    with torch.no_grad():  # nan-aware: a NaN reward is a completion none scored
        rewards = case_rewards(case)
        if d.get("reward_clip_range"):  # clamped before the KL penalty (NaN stays NaN)
            rewards = rewards.clamp(*d["reward_clip_range"])
        rewards = rewards - beta * (old - ref)
        grouped = rewards.view(-1, k)
        counts = (~torch.isnan(grouped)).sum(1, keepdim=True)
        baselines = (torch.nansum(grouped, 1, keepdim=True) - grouped) / (counts - 1)
        adv = rewards - baselines.view(-1)
        if d["normalize"]:
            adv = (adv - torch.nanmean(adv)) / (nanstd(adv) + 1e-4)
        adv = torch.nan_to_num(adv, nan=0.0)
    coef_1 = torch.exp(pi - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    out["old_logps"] = pi.detach()
    out["clipped"] = [((coef_1 < 1 - eps_low) & (adv < 0)).sum().item(),
                      ((coef_1 > 1 + eps_high) & (adv > 0)).sum().item()]
    return -torch.min(coef_1 * adv, coef_2 * adv).mean()


def token_logps(logits, labels):
    """Each position's log-prob of the next labelled token, and the mask of those."""
    logp = torch.log_softmax(logits[:, :-1], -1)
    target = labels[:, 1:]
    return (logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1),
            (target != -100).float())


def grpo_loss(case, logits, labels, ref, out, old):
    """TRL 1.16 GRPOTrainer: the advantages as _generate_and_score_completions computes them
    (each reward less its group's mean, divided by the group's or the batch's nanstd, Bessel's,
    + 1e-4, or by nothing), and _compute_loss's clipped objective on the per-token log-probs,
    whose old log-probs are the sampling policy's (old: a generation's first step's, under
    num_iterations > 1; None: this forward's, detached, the ratio 1) plus, with beta > 0, beta
    times the per-token k3 KL to the reference (ref: its per-token log-probs) times the ratio
    (use_bias_correction_kl, TRL's default), aggregated by loss_type over the completion mask;
    cispo's and sapo's policy terms in place of the clipped one, and delta's two-sided cap; luspo's
    sum over a completion's tokens (GSPO's loss scaled by its length); the KL without the ratio
    where bias_correction_kl is False.
    out gets the log-probs (old_logps) and the tokens clipped low and high (clipped)."""
    d = case["grpo"]
    k, beta = d["generations"], d.get("beta", 0.0)
    eps_low = d.get("epsilon", 0.2)
    eps_high = d.get("epsilon_high", eps_low)
    tok, mask = token_logps(logits / case.get("temperature", 1.0), labels)
    logp = torch.log_softmax(logits[:, :-1] / case.get("temperature", 1.0), -1)
    entropies = -(torch.exp(logp) * logp).sum(-1)  # trl's entropy_from_logits
    old = tok.detach() if old is None else old
    rewards = case_rewards(case)  # nan-aware: a NaN reward is a completion none scored
    if d["scale"] == "generation":  # multi_objective_aggregation normalize_then_sum's sums
        adv = (rewards - torch.nanmean(rewards)) / (nanstd(rewards) + 1e-4)
    else:
        mean = torch.nanmean(rewards.view(-1, k), dim=1).repeat_interleave(k)
        std = (nanstd(rewards.view(-1, k), dim=1).repeat_interleave(k) if d["scale"] != "batch"
               else nanstd(rewards).expand_as(rewards))
        adv = rewards - mean
        if d["scale"] != "none":
            adv = adv / (std + 1e-4)
    adv = torch.nan_to_num(adv, nan=0.0).unsqueeze(1)
    log_ratio = tok - old
    sequence = d.get("importance_sampling_level") == "sequence"  # GSPO: a row's mean, (B, 1)
    if sequence:
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_ratio)
    counted = 1.0 if sequence else mask  # TRL's clip ratio: over rows at sequence level
    if d["loss"] == "cispo":  # the ratio capped at epsilon_high, detached, times the log-prob
        per_token = -torch.clamp(coef_1, max=eps_high).detach() * adv * tok
        low, high = torch.zeros_like(coef_1), (coef_1 > eps_high) & (adv > 0)
    elif d["loss"] == "vespo":  # a row's gamma weight of its summed log-ratio, detached, times lp
        with torch.no_grad():
            seq = (torch.clamp(tok - old, -20.0, 20.0) * mask).sum(-1, keepdim=True)
            log_w = torch.clamp(seq, math.log(1e-8), 20.0)
            pos = adv >= 0
            k = torch.where(pos, 2.0, 3.0)
            lam = torch.where(pos, 3.0, 2.0).clamp(min=1e-4)
            phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
        per_token = -phi * adv * tok
        low = high = torch.zeros_like(coef_1)
    elif d["loss"] == "sapo":  # the ratio's sigmoid, its temperature by the advantage's sign
        tau = torch.where(adv > 0, d.get("sapo_pos", 1.0), d.get("sapo_neg", 1.05))
        per_token = -torch.sigmoid(tau * (coef_1 - 1)) * 4 / tau * adv
        low = high = torch.zeros_like(coef_1)
    else:
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        capped = torch.clamp(coef_1, max=d["delta"]) if d.get("delta") else coef_1  # two-sided
        per_token = -torch.min(capped * adv, coef_2 * adv)
        low, high = (capped < 1 - eps_low) & (adv < 0), (capped > 1 + eps_high) & (adv > 0)
    if d.get("off_policy_mask"):  # get_off_policy_mask: the policy term of far-drifted losers off
        drift = (((old - tok.detach()) * mask).sum(-1, keepdim=True)
                 / mask.sum(-1, keepdim=True).clamp(min=1.0))
        keep = (adv >= 0) | (drift <= d["off_policy_mask"])
        print("  off-policy mask: rows' drift", [round(x, 5) for x in drift.view(-1).tolist()],
              "kept", keep.view(-1).tolist(), file=sys.stderr)
        per_token = per_token * keep.to(per_token.dtype)
    effective = mask
    if d.get("top_entropy_quantile", 1.0) < 1.0:  # get_high_entropy_mask
        cut = torch.quantile(entropies[mask.bool()].detach().float(),
                             1 - d["top_entropy_quantile"])
        high_entropy = ((entropies * mask).detach() >= cut) & mask.bool()
        print("  entropy mask: threshold", round(cut.item(), 5), "kept",
              int(high_entropy.sum().item()), "of", int(mask.sum().item()), file=sys.stderr)
        per_token = per_token * high_entropy
        effective = mask * high_entropy
    out["old_logps"] = tok.detach()
    out["clipped"] = [(low * counted).sum().item(), (high * counted).sum().item()]
    bonus = 0.0
    if d.get("entropy_coef"):  # the entropy bonus over the tokens the policy term trains
        bonus = d["entropy_coef"] * (entropies * effective).sum() / effective.sum().clamp(min=1.0)
    if beta:
        kl = torch.exp(ref - tok) - (ref - tok) - 1
        per_token = per_token + beta * kl * (coef_1 if d.get("bias_correction_kl", True) else 1)
    if d["loss"] == "luspo":  # each completion's sum, then the mean over rows
        return (per_token * mask).sum(-1).mean() - bonus
    if d["loss"] in ("grpo", "sapo"):
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() - bonus
    if d["loss"] == "dr_grpo":
        return (per_token * mask).sum() / (per_token.size(0) * d["max_completion"]) - bonus
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0) - bonus  # dapo, cispo, vespo; bnpo


def forward(case, model, batch, out, ref, old=None):
    """The loss of one step; out gets the logits (and the preference tasks' scores; GRPO's
    log-probs and clip counts, old its sampling policy's log-probs)."""
    ids, mask, labels = batch
    task = case.get("task")
    if task == "dpo":
        logits, pi, count = seq_logps(model, ids, mask, labels)
        out.update(logits=logits, logps=pi, ref_logps=ref)
        return dpo_loss(case, pi, ref, count)
    if task == "rloo":
        logits, pi, _ = seq_logps(model, ids, mask, labels, case.get("temperature", 1.0))
        out.update(logits=logits, logps=pi, ref_logps=ref)
        return rloo_loss(case, pi, ref, out, old)
    if task == "grpo":
        logits = model(input_ids=ids, attention_mask=mask).logits
        out.update(logits=logits)
        return grpo_loss(case, logits, labels, ref, out, old)
    if task == "reward":
        r = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
        out.update(logits=r)
        return -torch.nn.functional.logsigmoid(r[0::2] - r[1::2]).mean()
    res = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.update(logits=res.logits)
    return res.loss


M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def mix32(x):
    """rng.h's rng_mix32."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def site_seed(layer, site):
    """model.c's model_site: rng.h's rng_hash(0xD20F, layer * 16 + site); the step's seed is 0."""
    z = (0xD20F + 0x9E3779B97F4A7C15 * (layer * 16 + site + 1)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


# llama.c's dropout sites of a layer's linears (its SITE_ enum)
LLAMA_SITES = dict(q_proj=0, k_proj=1, v_proj=2, o_proj=4, gate_proj=5, up_proj=6, down_proj=7)


class LoraftDropout(torch.nn.Module):
    """LoRA's dropout with loraft's mask (rng.h's rng_row_dropout of x's row b*T + t and column
    k), in place of peft's nn.Dropout, whose draws loraft cannot repeat."""

    def __init__(self, seed, p):
        super().__init__()
        self.seed, self.p = seed, p

    def forward(self, x):
        rows, cols = x.shape[0] * x.shape[1], x.shape[-1]
        p32 = np.float32(self.p)
        cut = int(p32 * np.float32(65536.0) + np.float32(0.5))
        keep = np.float32(1.0) / (np.float32(1.0) - p32)
        mult = np.zeros((rows, cols), dtype=np.float32)
        for n in range(rows):
            h = mix32((n * 0x9E3779B9 + self.seed) & M32)
            key = mix32(h ^ (self.seed >> 32) ^ (n >> 32))
            for k in range(cols):
                draw = mix32((key + (k >> 1) * 0x9E3779B9) & M32)
                bits = draw >> 16 if k & 1 else draw & 0xFFFF
                mult[n, k] = 0.0 if bits < cut else keep
        return x * torch.from_numpy(mult).view(x.shape)


def loraft_dropouts(model, p):
    """Every adapted linear's lora_dropout made LoraftDropout with its layer's and site's seed."""
    for name, module in model.named_modules():
        if hasattr(module, "lora_dropout") and "default" in module.lora_dropout:
            layer = int(name.split(".layers.")[1].split(".")[0])
            seed = site_seed(layer, LLAMA_SITES[name.rsplit(".", 1)[1]])
            module.lora_dropout["default"] = LoraftDropout(seed, p)


def wrap(model, case):
    if case["strategy"] == "lora":
        cfg = LoraConfig(task_type="CAUSAL_LM" if causal_lm(case) else "SEQ_CLS", r=case["r"],
                         lora_alpha=case["alpha"],
                         lora_dropout=case.get("lora_dropout", 0.0),
                         target_modules=case["targets"],
                         use_rslora=case["rslora"],
                         init_lora_weights=case.get("init_lora_weights", False),
                         fan_in_fan_out=case.get("fan_in_fan_out", False),
                         use_dora=case.get("dora", False),
                         rank_pattern=case.get("rank_pattern", {}),
                         alpha_pattern=case.get("alpha_pattern", {}),
                         layers_to_transform=case.get("layers_to_transform"),
                         layers_pattern=case.get("layers_pattern"),
                         exclude_modules=case.get("exclude_modules"),
                         trainable_token_indices=case.get("trainable_token_indices"),
                         bias=case.get("bias", "none"))
        torch.manual_seed(11)
        model = get_peft_model(model, cfg)
        if "lora_dropout" in case:
            loraft_dropouts(model, case["lora_dropout"])
        jitter = case.get("magnitude_jitter", 0.0)
        for n, p in model.named_parameters():
            if jitter and "lora_magnitude_vector" in n:
                with torch.no_grad():
                    p.mul_(1 + jitter * (2 * torch.rand(p.shape) - 1))
        return model
    if case["strategy"] == "tokens":  # peft's TrainableTokens method, no LoRA
        cfg = TrainableTokensConfig(token_indices=case["token_indices"],
                                    target_modules=case.get("target_modules"))
        return get_peft_model(model, cfg)
    if case["strategy"] == "head":
        body = getattr(model, model.base_model_prefix)
        for p in body.parameters():
            p.requires_grad_(False)
    return model


def run_case(case, model_dir, batch):
    auto = AutoModelForCausalLM if causal_lm(case) else AutoModelForSequenceClassification
    extra = dict(num_labels=1) if case.get("task") == "reward" else {}
    if "pad_token_id" in case:  # the embedding's padding_idx too
        extra["pad_token_id"] = case["pad_token_id"]
    model = auto.from_pretrained(model_dir, dtype=torch.float32, **extra)
    model = wrap(model, case)
    model.eval()  # no dropout: the comparison is exact up to float rounding
    if "lora_dropout" in case:  # but for LoRA's, with loraft's masks (the model has no other)
        model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # peft's LoRA draws, and a head that transformers initialised because the checkpoint has none
    out = {"init": {c_name(n): encode(p, zeros=True) for n, p in named
                    if "lora_" in n or (("classifier" in n or "score" in n) and p.numel() <= 4096)}}
    ref = None
    temperature = case.get("temperature", 1.0)  # RL's: the reference's log-probs too
    if case.get("task") in ("dpo", "rloo"):
        with model.disable_adapter(), torch.no_grad():
            ref = seq_logps(model, *batch, temperature)[1]
    if case.get("grpo", {}).get("beta"):  # per token
        with model.disable_adapter(), torch.no_grad():
            ids, mask, labels = batch
            logits = model(input_ids=ids, attention_mask=mask).logits
            ref = token_logps(logits / temperature, labels)[0]
    if "loraplus_lr_ratio" in case:  # peft's own grouping (the same decay rule as below)
        opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=ADAMW["lr"],
                                        loraplus_lr_ratio=case["loraplus_lr_ratio"],
                                        loraplus_weight_decay=ADAMW["weight_decay"],
                                        betas=ADAMW["betas"], eps=ADAMW["eps"], foreach=False)
    else:  # HF Trainer's grouping: no decay on biases and norm weights (LayerNorm, RMSNorm;
        # GPT-2's ln_1, ln_2, ln_f)
        def no_wd(n):
            return n.endswith("bias") or "norm" in n.lower() or ".ln_" in n
        decay = [p for n, p in named if not no_wd(n)]
        no_decay = [p for n, p in named if no_wd(n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                                foreach=False)
    old = None  # RL's sampling policy's log-probs: the first step's, num_iterations > 1
    iterations = case.get("grpo", case.get("rloo", {})).get("iterations", 1)
    for step in range(STEPS):
        opt.zero_grad()
        res = {}
        loss = forward(case, model, batch, res, ref, old)
        loss.backward()
        first_logps = res.pop("old_logps", None)
        if step == 0 and iterations > 1:
            old = first_logps
        if "clipped" in res:  # the last step's
            out["clipped"] = res.pop("clipped")
        if step == 0:
            out.update({k: encode(v) for k, v in res.items()})
            out["loss"] = loss.item()
            out["grads"] = {c_name(n): encode(p.grad) for n, p in named}
            out["grad_norm"] = torch.nn.utils.clip_grad_norm_([p for _, p in named],
                                                              ADAMW["max_grad_norm"]).item()
        else:
            torch.nn.utils.clip_grad_norm_([p for _, p in named], ADAMW["max_grad_norm"])
        opt.step()
    out["after"] = {c_name(n): encode(p) for n, p in named}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loraft", default=os.path.join(ROOT, "build", "loraft"))
    ap.add_argument("--vocab", default=VOCAB)
    ap.add_argument("--model", help="a real HF checkpoint directory instead of the tiny ones")
    ap.add_argument("--out", help="output file for --model")
    ap.add_argument("--case", action="append", help="only this case (repeatable), e.g. llama_dpo")
    args = ap.parse_args()
    if not os.path.isdir(args.vocab):
        sys.exit(f"make-goldens: vocabulary directory {args.vocab} not found")
    torch.set_num_threads(2)
    jobs = []
    if args.model:
        with open(os.path.join(args.model, "config.json")) as f:
            cfg = json.load(f)
        real = dict(name="real", init=None, strategy="lora", r=4, alpha=32.0, rslora=False,
                    targets=["q_lin"] if cfg["model_type"] == "distilbert" else ["query", "value"])
        jobs.append((real, args.model, args.out or "/tmp/loraft-golden-real.json"))
    else:
        for case in CASES:
            if args.case and case["name"] not in args.case:
                continue
            d = tempfile.mkdtemp(prefix="loraft-golden-")
            vocab = os.path.join(TOKENIZERS, case["vocab"]) if "vocab" in case else args.vocab
            subprocess.run([args.loraft, "init", *case["init"], "--vocab-from", vocab,
                            "--out", d], check=True, stdout=subprocess.DEVNULL)
            jobs.append((case, d, os.path.join(ROOT, "tests", "golden", f"model_{case['name']}.json")))
    for case, model_dir, path in jobs:
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        num_labels = len(cfg.get("id2label", {"0": 0, "1": 1}))
        batch = make_batch(cfg["vocab_size"], num_labels, seed=3, case=case)
        res = run_case(case, model_dir, batch)
        golden = {
            "case": {k: v for k, v in case.items()},
            "adamw": dict(ADAMW, betas=list(ADAMW["betas"]), steps=STEPS),
            "input_ids": batch[0].flatten().tolist(),
            "attention_mask": batch[1].flatten().tolist(),
            "labels": batch[2].flatten().tolist(),
            "shape": list(batch[0].shape),
            **res,
        }
        with open(path, "w") as f:
            json.dump(golden, f, separators=(",", ":"))
        print(f"wrote {path} ({os.path.getsize(path)} bytes): loss {res['loss']:.6f}")


if __name__ == "__main__":
    main()
