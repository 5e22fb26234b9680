/* gguf.h: reader and writer for GGUF (llama.cpp's model format, versions 2 and 3), the
 * Llama / Qwen2 / GPT-2 architecture metadata in it, and the mapping of its tensors to Hugging
 * Face's names and layout.
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version u64 n_tensors u64 n_kv
 *   n_kv x   { string key, u32 value type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
 *   padding to `general.alignment` (default 32), then the data section; tensor offsets are
 *   relative to its start.
 * A string is u64 length + bytes (no NUL); an array is u32 element type, u64 count, then
 * the elements. The reader maps the file and validates everything (docs/FORMATS.md lists
 * the rules), so every GgufKV and GgufTensor it hands out lies inside the file. Dims are
 * kept in GGUF order (ne[0] is the contiguous one, ggml's convention); HF order is the
 * reverse. Not a general GGUF library: no big-endian files, no v1, no editing in place,
 * and tensors dequantise to f32 only. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"
#include "loraft/ops.h" /* ROPE_MAX_PAIRS */
#include "loraft/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 256
#define GGUF_DEFAULT_ALIGNMENT 32

/* Value types of the key-value metadata. */
typedef enum GgufType {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
} GgufType;

const char *gguf_type_name(uint32_t type); /* "UINT32", ...; "?" when unknown */
size_t gguf_type_size(uint32_t type);      /* bytes of a value; 0 for STRING, ARRAY, unknown */

/* A string from the file, copied and NUL-terminated (len excludes the NUL; a GGUF string
 * may itself contain NUL bytes). */
typedef struct GgufStr {
    const char *s;
    size_t len;
} GgufStr;

typedef struct GgufKV {
    const char *key;          /* NUL-terminated */
    GgufType type;            /* of the value */
    GgufType elem_type;       /* ARRAY: of the elements; else == type */
    uint64_t n;               /* ARRAY: element count; else 1 */
    const unsigned char *raw; /* the value's bytes in the file (ARRAY: the first element) */
    const GgufStr *strs;      /* STRING, ARRAY of STRING: the n strings; else NULL */
} GgufKV;

typedef struct GgufTensor {
    char name[GGUF_MAX_NAME];
    GgmlType type;
    int n_dims;                /* 0..4 (0: a single value) */
    int64_t ne[GGUF_MAX_DIMS]; /* GGUF order; unused dims are 1 */
    uint64_t offset;           /* in the data section */
    size_t nbytes;             /* ne[0] / block_elems * block_bytes * ne[1] * ... */
    const void *data;          /* inside the mapping; valid until gguf_close */
} GgufTensor;

typedef struct Gguf {
    char path[4096]; /* for error messages */
    void *map;       /* NULL when parsed from a caller's buffer */
    size_t map_size;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset; /* start of the data section in the file */
    GgufKV *kvs;
    int n_kvs;
    GgufTensor *tensors;
    int n_tensors;
    void *arena; /* keys and strings, one allocation */
} Gguf;

/* Maps and validates path. On failure g is left closed (safe to close again). */
int gguf_open(Gguf *g, const char *path, LfError *err);
/* Validates a whole file image in buf (len bytes); g points into buf, which must outlive
 * it. name_for_errors stands in for the path in messages. */
int gguf_parse(Gguf *g, const void *buf, size_t len, const char *name_for_errors, LfError *err);
/* Frees everything and zeroes g; a zeroed or already closed g is fine. */
void gguf_close(Gguf *g);
/* 1 when path names a GGUF file (ends in ".gguf"), as loraft tells model paths apart. */
int gguf_is_path(const char *path);

/* ---- metadata ---- */

const GgufKV *gguf_find_kv(const Gguf *g, const char *key); /* NULL if absent */
/* 1 when a and b (of the same or two files) hold the same type, count and value bytes. */
int gguf_kv_equal(const GgufKV *a, const GgufKV *b);

/* Typed getters: each fails (naming the file and key) when the key is absent or its value
 * has another type. Integer getters take any integer type whose value fits the result
 * (an out-of-range value is an error); f32 takes FLOAT32 or FLOAT64; bool and string take
 * only their own type. */
int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, LfError *err);
int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, LfError *err);
int gguf_get_f32(const Gguf *g, const char *key, float *out, LfError *err);
int gguf_get_bool(const Gguf *g, const char *key, int *out, LfError *err);
int gguf_get_str(const Gguf *g, const char *key, const GgufStr **out, LfError *err);
/* Arrays: *n elements. Strings point into g; numbers are copied into out, which the caller
 * sizes from gguf_get_arr_len, converted as the scalar getters do (ints: any integer
 * element type that fits int32; floats: FLOAT32 or FLOAT64). */
int gguf_get_arr_len(const Gguf *g, const char *key, size_t *n, LfError *err);
int gguf_get_arr_str(const Gguf *g, const char *key, const GgufStr **strs, size_t *n, LfError *err);
int gguf_get_arr_i32(const Gguf *g, const char *key, int32_t *out, size_t n, LfError *err);
int gguf_get_arr_f32(const Gguf *g, const char *key, float *out, size_t n, LfError *err);

/* ---- tensors ---- */

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name); /* NULL if absent */
int64_t gguf_numel(const GgufTensor *t);
/* The shape in HF (row-major) order, the reverse of ne; returns n_dims. */
int gguf_shape_hf(const GgufTensor *t, int64_t shape[GGUF_MAX_DIMS]);

/* Dequantises tensor `name` into out[numel] after checking that it exists, that its type
 * is one quant_dequantize handles and that its HF-order shape is exactly shape[ndim].
 * Errors name the file, the tensor and the type or both shapes. */
int gguf_read_f32(const Gguf *g, const char *name, int ndim, const int64_t *shape, float *out,
                  LfError *err);

/* ---- architecture ---- */

/* Llama 3.1's RoPE scaling in a GGUF: a divisor of each pair's frequency (GgufArch) */
#define GGUF_ROPE_FREQS "rope_freqs.weight"
/* Phi-3's longrope: the divisors for sequences within the original context, and past it */
#define GGUF_ROPE_SHORT "rope_factors_short.weight"
#define GGUF_ROPE_LONG "rope_factors_long.weight"
/* 1 for RoPE's tensors (rope_freqs, rope_factors_short and _long), which gguf_arch reads into the
 * config: no model parameter of their own. */
int gguf_is_rope_tensor(const char *name);
/* The most layers a GGUF's per-layer keys may describe (model_config.h's MODEL_MAX_LAYERS) */
#define GGUF_MAX_LAYERS 1024

/* A Llama-family or GPT-2 model described by its metadata (`<arch>.*` keys) and tensors. */
typedef struct GgufArch {
    char arch[32];      /* general.architecture: "llama", "qwen2", "qwen3", "smollm3", "gemma3",
                           "gemma2", "phi3" or "gpt2" */
    int n_layers;       /* block_count */
    int hidden;         /* embedding_length */
    int ffn;            /* feed_forward_length */
    int n_heads;        /* attention.head_count */
    int n_kv_heads;     /* attention.head_count_kv (default n_heads; gpt2: n_heads) */
    int head_dim;       /* llama family: attention.key_length, else hidden / n_heads */
    int rot_dims;       /* llama family: rope.dimension_count, the head_dim but for phi3's
                           partial rotary embeddings (Phi-4-mini: 96 of 128) */
    int sliding_window; /* llama: attention.sliding_window (a Mistral loraft wrote); gemma2,
                           gemma3: its windowed layers'; phi3: every layer's (the converter
                           writes config.json's, 0 for none; llama.cpp computes without it);
                           0: none */
    /* gemma2, gemma3, with a window: which layers have it (attention.sliding_window_pattern: a
     * list of one a layer, or every n-th layer full, default gemma2's 2 and gemma3's 6, as
     * llama.cpp reads it), and (gemma3) their RoPE base (rope.freq_base_swa, default llama.cpp's
     * 10000) */
    unsigned char windowed[GGUF_MAX_LAYERS];
    float rope_theta_swa;
    /* gemma2, gemma3: the attention's query_pre_attn_scalar as llama.cpp derives it (the head
     * size, but hidden / heads for the 27B models, which it knows by their layer count), and the
     * soft-capping of the scores (gemma2: attn_logit_softcapping, default 50) and of the final
     * logits (final_logit_softcapping; gemma2's default 30, gemma3's 0); 0: none */
    float attn_scalar, attn_softcap, final_softcap;
    int context_length; /* context_length (gpt2: the position table's size) */
    int vocab_size;     /* tokenizer.ggml.tokens, else <arch>.vocab_size, else token_embd */
    float rope_theta;   /* llama: rope.freq_base (default 10000); gpt2: 0 */
    int rope_yarn;      /* llama: rope.scaling.type is yarn (else linear, where rope_factor) */
    float rope_factor;  /* llama: rope.scaling.factor where rope.scaling.type is linear or yarn;
                           0: none */
    int rope_orig_ctx;  /* yarn, phi3: rope.scaling.original_context_length (default
                           context_length; phi3: past it llama.cpp takes the long factors) */
    float yarn_beta_fast, yarn_beta_slow; /* yarn: rope.scaling.yarn_beta_fast / _slow (32, 1) */
    float rope_attn_factor; /* yarn: rope.scaling.attn_factor (default 1), the factor llama.cpp
                               multiplies YaRN's 0.1 ln(factor) + 1 by: the attention factor;
                               phi3's longrope: its attention factor (cos and sin times it) */
    int n_rope_divisors;    /* llama: rot_dims / 2 where rope_freqs.weight (each pair's frequency
                               divisor: Llama 3.1's scaling, as llama.cpp's converter writes it) is
                               there; 0: none */
    float rope_divisors[ROPE_MAX_PAIRS];
    int n_longrope; /* phi3: rot_dims / 2 where rope_factors_short and _long.weight are there
                       (Phi-3's longrope, as llama.cpp's converter writes it: both or neither); 0:
                       none */
    float rope_short[ROPE_MAX_PAIRS], rope_long[ROPE_MAX_PAIRS];
    float norm_eps;      /* llama: attention.layer_norm_rms_epsilon; gpt2: layer_norm_epsilon */
    int tied_embeddings; /* 1 when there is no output.weight (head = token_embd) */
    int bos_token_id, eos_token_id; /* tokenizer.ggml.*_token_id; -1 when absent */
    int pad_token_id;               /* tokenizer.ggml.padding_token_id; -1 when absent */
} GgufArch;

/* Reads and checks the architecture: the required keys are present, sizes are positive,
 * heads divide hidden (and kv heads divide heads), and token_embd.weight (and output.weight
 * when present) has shape [vocab, hidden]. Llama's (and Qwen2's: the same keys under qwen2.*)
 * RoPE scaling: linear or yarn (rope.scaling.type, factor and yarn's keys as llama.cpp computes
 * them; a yarn_ext_factor other than 1, a yarn_log_multiplier, a yarn_attn_factor other than the
 * attention factor llama.cpp computes, and an attn_factor other than 1 without yarn are
 * refused) or
 * a rope_freqs tensor of head_dim / 2 positive F32 divisors; phi3's: none, or longrope's two factor
 * tensors with rope.scaling.attn_factor; other scaling types and experts are refused: loraft does
 * not implement them. */
int gguf_arch(const Gguf *g, GgufArch *a, LfError *err);

/* Gemma 2's and 3's query_pre_attn_scalar as llama.cpp derives it (it reads no key for it):
 * hidden / heads (an integer division) for the 27B models, which it knows by their layer count
 * alone (gguf_gemma_27b_layers: gemma2's 46, gemma3's 62), else the head size. arch: "gemma2" or
 * "gemma3". The export refuses a config this rule does not give back. */
int gguf_gemma_attn_scalar(const char *arch, int n_layers, int hidden, int n_heads, int head_dim);
int gguf_gemma_27b_layers(const char *arch);

/* What turns a GGUF tensor into its HF counterpart, besides the name. */
typedef enum GgufFix {
    GGUF_FIX_NONE,
    GGUF_FIX_UNPERMUTE_Q, /* llama q_proj: gguf_unpermute_rows with n_heads */
    GGUF_FIX_UNPERMUTE_K, /* llama k_proj: gguf_unpermute_rows with n_kv_heads */
    GGUF_FIX_TRANSPOSE,   /* gpt2 Conv1D weights: HF stores [in, out], GGUF [out, in] */
} GgufFix;

/* HF tensor name of a GGUF tensor of architecture arch ("llama", "qwen2" or "gpt2"), e.g.
 * blk.3.attn_q.weight -> model.layers.3.self_attn.q_proj.weight, and the fix it needs (qwen2's
 * q and k need none: llama.cpp's converter leaves them in HF's order).
 * Fails for a name the architecture does not have. */
int gguf_hf_name(const char *arch, const char *gguf_name, char *out, size_t cap, GgufFix *fix,
                 LfError *err);
/* The reverse: the GGUF name of HF tensor hf_name (model.layers.3.self_attn.q_proj.weight
 * -> blk.3.attn_q.weight) and the fix whose inverse it needs (UNPERMUTE_Q: apply
 * gguf_permute_rows; TRANSPOSE: transpose). Fails for a name the architecture does not have. */
int gguf_name_of(const char *arch, const char *hf_name, char *out, size_t cap, GgufFix *fix,
                 LfError *err);

/* llama.cpp's converter reorders the rows of each head of Llama's q_proj / k_proj (and
 * their biases) from HF's rotate-half RoPE layout to interleaved pairs: within a head of
 * head_dim = rows / n_head rows, GGUF row 2i + j is HF row j * head_dim / 2 + i
 * (i < head_dim / 2, j = 0, 1). in[rows][cols] -> out[rows][cols]; in and out must not
 * overlap. Fails when rows is not a multiple of 2 * n_head. */
int gguf_unpermute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head,
                        LfError *err);
/* gguf_unpermute_rows on rows of row_bytes bytes each: a quantised tensor's rows (a row is
 * whole blocks, so the permutation moves blocks unchanged). */
int gguf_unpermute_packed_rows(const void *in, void *out, int64_t rows, size_t row_bytes,
                               int n_head, LfError *err);
/* The converter's direction (HF -> GGUF), for writing GGUF files and adapters. */
int gguf_permute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head,
                      LfError *err);

/* ---- writing ---- */

/* One metadata entry to write. Scalars: the value in the member its type selects (u for
 * UINT*, i for INT*, f for FLOAT*, b for BOOL, s for STRING). ARRAY: elem_type, n and arr,
 * which holds n packed little-endian elements, or n `const char *` for STRING. copy, when
 * not NULL, replaces all of these: the type and value of a KV of an open Gguf, written
 * byte for byte (to carry metadata such as the tokenizer from one file to another). */
typedef struct GgufWriteKV {
    const char *key;
    const GgufKV *copy;
    GgufType type;
    uint64_t u;
    int64_t i;
    double f;
    int b;
    const char *s;
    GgufType elem_type;
    uint64_t n;
    const void *arr;
} GgufWriteKV;

/* One tensor to write: ne in GGUF order, data holds its blocks (gguf_write computes the
 * size from type and ne; ne[0] must be a whole number of blocks). */
typedef struct GgufWriteTensor {
    const char *name;
    GgmlType type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
} GgufWriteTensor;

/* Writes a GGUF v3 file atomically: the KVs in order, then the tensors in order, each at
 * the next multiple of alignment (a power of two; `general.alignment` is written when it
 * is not 32). Keys and tensor names must be unique. */
int gguf_write(const char *path, const GgufWriteKV *kvs, int n_kvs, const GgufWriteTensor *tensors,
               int n_tensors, uint32_t alignment, LfError *err);

#ifdef __cplusplus
}
#endif
