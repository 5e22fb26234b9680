"""lm_compat.py: what the Python halves of the language-model compatibility tests
(test_peft_compat_lm.sh, test_hf_llama_family.sh) share; they run from the repository root and
import it with sys.path.insert(0, "tests")."""
import json
import logging
import warnings

import torch
from transformers import AutoModelForCausalLM


def hf_loss(model, tok, texts, max_len):
    """loraft's eval_loss: each text alone, right-truncated, no BOS, mean over predicted tokens;
    returns (loss, tokens predicted)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t)["input_ids"][:max_len]
            if len(ids) < 2:
                continue
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0, :-1].double()
            total += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(ids) - 1
    return total / count, count


def load(path):
    """AutoModelForCausalLM in f32, and what its loading report says is wrong (missing,
    unexpected, mismatched keys, errors; empty when nothing)."""
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True,
                                                       dtype=torch.float32)
    return model, {k: v for k, v in info.items() if v}


class KeyNoise(logging.Handler):
    """`with KeyNoise() as n:` collects what peft and transformers report (as log records or
    warnings) about missing or unexpected keys inside the block into n.noise."""

    def __init__(self):
        super().__init__()
        self.msgs, self.noise = [], []

    def emit(self, record):
        self.msgs.append(record.getMessage())

    def __enter__(self):
        for name in ("peft", "transformers"):
            logging.getLogger(name).addHandler(self)
        self.caught = warnings.catch_warnings(record=True)
        self.warned = self.caught.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self.caught.__exit__(*exc)
        for name in ("peft", "transformers"):
            logging.getLogger(name).removeHandler(self)
        self.noise = [m for m in self.msgs + [str(w.message) for w in self.warned]
                      if "missing" in m.lower() or "unexpected" in m.lower()]
        return False


class Checks:
    """"ok" / "FAIL" lines prefixed with a name; agree() compares one of loraft's `eval` results
    ("loss tokens") with hf_loss's (loss, tokens) within tol; passed() says whether all held."""

    def __init__(self, prefix, tol):
        self.prefix, self.tol, self.results = prefix, tol, []

    def check(self, ok, what):
        print(("ok   " if ok else "FAIL ") + self.prefix + ": " + what)
        self.results.append(bool(ok))

    def agree(self, what, mine, theirs):
        loss, n = theirs
        diff = abs(loss - float(mine[0]))
        self.check(n == int(mine[1]) and diff <= self.tol,
                   f"{what}: loraft {float(mine[0]):.7f} vs transformers {loss:.7f} "
                   f"(|diff| {diff:.1e}, {n} tokens vs loraft's {mine[1]})")

    def passed(self):
        return all(self.results)


def family_case(argv):
    """test_hf_llama_family.sh's extra checks' first arguments, DIR VALID MAX_LEN TOL (the base
    model in DIR/model, the arch DIR's name): dir, the validation texts, max_len, the tokenizer
    and a Checks named by the arch."""
    dir, valid, max_len, tol = argv[1], argv[2], int(argv[3]), float(argv[4])
    from transformers import AutoTokenizer
    texts = [json.loads(line)["text"] for line in open(valid)]
    tok = AutoTokenizer.from_pretrained(dir + "/model")
    return dir, texts, max_len, tok, Checks(dir.rsplit("/", 1)[1], tol)
