"""example_rewards.py: reward functions written as TRL's GRPOTrainer takes them (keyword
arguments: prompts, completions, completion_ids and the dataset's other fields; a list of numbers
or None back), for loraft's train.reward_command through scripts/reward-server.py:

    "reward_funcs": ["command"],
    "reward_command": "python3 scripts/reward-server.py scripts/example_rewards.py:token_f1"

token_f1 scores a completion against the record's reference answer (its "output" field, as in
../shared/data/instructions/dolly_open_qa.jsonl, or "solution") by SQuAD's token F1: both
lower-cased, punctuation and articles dropped, F1 of their bags of words; None (no reward) where
the record has no reference."""
import collections
import re
import string


def _words(text):
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _f1(prediction, reference):
    pred, ref = _words(prediction), _words(reference)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if not pred or not ref or not same:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prompts, completions, output=None, solution=None, **kwargs):
    references = output if output is not None else solution
    if references is None:
        return [None] * len(completions)
    return [None if ref is None else _f1(c, ref) for c, ref in zip(completions, references)]
