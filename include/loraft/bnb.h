/* bnb.h: bitsandbytes' 4-bit weights in a Hugging Face checkpoint, as transformers saves a model
 * loaded with BitsAndBytesConfig(load_in_4bit=True) (QLoRA's bases; the "-bnb-4bit" models).
 *
 * A Linear weight W [rows, cols] is flattened and cut into blocks of `blocksize` values; each block
 * keeps its absmax, each value the 4-bit index of its nearest code to value / absmax. Stored as
 * tensors beside W's name N:
 *   N                                      U8 [numel / 2, 1]: values 2k and 2k + 1 in the high and
 *                                          low nibble of byte k
 *   N.quant_map                            F32 [16]: the code (NF4's, checked)
 *   N.absmax                               F32 [blocks], or with double quantisation U8 [blocks]:
 *   N.nested_absmax, N.nested_quant_map    F32 [blocks / nested_blocksize], F32 [256]: absmax =
 *                                          nested_quant_map[q] * nested_absmax[b / nbs] + offset
 *   N.quant_state.bitsandbytes__nf4        U8: JSON {"quant_type", "blocksize", "shape",
 *                                          "nested_blocksize", "nested_offset", ...}
 * Read here into bitsandbytes' own values: dequantize_4bit's f32, bit for bit
 * (tests/test_quant_bnb.sh), or NF4 blocks (quant.h) holding them, where the blocks are 64 values
 * along rows. Only NF4: FP4 (the other quant_type) is refused. */
#pragma once
#include <stdint.h>

#include "loraft/error.h"
#include "loraft/safetensors.h"

typedef struct BnbWeight {
    int64_t rows, cols;
    int64_t blocksize, n_blocks;
    const uint8_t *packed; /* (rows * cols + 1) / 2 bytes, in the checkpoint's mapping */
    float *absmax;         /* each block's absmax, double quantisation undone */
} BnbWeight;

/* 1 when tensor `name` of st is a bitsandbytes 4-bit weight (it has a quant_state). */
int bnb_is_quantised(const StShards *st, const char *name);

/* Opens weight `name` of st, which must be [rows, cols]: checks every tensor of it and undoes the
 * double quantisation. On failure w is left closed. */
int bnb_open(BnbWeight *w, const StShards *st, const char *name, int64_t rows, int64_t cols,
             LfError *err);
void bnb_close(BnbWeight *w); /* a zeroed or closed w is fine */

/* out[rows * cols] = the values bitsandbytes' dequantize_4bit gives (code * absmax, in f32). */
void bnb_dequantize(const BnbWeight *w, float *out);

/* 1 when the weight is whole NF4 blocks of 64 along its rows (blocksize 64, cols a multiple of
 * 64); then bnb_nf4_blocks writes them to out (rows * cols / 64 blocks of 36 bytes). */
int bnb_has_nf4_blocks(const BnbWeight *w);
void bnb_nf4_blocks(const BnbWeight *w, uint8_t *out);

/* The same, from weight `name`'s quant_state alone (checked; -1 with err set), without reading
 * its blocks: what model.base_dtype q decides the storage from before loading. */
int bnb_keeps_blocks(const StShards *st, const char *name, int64_t rows, int64_t cols,
                     LfError *err);
