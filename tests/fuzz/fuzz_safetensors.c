/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser.
 * Each input is parsed twice: as a raw file image, and with its 8-byte length
 * field rewritten to end the header at the input's last '}', so that mutations
 * which grow or shrink the JSON still reach the per-tensor checks instead of
 * failing on the length. When a parse succeeds, every byte of every tensor is
 * read and converted, so AddressSanitizer sees any tensor that points outside
 * the input, and every bitsandbytes 4-bit weight is read (bnb.h) as a [2, 64]
 * matrix (the corpus's bnb_nf4_dq holds one: bitsandbytes' quantize_4bit of
 * torch.randn(2, 64) under seed 1, double quantised, as Linear4bit saves it). */
#include "loraft/bnb.h"
#include "loraft/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where touched bytes go, so the reads cannot be optimised away. */
static volatile unsigned sink;

static void parse_and_touch(const uint8_t *data, size_t size) {
    SafeTensors st;
    LfError err;
    if (safetensors_parse(&st, data, size, "fuzz-input", &err) != 0) return;
    unsigned sum = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        for (size_t j = 0; j < t->nbytes; j++) sum += ((const uint8_t *)t->data)[j];
        size_t n = (size_t)st_numel(t);
        float *out = malloc(n ? n * sizeof *out : 1);
        if (out && safetensors_read_f32(&st, t->name, t->ndim, t->shape, out, &err) == 0)
            for (size_t j = 0; j < n; j++) sum += out[j] != out[j];
        free(out);
    }
    StShards shards = {.files = &st, .n = 1};
    for (int i = 0; i < st.n_tensors; i++) {
        BnbWeight w;
        float out[128];
        uint8_t blocks[2 * 36] = {0};
        if (!bnb_is_quantised(&shards, st.tensors[i].name)) continue;
        sum += bnb_keeps_blocks(&shards, st.tensors[i].name, 2, 64, &err) > 0;
        if (bnb_open(&w, &shards, st.tensors[i].name, 2, 64, &err)) continue;
        bnb_dequantize(&w, out);
        if (bnb_has_nf4_blocks(&w)) bnb_nf4_blocks(&w, blocks);
        sum += out[0] != out[127] && blocks[0] != blocks[71];
        bnb_close(&w);
    }
    sink = sum + (safetensors_metadata(&st, "format") != NULL);
    safetensors_close(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parse_and_touch(data, size);
    if (size <= 8) return 0;
    size_t end = size;
    while (end > 8 && data[end - 1] != '}') end--;
    /* An exact-size copy, so ASan catches reads one past the end. */
    uint8_t *framed = malloc(size);
    if (!framed) return 0;
    memcpy(framed, data, size);
    for (int i = 0; i < 8; i++) framed[i] = (uint8_t)((uint64_t)(end - 8) >> (8 * i));
    parse_and_touch(framed, size);
    free(framed);
    return 0;
}
