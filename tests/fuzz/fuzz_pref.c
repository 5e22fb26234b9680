/* fuzz_pref.c: libFuzzer target for preference records (pref_data.h). The input is a JSONL file,
 * loaded as pairs, as scored responses and as RLOO's prompts, with the smollm2 chat template and
 * without, through fuzz_util.h's byte-level tokenizer, then batched. On success every row holds
 * 1..max_length tokens and its prompt no more (a prompt row is all prompt, at most
 * max_prompt_length), and every batch masks exactly the padding and labels its tokens with their
 * ids or -100 (on the prompt too where the prompt is masked); on failure nothing is held and the
 * error says why. */
#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "loraft/pref_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LEN = 24, MAX_PROMPT = 8, EOS = 258 };

static void check_batches(const PrefSet *s, int mask_prompt) {
    PrefLoader l;
    LfError err;
    Batch b;
    int items = 0;
    FUZZ_ASSERT(pref_loader_init(&l, s, 3, EOS, mask_prompt, &err) == 0);
    while (pref_loader_next(&l, &b)) {
        items += b.B / s->group;
        for (int i = 0; i < b.B; i++) {
            int row = b.index[i], from = mask_prompt ? s->prompt_len[row] : 0;
            int len = (int)(s->rows.offsets[row + 1] - s->rows.offsets[row]);
            for (int t = 0; t < b.T; t++) {
                size_t c = (size_t)i * b.T + t;
                FUZZ_ASSERT(b.mask[c] == (t < len));
                FUZZ_ASSERT(b.labels[c] == (t < len && t >= from ? b.ids[c] : LM_IGNORE));
            }
        }
    }
    FUZZ_ASSERT(items == s->n_items);
    pref_loader_free(&l);
}

static void check(const char *path, PrefKind kind, int with_chat) {
    ChatTemplate chat;
    LmSpecials sp = {.eos = EOS};
    LfError err;
    PrefSet s;
    int prompts = kind == PREF_PROMPTS;
    FUZZ_ASSERT(chat_template_by_name("smollm2", &chat, &err) == 0);
    PrefSpec spec = {.path = path,
                     .kind = kind,
                     .max_length = prompts ? MAX_PROMPT + 1 : MAX_LEN,
                     .max_prompt_length = MAX_PROMPT,
                     .chat = with_chat ? &chat : NULL,
                     .sp = &sp,
                     .keep_records = prompts && with_chat};
    if (pref_set_load(&s, &spec, fuzz_byte_tokenizer(), &err)) {
        FUZZ_ASSERT(s.rows.n == 0 && s.prompt_len == NULL && err.msg[0]);
        return;
    }
    FUZZ_ASSERT(s.n_items > 0 && s.rows.n == s.n_items * s.group);
    for (int i = 0; i < s.rows.n; i++) {
        int len = (int)(s.rows.offsets[i + 1] - s.rows.offsets[i]);
        FUZZ_ASSERT(len >= 1 && len <= spec.max_length && s.prompt_len[i] <= len);
        FUZZ_ASSERT(!prompts || (s.prompt_len[i] == len && len <= MAX_PROMPT));
    }
    for (int i = 0; spec.keep_records && i < s.n_items; i++) { /* the record: its prompt */
        cJSON *rec = cJSON_Parse(s.records[i]);
        FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec, "prompt")));
        cJSON_Delete(rec);
    }
    FUZZ_ASSERT(!s.records == !spec.keep_records);
    check_batches(&s, kind == PREF_PAIRS);
    pref_set_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.jsonl", data, size);
    for (int chat = 0; chat < 2; chat++) {
        check(path, PREF_PAIRS, chat);
        check(path, PREF_SINGLE, chat);
        check(path, PREF_PROMPTS, chat);
    }
    remove(path);
    return 0;
}
