#!/usr/bin/env bash
# test_cli_tokenize.sh: `loraft tokenize` end to end against golden records of
# tests/golden/tokenizer_bert_uncased.jsonl and tests/golden/bpe_gpt2.jsonl (Hugging Face
# ids; WordPiece and byte-level BPE), plus its error handling.
set -u
tok="${LORAFT_SHARED_DATA:-../shared/data}/tokenizers/bert-base-uncased"
golden=tests/golden/tokenizer_bert_uncased.jsonl
bin="${LORAFT_BIN:?LORAFT_BIN must name the loraft executable}"
if [ ! -f "$tok/vocab.txt" ]; then
    echo "SKIP: $tok is absent"
    exit 77
fi
tmp=$(mktemp -d /tmp/test_cli_tokenize.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check NAME EXPECTED_FILE ACTUAL_FILE
    if cmp -s "$2" "$3"; then
        echo "ok: $1"
    else
        echo "FAIL: $1"
        diff "$2" "$3" | head -5
        fail=1
    fi
}
ids_of() { sed -E 's/.*"ids": \[([^]]*)\].*/{"ids":[\1]}/; s/ //g'; }

# 1. plain records (no special tokens), JSONL input, texts with \u0000 included (cleaning drops
#    NUL; a reader that stops at it loses the rest of the text)
grep -v '"max_length"' "$golden" >"$tmp/plain.jsonl"
ids_of <"$tmp/plain.jsonl" >"$tmp/want"
"$bin" tokenize --tokenizer "$tok" --no-special <"$tmp/plain.jsonl" >"$tmp/got"
check "$(wc -l <"$tmp/plain.jsonl") golden texts ($(grep -c '_hex"' "$tmp/plain.jsonl") with NUL), --no-special" \
    "$tmp/want" "$tmp/got"

# 2. truncated records with [CLS]/[SEP], both sides
grep '"truncation_side"' "$golden" | grep -v '"text_pair"' >"$tmp/trunc.jsonl"
: >"$tmp/want"
: >"$tmp/got"
while IFS= read -r line; do
    n=$(sed -E 's/.*"max_length": ([0-9]+).*/\1/' <<<"$line")
    side=$(sed -E 's/.*"truncation_side": "([a-z]+)".*/\1/' <<<"$line")
    ids_of <<<"$line" >>"$tmp/want"
    "$bin" tokenize --tokenizer "$tok" --max-length "$n" --truncation-side "$side" \
        <<<"$line" >>"$tmp/got"
done <"$tmp/trunc.jsonl"
check "$(wc -l <"$tmp/trunc.jsonl") truncated golden records" "$tmp/want" "$tmp/got"

# 3. a plain-text line gives what the same text as JSON gives, [CLS]/[SEP] added
printf 'The film was <br /><br />GREAT, wasn'"'"'t it?\n' >"$tmp/text"
printf '{"text": "The film was <br /><br />GREAT, wasn'"'"'t it?"}\n' >"$tmp/json"
"$bin" tokenize --tokenizer "$tok" <"$tmp/text" >"$tmp/got"
"$bin" tokenize --tokenizer "$tok" <"$tmp/json" >"$tmp/want"
check "plain text line = JSON line" "$tmp/want" "$tmp/got"
grep -q '^{"ids":\[101,.*,102\]}$' "$tmp/got" || { echo "FAIL: no [CLS]/[SEP]"; fail=1; }

# 4. errors: bad JSON names the line, bad options exit 2
printf '{"text": "fine"}\n{"text": broken\n' | "$bin" tokenize --tokenizer "$tok" \
    >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ] && grep -q 'stdin:2: malformed JSON' "$tmp/err"; then echo "ok: bad JSON line"
else echo "FAIL: bad JSON line (rc $rc): $(cat "$tmp/err")"; fail=1; fi
printf 'bad \xff byte\n' | "$bin" tokenize --tokenizer "$tok" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ] && grep -q 'stdin:1: invalid UTF-8 at byte offset 4' "$tmp/err"; then
    echo "ok: invalid UTF-8"
else echo "FAIL: invalid UTF-8 (rc $rc): $(cat "$tmp/err")"; fail=1; fi
"$bin" tokenize --tokenizer "$tok" --truncation-side middle </dev/null 2>/dev/null
rc=$?
[ $rc -eq 2 ] && echo "ok: bad option" || { echo "FAIL: bad option gave $rc"; fail=1; }
"$bin" tokenize --tokenizer /nonexistent </dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q '/nonexistent' "$tmp/err"; then echo "ok: missing tokenizer"
else echo "FAIL: missing tokenizer (rc $rc)"; fail=1; fi
# 5. byte-level BPE (GPT-2's directory): the golden texts that fit on one plain line
gpt2="${LORAFT_SHARED_DATA:-../shared/data}/tokenizers/gpt2"
if [ -f "$gpt2/tokenizer.json" ]; then
    : >"$tmp/bpe_in"
    : >"$tmp/want"
    tail -n +2 tests/golden/bpe_gpt2.jsonl | while IFS= read -r line; do
        hex=$(sed -E 's/^\{"hex": "([0-9a-f]*)".*/\1/' <<<"$line")
        # one line of text: no newline, CR or NUL, not starting with '{', not empty
        grep -qE '^(7b|$)|^(..)*(0a|0d|00)' <<<"$hex" && continue
        printf "$(sed 's/../\\x&/g' <<<"$hex")\n" >>"$tmp/bpe_in"
        sed -E 's/.*"ids_special": \[([^]]*)\].*/{"ids":[\1]}/; s/ //g' <<<"$line" >>"$tmp/want"
    done
    "$bin" tokenize --tokenizer "$gpt2" <"$tmp/bpe_in" >"$tmp/got"
    check "$(wc -l <"$tmp/bpe_in") GPT-2 golden texts (byte-level BPE)" "$tmp/want" "$tmp/got"
    "$bin" tokenize --tokenizer "$gpt2/tokenizer.json" --no-special <"$tmp/bpe_in" >"$tmp/got"
    check "the same through tokenizer.json itself" "$tmp/want" "$tmp/got"
else
    echo "skip: $gpt2 is absent (byte-level BPE through the CLI not checked)"
fi

exit $fail
