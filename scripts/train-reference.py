#!/usr/bin/env python3
"""The same fine-tuning run as `loraft train --config FILE`, done by transformers' Trainer +
peft, to compare accuracy (and wall time) with loraft. Reads loraft's JSON config (the keys
it uses: model.model, data.*, lora.*, train.*) so both sides train the same thing.

    scripts/train-reference.py configs/imdb-minilm-lora.json [--threads 2]

Needs torch, transformers, peft (pip); not a dependency of loraft.
"""
import argparse
import json
import time

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, Trainer, TrainingArguments)


def load_jsonl(path, limit):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return rows[:limit] if limit else rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    m, d, lo, tr = cfg["model"], cfg["data"], cfg.get("lora", {}), cfg.get("train", {})
    torch.set_num_threads(a.threads)
    labels = m.get("labels", ["LABEL_0", "LABEL_1"])
    tok = AutoTokenizer.from_pretrained(m["model"])
    tok.truncation_side = d.get("truncation_side", "right")
    max_len = d.get("max_length", 512)

    def prep(rows):  # a list of feature dicts is all Trainer needs
        enc = tok([r[d.get("text_column", "text")] for r in rows], truncation=True, max_length=max_len)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": int(r[d.get("label_column", "label")])} for i, r in enumerate(rows)]

    train = prep(load_jsonl(d["train_file"], d.get("train_limit", 0)))
    val = prep(load_jsonl(d["validation_file"], d.get("validation_limit", 0)))
    model = AutoModelForSequenceClassification.from_pretrained(
        m["model"], num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)})
    strategy = lo.get("strategy", "lora")
    if strategy == "lora":
        model = get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", r=lo.get("r", 8), lora_alpha=lo.get("alpha", 8),
            lora_dropout=lo.get("dropout", 0.0), target_modules=lo.get("target_modules"),
            use_rslora=lo.get("use_rslora", False)))
        model.print_trainable_parameters()
    elif strategy == "head":
        for p in getattr(model, model.base_model_prefix).parameters():
            p.requires_grad_(False)

    def metrics(ev):
        pred = np.argmax(ev.predictions, -1)
        acc = float((pred == ev.label_ids).mean())
        tp = int(((pred == 1) & (ev.label_ids == 1)).sum())
        f1 = 2 * tp / max(1, int((pred == 1).sum()) + int((ev.label_ids == 1).sum()))
        return {"accuracy": acc, "f1": f1}

    bs = tr.get("batch_size", 8)
    args = TrainingArguments(
        output_dir="/tmp/loraft-reference", learning_rate=tr.get("learning_rate", 5e-5),
        per_device_train_batch_size=bs, per_device_eval_batch_size=tr.get("eval_batch_size") or 2 * bs,
        num_train_epochs=tr.get("num_epochs", 3), weight_decay=tr.get("weight_decay", 0.0),
        warmup_steps=tr.get("warmup_steps") or tr.get("warmup_ratio", 0),  # v5: a float < 1 is a ratio
        lr_scheduler_type=tr.get("lr_scheduler", "linear"),
        max_grad_norm=tr.get("max_grad_norm", 1.0), seed=tr.get("seed", 42),
        gradient_accumulation_steps=tr.get("gradient_accumulation_steps", 1),
        eval_strategy="epoch", save_strategy="no", logging_steps=tr.get("logging_steps", 10),
        report_to=[], use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      data_collator=DataCollatorWithPadding(tok), compute_metrics=metrics)
    before = trainer.evaluate()
    print(f"before training: eval_loss {before['eval_loss']:.4f}  accuracy {before['eval_accuracy']:.4f}  f1 {before['eval_f1']:.4f}")
    t0 = time.time()
    trainer.train()
    for h in trainer.state.log_history:
        if "eval_loss" in h:
            print(f"epoch {h['epoch']:.2f}: eval_loss {h['eval_loss']:.4f}  accuracy {h['eval_accuracy']:.4f}  f1 {h['eval_f1']:.4f}")
    print(f"reference done in {time.time() - t0:.0f} s (training and per-epoch evaluation)")


if __name__ == "__main__":
    main()
