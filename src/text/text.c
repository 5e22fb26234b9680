/* text.c: picks WordPiece or BPE for a path, and reads a GGUF file's tokenizer (byte-level or
 * SentencePiece, see text.h). */
#include "loraft/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loraft/fileio.h"

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

static int is_file(const char *path) {
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode);
}

/* model.type of a tokenizer.json ("BPE", "WordPiece", ...) into type[cap]. Older files leave
 * it out, as `tokenizers` reads them untagged: the model with merges is BPE. */
static int json_model_type(const char *path, char *type, size_t cap, LfError *err) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err)) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(model, "type");
    const char *name = cJSON_IsString(t)                                   ? t->valuestring
                       : !cJSON_IsObject(model)                            ? NULL
                       : cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE"
                                                                           : "WordPiece";
    int ok = name && strlen(name) < cap;
    if (ok) strcpy(type, name);
    cJSON_Delete(root);
    return ok ? 0 : lf_fail(err, "%s: not a tokenizer.json (no model)", path);
}

/* The kind a directory or tokenizer.json file holds; for a directory, a tokenizer.json
 * decides, then vocab.json + merges.txt (BPE), then vocab.txt (WordPiece). */
static int detect_kind(const char *path, TextKind *kind, LfError *err) {
    char json[4200], type[32];
    if (is_file(path))
        snprintf(json, sizeof json, "%s", path);
    else
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
    if (is_file(json)) {
        if (json_model_type(json, type, sizeof type, err)) return -1;
        if (!strcmp(type, "BPE") || !strcmp(type, "WordPiece")) {
            *kind = !strcmp(type, "BPE") ? TEXT_BPE : TEXT_WORDPIECE;
            return 0;
        }
        return lf_fail(err, "%s: model.type '%s' is not supported (BPE or WordPiece)", json, type);
    }
    char vocab_json[4200], merges[4200];
    snprintf(vocab_json, sizeof vocab_json, "%s/vocab.json", path);
    snprintf(merges, sizeof merges, "%s/merges.txt", path);
    *kind = is_file(vocab_json) && is_file(merges) ? TEXT_BPE : TEXT_WORDPIECE;
    return 0;
}

static int open_gguf(TextTokenizer *t, const char *path, LfError *err) {
    Gguf g;
    if (gguf_open(&g, path, err)) return -1;
    int rc = bpe_from_gguf(&t->bpe, &g, err);
    gguf_close(&g);
    return rc;
}

int text_tokenizer_open(TextTokenizer *t, const char *path, LfError *err) {
    memset(t, 0, sizeof *t);
    if (ends_with(path, ".gguf")) {
        t->kind = TEXT_BPE;
        return open_gguf(t, path, err);
    }
    if (detect_kind(path, &t->kind, err)) return -1;
    if (t->kind == TEXT_BPE) return bpe_load(&t->bpe, path, err);
    if (is_file(path))
        return lf_fail(err, "%s: a WordPiece tokenizer is read from its directory", path);
    return tokenizer_load(&t->wordpiece, path, err);
}

void text_tokenizer_close(TextTokenizer *t) {
    if (t->wordpiece) tokenizer_free(t->wordpiece);
    if (t->bpe) bpe_free(t->bpe);
    memset(t, 0, sizeof *t);
}

int text_encode(const TextTokenizer *t, const char *text, size_t len, IdList *ids, LfError *err) {
    if (t->kind == TEXT_BPE) return bpe_encode(t->bpe, text, len, 0, ids, err);
    return tokenizer_encode(t->wordpiece, text, len, ids, err);
}

/* ---- GGUF ---- */

/* A token id key, -1 when absent. */
static int optional_id(const Gguf *g, const char *key, int32_t *id, LfError *err) {
    uint32_t v;
    *id = -1;
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_u32(g, key, &v, err)) return -1;
    *id = (int32_t)v;
    return 0;
}

/* A bool key, def when absent. */
static int optional_bool(const Gguf *g, const char *key, int def, int *out, LfError *err) {
    *out = def;
    return gguf_find_kv(g, key) ? gguf_get_bool(g, key, out, err) : 0;
}

/* GgufStr arrays -> the pointer and length arrays BpeArrays takes (one allocation). */
static int split_strs(const GgufStr *strs, size_t n, const char ***ptrs, size_t **lens) {
    *ptrs = malloc((n ? n : 1) * sizeof **ptrs);
    *lens = malloc((n ? n : 1) * sizeof **lens);
    if (!*ptrs || !*lens) return -1;
    for (size_t i = 0; i < n; i++) (*ptrs)[i] = strs[i].s, (*lens)[i] = strs[i].len;
    return 0;
}

int bpe_from_gguf(Bpe **out, const Gguf *g, LfError *err) {
    const GgufStr *model, *tokens, *merges = NULL, *pre = NULL;
    size_t n_tokens, n_merges = 0;
    *out = NULL;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, err)) return -1;
    int spm = !strcmp(model->s, "llama");
    if (strcmp(model->s, "gpt2") && !spm)
        return lf_fail(err,
                       "%s: tokenizer.ggml.model is '%s': only byte-level BPE ('gpt2') and "
                       "SentencePiece BPE ('llama') are supported",
                       g->path, model->s);
    if (gguf_get_arr_str(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err) ||
        ((!spm || gguf_find_kv(g, "tokenizer.ggml.merges")) &&
         gguf_get_arr_str(g, "tokenizer.ggml.merges", &merges, &n_merges, err)) ||
        (gguf_find_kv(g, "tokenizer.ggml.pre") && gguf_get_str(g, "tokenizer.ggml.pre", &pre, err)))
        return -1;
    if (n_tokens > INT32_MAX || n_merges > INT32_MAX)
        return lf_fail(err, "%s: too many tokens or merges", g->path);
    if (spm) n_merges = 0; /* llama.cpp's SPM merges by the scores alone */
    BpeArrays spec = {.n_tokens = (int32_t)n_tokens,
                      .n_merges = (int32_t)n_merges,
                      .pre = pre ? pre->s : NULL,
                      .model = model->s};
    int32_t *types = malloc(n_tokens * sizeof *types + 1);
    float *scores = spm ? malloc(n_tokens * sizeof *scores + 1) : NULL;
    const char **tok_ptrs = NULL, **merge_ptrs = NULL;
    size_t *tok_lens = NULL, *merge_lens = NULL;
    int rc = -1, space_prefix;
    if (!types || (spm && !scores) || split_strs(tokens, n_tokens, &tok_ptrs, &tok_lens) ||
        split_strs(merges, n_merges, &merge_ptrs, &merge_lens)) {
        lf_fail(err, "%s: out of memory for the tokenizer", g->path);
        goto done;
    }
    /* llama.cpp's defaults for a SentencePiece vocabulary: BOS added, " " in front */
    if ((gguf_find_kv(g, "tokenizer.ggml.token_type") &&
         gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, n_tokens, err)) ||
        (spm && gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, n_tokens, err)) ||
        optional_id(g, "tokenizer.ggml.bos_token_id", &spec.bos_id, err) ||
        optional_id(g, "tokenizer.ggml.eos_token_id", &spec.eos_id, err) ||
        optional_bool(g, "tokenizer.ggml.add_bos_token", spm, &spec.add_bos, err) ||
        optional_bool(g, "tokenizer.ggml.add_eos_token", 0, &spec.add_eos, err) ||
        optional_bool(g, "tokenizer.ggml.add_space_prefix", 1, &space_prefix, err))
        goto done;
    spec.scores = scores;
    spec.no_space_prefix = !space_prefix;
    spec.tokens = tok_ptrs, spec.token_lens = tok_lens;
    spec.merges = merge_ptrs, spec.merge_lens = merge_lens;
    spec.token_types = gguf_find_kv(g, "tokenizer.ggml.token_type") ? types : NULL;
    rc = bpe_from_arrays(out, &spec, err);
    if (rc) lf_wrap(err, "%s", g->path);
done:
    free(types), free(scores), free(tok_ptrs), free(tok_lens), free(merge_ptrs), free(merge_lens);
    return rc;
}
