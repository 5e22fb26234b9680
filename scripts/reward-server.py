#!/usr/bin/env python3
"""reward-server.py FUNC [--conversational]: serves a Python reward function to loraft's GRPO and
RLOO as train.reward_command, so that any function written for TRL's GRPOTrainer scores loraft's
completions, e.g.

    "reward_funcs": ["command"],
    "reward_command": "python3 scripts/reward-server.py my_rewards.py:accuracy"
    "reward_command": "python3 scripts/reward-server.py trl.rewards:accuracy_reward --conversational"

FUNC is FILE.py:NAME or MODULE:NAME (a module on the Python path, e.g. trl.rewards once TRL is
installed). For each batch loraft writes one line of JSON, {"prompts": [...], "completions":
[...], "completion_ids": [[...]], and each other field of the prompts' records as a list}; the
function is called as TRL calls it, func(prompts=..., completions=..., completion_ids=...,
**other_fields), and its list of numbers or None (no reward) is written back as one line.
--conversational passes each completion as TRL does for chat data, [{"role": "assistant",
"content": text}] (TRL's built-ins read completion[0]["content"]). Errors go to stderr and end
the program, which stops loraft's run with its message."""
import argparse
import importlib
import importlib.util
import json
import math
import os
import sys


def load(spec):
    where, _, name = spec.rpartition(":")
    if not where or not name:
        sys.exit(f"reward-server.py: {spec!r} is not FILE.py:NAME or MODULE:NAME")
    if where.endswith(".py"):
        if not os.path.exists(where):
            sys.exit(f"reward-server.py: {where}: no such file")
        mod_spec = importlib.util.spec_from_file_location("user_rewards", where)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    func = getattr(module, name, None)
    if not callable(func):
        sys.exit(f"reward-server.py: {where} has no function {name}")
    return func


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("func", help="FILE.py:NAME or MODULE:NAME")
    ap.add_argument("--conversational", action="store_true",
                    help="completions as [{'role': 'assistant', 'content': text}], as TRL's")
    args = ap.parse_args()
    func = load(args.func)
    for line in sys.stdin:
        req = json.loads(line)
        kwargs = {k: v for k, v in req.items() if k not in ("prompts", "completions")}
        completions = req["completions"]
        if args.conversational:
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        rewards = func(prompts=req["prompts"], completions=completions, **kwargs)
        out = [None if r is None or (isinstance(r, float) and math.isnan(r)) else float(r)
               for r in rewards]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
