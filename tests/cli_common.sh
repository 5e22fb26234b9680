# cli_common.sh: the start the CLI end-to-end tests share, sourced first:
#   . "$(dirname "$0")/cli_common.sh" NAME TOKENIZER
# Sets bin (loraft), data (../shared/data) and vocab ($data/tokenizers/TOKENIZER: the test skips,
# exit 77, when it is absent); makes $tmp (/tmp/loraft-NAME-*, removed on exit); and the
# verdicts: fail (stop: the steps after it depend on it), ok, bad (an independent check: go on),
# finish (the last line: the counts, and the exit status).
set -euo pipefail
bin=${LORAFT_BIN:-build/loraft}
data=${LORAFT_SHARED_DATA:-../shared/data}
vocab=$data/tokenizers/$2
[ -d "$vocab" ] || { echo "SKIP: $vocab (the tokenizer of the tiny test model) is absent"; exit 77; }
tmp=$(mktemp -d "/tmp/loraft-$1-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
