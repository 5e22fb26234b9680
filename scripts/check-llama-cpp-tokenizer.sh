#!/usr/bin/env bash
# scripts/check-llama-cpp-tokenizer.sh LLAMA_TOKENIZE GGUF [TEXTS.jsonl]
#
# Checks that llama.cpp's own tokenizer gives loraft's ids for a GGUF file: every text of
# TEXTS.jsonl (lines with a "text" field, or the golden format of tests/golden/spm_gguf.jsonl,
# whose lines carry the text as "hex"; default that file) through `loraft tokenize --tokenizer
# GGUF` and through llama.cpp's `llama-tokenize -m GGUF -f FILE --ids --no-escape` (BOS as the
# file says, special tokens parsed), compared id for id. Fails on any difference, printing the
# first ones. For SentencePiece-style files (`tokenizer.ggml.model llama`): what `loraft init
# --arch llama --vocab-from DIR --gguf FILE` writes from a tokenizer.json (tests/golden's
# spm_legacy.json, say), or a model's own GGUF.
#
# llama-tokenize comes with llama.cpp's tree (see scripts/check-llama-cpp.sh for one from PyPI):
#   cmake -S LLAMA_CPP_SRC -B /tmp/lcp-build -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
#         -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
#   cmake --build /tmp/lcp-build -j2 --target llama-tokenize     # 20-30 minutes on 2 cores
# Environment: LORAFT_BIN (default build/loraft).
set -euo pipefail
tokenize=${1:?usage: scripts/check-llama-cpp-tokenizer.sh LLAMA_TOKENIZE GGUF [TEXTS.jsonl]}
gguf=${2:?usage: scripts/check-llama-cpp-tokenizer.sh LLAMA_TOKENIZE GGUF [TEXTS.jsonl]}
texts=${3:-tests/golden/spm_gguf.jsonl}
bin=${LORAFT_BIN:-build/loraft}
[ -x "$tokenize" ] || { echo "check-llama-cpp-tokenizer: $tokenize is not an executable" >&2; exit 1; }
[ -x "$bin" ] || { echo "check-llama-cpp-tokenizer: build $bin first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tokenize" "$gguf" "$texts" "$bin" "$tmp" <<'PY'
import json, subprocess, sys
tokenize, gguf, path, loraft, tmp = sys.argv[1:]
texts = []
for line in open(path, encoding="utf-8"):
    r = json.loads(line)
    if "text" in r or "hex" in r:
        texts.append(r["text"] if "text" in r else bytes.fromhex(r["hex"]).decode("utf-8"))
jsonl = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
out = subprocess.run([loraft, "tokenize", "--tokenizer", gguf], input=jsonl, capture_output=True)
ours = [json.loads(l)["ids"] for l in out.stdout.decode().splitlines()]
if out.returncode or len(ours) != len(texts):
    sys.exit(f"loraft tokenize failed: {out.stderr.decode()[-300:]}")
bad = 0
for t, mine in zip(texts, ours):
    with open(tmp + "/text", "w", encoding="utf-8") as f:
        f.write(t)
    r = subprocess.run([tokenize, "-m", gguf, "-f", tmp + "/text", "--ids", "--log-disable",
                        "--no-escape"], capture_output=True)
    lines = r.stdout.decode().strip().splitlines()
    theirs = json.loads(lines[-1]) if r.returncode == 0 and lines else None
    if theirs != mine:
        bad += 1
        if bad <= 5:
            print(f"differ: {t[:60]!r}: loraft {mine[:12]}, llama.cpp {theirs and theirs[:12]}")
n = sum(len(i) for i in ours)
print(f"{gguf}: {len(texts)} texts, {n} ids: {len(texts) - bad} equal llama.cpp's, {bad} differ")
sys.exit(1 if bad else 0)
PY
