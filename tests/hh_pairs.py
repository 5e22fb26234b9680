"""hh_pairs.py OUT_DIR: the preference pairs the CLI tests train on, in the HH format (a "Human:
... Assistant:" prompt; the chosen answer polite, the rejected one rude): OUT_DIR/pairs.jsonl (40
records) and OUT_DIR/heldout.jsonl (the last 8 as prompt / response records for loraft score)."""
import json, random, sys
random.seed(3)
topics = ["the garden", "my letter", "the weather", "a recipe", "the train", "my cat", "a song"]
good = ["Of course, I am glad to help with {}.", "Certainly! Here is what I know about {}.",
        "Thank you for asking about {}, happy to help."]
rude = ["No. Figure out {} yourself.", "Stop asking me about {}.", "I do not care about {}."]
with open(sys.argv[1] + "/pairs.jsonl", "w") as f, open(sys.argv[1] + "/heldout.jsonl", "w") as h:
    for i in range(40):
        t = random.choice(topics)
        rec = {"prompt": f"Human: Can you tell me about {t}?\n\nAssistant:",
               "chosen": random.choice(good).format(t), "rejected": random.choice(rude).format(t)}
        f.write(json.dumps(rec) + "\n")
        if i >= 32:  # the held-out pairs, as prompt / response records for loraft score
            for k in ("chosen", "rejected"):
                h.write(json.dumps({"prompt": rec["prompt"], "response": rec[k]}) + "\n")
