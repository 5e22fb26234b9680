/* fuzz_gguf.c: libFuzzer target for the GGUF reader. Each input is parsed as a whole file
 * image (gguf_parse). When it is accepted, every property the reader promises is checked:
 * each tensor's bytes lie inside the input and match its type and dims; every key answers
 * each typed getter with a value or a clean error; every tensor of a type loraft handles
 * dequantises (AddressSanitizer sees any read outside a block); the architecture config and
 * the HF names of all tensors are derived, and a Q/K tensor of the right shape un-permutes.
 * Seeds: tests/fuzz/corpus/gguf/ (tiny Llama / GPT-2 files, every value type, nested arrays,
 * all block formats). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where touched values go, so the reads cannot be optimised away. */
static volatile unsigned sink;

static void touch_kv(const Gguf *g, const GgufKV *kv) {
    LfError err;
    uint32_t u;
    int32_t i;
    float f;
    int b;
    const GgufStr *s;
    size_t n;
    unsigned sum = 0;
    sum += gguf_get_u32(g, kv->key, &u, &err) == 0;
    sum += gguf_get_i32(g, kv->key, &i, &err) == 0;
    sum += gguf_get_f32(g, kv->key, &f, &err) == 0;
    sum += gguf_get_bool(g, kv->key, &b, &err) == 0;
    if (gguf_get_str(g, kv->key, &s, &err) == 0) sum += s->s[s->len] == '\0';
    if (gguf_get_arr_str(g, kv->key, &s, &n, &err) == 0)
        for (size_t j = 0; j < n; j++) FUZZ_ASSERT(s[j].s[s[j].len] == '\0');
    if (gguf_get_arr_len(g, kv->key, &n, &err) == 0) {
        FUZZ_ASSERT(n == kv->n);
        int32_t *ints = malloc((n + 1) * sizeof *ints);
        float *floats = malloc((n + 1) * sizeof *floats);
        FUZZ_ASSERT(ints && floats);
        sum += gguf_get_arr_i32(g, kv->key, ints, n, &err) == 0;
        sum += gguf_get_arr_f32(g, kv->key, floats, n, &err) == 0;
        free(ints);
        free(floats);
    }
    sink += sum;
}

static void touch_tensor(const Gguf *g, const GgufTensor *t, const uint8_t *data, size_t size) {
    const uint8_t *p = t->data;
    FUZZ_ASSERT(t->nbytes == 0 || (p >= data && p + t->nbytes <= data + size));
    int64_t numel = gguf_numel(t);
    FUZZ_ASSERT((double)numel / quant_block_elems(t->type) * quant_block_bytes(t->type) ==
                (double)t->nbytes); /* in doubles: no wrap-around hides an overflow */
    int64_t shape[GGUF_MAX_DIMS];
    int nd = gguf_shape_hf(t, shape);
    float *out = malloc((size_t)numel * sizeof *out + 1);
    FUZZ_ASSERT(out);
    LfError err;
    int rc = gguf_read_f32(g, t->name, nd, shape, out, &err);
    FUZZ_ASSERT((rc == 0) == quant_can_dequantize(t->type));
    char name[GGUF_MAX_NAME + 64];
    GgufFix fix;
    if (rc == 0 && gguf_hf_name("llama", t->name, name, sizeof name, &fix, &err) == 0 &&
        fix != GGUF_FIX_NONE && nd == 2 && shape[0] % 2 == 0) {
        float *hf = malloc((size_t)numel * sizeof *hf + 1);
        FUZZ_ASSERT(hf);
        FUZZ_ASSERT(gguf_unpermute_rows(out, hf, shape[0], shape[1], 1, &err) == 0);
        free(hf);
    }
    char back[GGUF_MAX_NAME]; /* and the way back: on the HF name, and on the file's own */
    if (gguf_hf_name("gpt2", t->name, name, sizeof name, &fix, &err) == 0)
        sink += gguf_name_of("gpt2", name, back, sizeof back, &fix, &err) == 0;
    sink += gguf_name_of("llama", t->name, back, sizeof back, &fix, &err) == 0;
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Gguf g;
    LfError err;
    if (gguf_parse(&g, data, size, "fuzz-input", &err) != 0) return 0;
    FUZZ_ASSERT(g.data_offset % g.alignment == 0 && (g.n_tensors == 0 || g.data_offset <= size));
    for (int i = 0; i < g.n_kvs; i++) {
        FUZZ_ASSERT(gguf_find_kv(&g, g.kvs[i].key) == &g.kvs[i]); /* keys are unique */
        touch_kv(&g, &g.kvs[i]);
    }
    for (int i = 0; i < g.n_tensors; i++) {
        FUZZ_ASSERT(gguf_find_tensor(&g, g.tensors[i].name) == &g.tensors[i]);
        touch_tensor(&g, &g.tensors[i], data, size);
    }
    GgufArch a;
    sink += gguf_arch(&g, &a, &err) == 0;
    gguf_close(&g);
    return 0;
}
