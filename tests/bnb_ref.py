"""bitsandbytes' side of tests/test_quant_bnb.sh (the venv of scripts/setup-python.sh).

save SRC OUT DQ TYPE   the checkpoint SRC loaded by transformers in 4 bits (TYPE nf4 or fp4, double
                       quantisation when DQ is 1) and saved to OUT; OUT/ref.safetensors holds
                       dequantize_4bit's f32 of each projection
quantise SRC REF       REF holds dequantize_4bit(quantize_4bit(W)) of SRC's projections (NF4 in
                       blocks of 64), the values base_dtype nf4 must give
check MERGED REF [ADAPTER]
                       MERGED's projections are REF's, bit for bit, but those ADAPTER adapts: REF +
                       scale * B A, within 1e-6 of the largest value
"""
import json
import sys

import numpy as np
import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
from safetensors.numpy import load_file, save_file


def projections(tensors):
    return sorted(k for k in tensors if k.endswith("_proj.weight"))


def save(src, out, dq, qtype):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=qtype,
                           bnb_4bit_use_double_quant=dq == "1",
                           bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(src, quantization_config=q, device_map="cpu",
                                                 dtype=torch.float32)
    model.save_pretrained(out)
    ref = {name + ".weight": F.dequantize_4bit(m.weight.data, m.weight.quant_state).float().numpy()
           for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert len(ref) == 14, sorted(ref)
    save_file(ref, out + "/ref.safetensors")


def quantise(src, ref_path):
    w = load_file(src + "/model.safetensors")
    ref = {}
    for k in projections(w):
        packed, state = F.quantize_4bit(torch.from_numpy(w[k]), blocksize=64, quant_type="nf4")
        ref[k] = F.dequantize_4bit(packed, state).float().numpy()
    save_file(ref, ref_path)


def adapter_deltas(path):
    """scale * B A of each adapted weight, in float64, by its model name."""
    cfg = json.load(open(path + "/adapter_config.json"))
    ab = load_file(path + "/adapter_model.safetensors")
    deltas = {}
    for k in (k for k in ab if k.endswith("lora_A.weight")):
        name = k.removeprefix("base_model.model.").removesuffix(".lora_A.weight") + ".weight"
        b = ab[k.replace("lora_A", "lora_B")].astype(np.float64)
        deltas[name] = cfg["lora_alpha"] / cfg["r"] * (b @ ab[k].astype(np.float64))
    return deltas


def check(merged_dir, ref_path, adapter=None):
    merged, ref = load_file(merged_dir + "/model.safetensors"), load_file(ref_path)
    deltas = adapter_deltas(adapter) if adapter else {}
    names, exact = projections(merged), 0
    for name in names:
        want = ref[name]
        if name in deltas:
            err = np.abs(merged[name] - (want + deltas[name])).max() / np.abs(want).max()
            if err > 1e-6:
                sys.exit(f"FAIL: {name}: the merged weight is {err:.1e} of its largest value off")
        elif not np.array_equal(merged[name], want):
            bad = int(np.count_nonzero(merged[name] != want))
            sys.exit(f"FAIL: {name}: {bad} values differ from bitsandbytes' dequantize_4bit")
        else:
            exact += 1
    if len(names) != 14 or exact != 14 - len(deltas):
        sys.exit(f"FAIL: {len(names)} projections, {exact} exact, {len(deltas)} adapted")
    print(f"{len(names)} projections: {exact} bit for bit, {len(deltas)} within 1e-6 with B A")


if __name__ == "__main__":
    {"save": save, "quantise": quantise, "check": check}[sys.argv[1]](*sys.argv[2:])
