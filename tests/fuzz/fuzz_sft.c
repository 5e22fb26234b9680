/* fuzz_sft.c: libFuzzer target for SFT records (sft_data.h). The input is a JSONL file, loaded
 * with the smollm2 chat template and with a prompt template, one example per row and packed,
 * through fuzz_util.h's byte-level tokenizer (its <|endoftext|> the EOS). On success every row
 * holds 1..max_length tokens, every label is -100 or its token's id, and every row has an answer
 * label after its first position; on failure nothing is held and the error says why. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/sft_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LEN = 24 };

static void check(const char *path, const char *prompt_template, int pack) {
    TextTokenizer *tok = fuzz_byte_tokenizer();
    ChatTemplate chat;
    SftFormat f;
    LfError err;
    FUZZ_ASSERT(chat_template_by_name("smollm2", &chat, &err) == 0);
    FUZZ_ASSERT(sft_format_init(&f, &chat, prompt_template, tok, -1, &err) == 0);
    SftSource src = {.path = path};
    LmSet s;
    if (sft_load(&s, &src, tok, &f, MAX_LEN, pack, &err)) {
        FUZZ_ASSERT(s.rows.n == 0 && s.token_labels == NULL && err.msg[0]);
        return;
    }
    FUZZ_ASSERT(s.rows.n > 0 && s.rows.max_len <= MAX_LEN && s.n_predicted > 0);
    for (int i = 0; i < s.rows.n; i++) {
        int64_t lo = s.rows.offsets[i], len = s.rows.offsets[i + 1] - lo;
        int answer = 0;
        FUZZ_ASSERT(len >= 1 && len <= MAX_LEN);
        for (int64_t t = 0; t < len; t++) {
            int32_t y = s.token_labels[lo + t];
            FUZZ_ASSERT(y == LM_IGNORE || y == s.rows.ids[lo + t]);
            answer |= t > 0 && y >= 0;
        }
        FUZZ_ASSERT(answer);
    }
    lm_set_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.jsonl", data, size);
    check(path, NULL, 0);
    check(path, NULL, 1);
    check(path, "Q: {instruction} {input}\nA: {output}", 0);
    remove(path);
    return 0;
}
