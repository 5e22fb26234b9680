/* test_gguf.c: the GGUF reader, writer and architecture helpers, and block dequantisation.
 * - goldens: a GGUF file written by the PyPI gguf package (scripts/make-gguf-goldens.py),
 *   committed as its bytes in hex in tests/golden/gguf_quant.json and parsed from memory,
 *   holds every dequantised type beside gguf's own dequantisation; every value must match
 *   bit for bit. Its typed keys exercise the getters.
 * - every malformed-file rule the reader enforces, one file each, built byte by byte;
 * - round trips through gguf_write; GgufArch for Llama, Qwen, Gemma 3 and 2 (windows, soft-caps,
 *   the attention scalar llama.cpp derives) and GPT-2; HF names; the Q/K permutation against
 *   numpy's reshape/swapaxes index arithmetic.
 * With LORAFT_GGUF_SMOLLM2=path/SmolLM2-135M-Instruct.Q4_1.gguf it also checks that real
 * file's config. */
#include <cjson/cJSON.h>

#include "check.h"
#include "loraft/fileio.h"
#include "loraft/gguf.h"
#include "loraft/model_config.h"
#include "loraft/quant_block.h" /* qb_nf4 */
#include "loraft/safetensors.h" /* f32_to_f16, f16_to_f32 */

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN "tests/golden/gguf_quant.json"

/* Parses the golden GGUF (hex in GOLDEN) into g; the bytes stay in a buffer kept for the run. */
static int open_golden(Gguf *g, LfError *err) {
    static unsigned char *bytes;
    static size_t n;
    if (!bytes) {
        char *text;
        size_t len;
        if (file_read_all(GOLDEN, &text, &len, err)) return -1;
        cJSON *j = cJSON_Parse(text);
        free(text);
        const cJSON *hex = cJSON_GetObjectItem(j, "gguf_hex");
        size_t h = cJSON_IsString(hex) ? strlen(hex->valuestring) : 0;
        bytes = malloc(h / 2 + 1);
        for (n = 0; bytes && 2 * n + 1 < h; n++) {
            unsigned v;
            if (sscanf(hex->valuestring + 2 * n, "%2x", &v) != 1) break;
            bytes[n] = (unsigned char)v;
        }
        cJSON_Delete(j);
        if (!bytes || !h || 2 * n != h)
            return lf_fail(err, "%s: no gguf_hex of whole bytes", GOLDEN);
    }
    return gguf_parse(g, bytes, n, GOLDEN, err);
}

static char tmpdir[] = "/tmp/loraft_gguf_XXXXXX";

static const char *tmp_path(const char *name) {
    static char buf[512];
    LfError err;
    if (path_join(buf, sizeof buf, tmpdir, name, &err) != 0) abort();
    return buf;
}

/* Opening path must fail with a message naming the file and containing phrase. */
static void expect_open_fails(const char *path, const char *phrase, int line) {
    Gguf g;
    LfError err = {{0}};
    int rc = gguf_open(&g, path, &err);
    int ok = rc == -1 && strstr(err.msg, path) && strstr(err.msg, phrase);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  line %d: expected '%s', got rc=%d '%s'\n", line, phrase, rc, err.msg);
    CHECK(g.kvs == NULL && g.tensors == NULL && g.map == NULL); /* left closed */
    gguf_close(&g);
}

/* A message must contain phrase (for errors of calls that are not opens). */
static void expect_msg(int rc, const LfError *err, const char *phrase, int line) {
    int ok = rc == -1 && strstr(err->msg, phrase);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  line %d: expected '%s', got rc=%d '%s'\n", line, phrase, rc, err->msg);
}
#define EXPECT_FAIL(call, phrase)                                                                  \
    do {                                                                                           \
        LfError e_ = {{0}};                                                                        \
        LfError *err_ = &e_;                                                                       \
        (void)err_;                                                                                \
        expect_msg((call), &e_, phrase, __LINE__);                                                 \
    } while (0)

/* ------------------------------------------------------- a byte-level file builder ---- */

typedef struct Bytes {
    unsigned char p[4096];
    size_t len;
} Bytes;

static void put(Bytes *b, const void *data, size_t n) {
    if (b->len + n > sizeof b->p) abort();
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void put_le(Bytes *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) b->p[b->len++] = (unsigned char)(v >> (8 * i));
}
static void put_str(Bytes *b, const char *s) {
    put_le(b, strlen(s), 8);
    put(b, s, strlen(s));
}
static void header(Bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kvs) {
    b->len = 0;
    put(b, "GGUF", 4);
    put_le(b, version, 4);
    put_le(b, n_tensors, 8);
    put_le(b, n_kvs, 8);
}
static void kv_u32(Bytes *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_le(b, GGUF_UINT32, 4);
    put_le(b, v, 4);
}
/* A tensor info with up to 4 dims. */
static void tinfo(Bytes *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t offset) {
    put_str(b, name);
    put_le(b, n_dims, 4);
    for (uint32_t i = 0; i < n_dims; i++) put_le(b, ne[i], 8);
    put_le(b, type, 4);
    put_le(b, offset, 8);
}
/* Pads to 32 and appends n data bytes. */
static void data(Bytes *b, size_t n) {
    while (b->len % 32) b->p[b->len++] = 0;
    for (size_t i = 0; i < n; i++) b->p[b->len++] = (unsigned char)i;
}

static const char *save(const Bytes *b) {
    const char *path = tmp_path("bad.gguf");
    LfError err;
    if (file_write_atomic(path, b->p, b->len, &err) != 0) abort();
    return path;
}
#define BAD(b, phrase) expect_open_fails(save(b), phrase, __LINE__)

static void test_malformed_header(void) {
    Bytes b = {{0}, 0};
    BAD(&b, "too short");
    put(&b, "GGU", 3);
    BAD(&b, "too short");
    header(&b, 3, 0, 0);
    memcpy(b.p, "GGML", 4);
    BAD(&b, "not a GGUF file");
    memcpy(b.p, "FUGG", 4);
    BAD(&b, "big-endian");
    header(&b, 1, 0, 0);
    BAD(&b, "version 1 is not supported");
    header(&b, 4, 0, 0);
    BAD(&b, "version 4 is not supported");
    header(&b, 3, 0, 0);
    b.len = 10;
    BAD(&b, "truncated: the tensor count");
    header(&b, 3, 0, 1000);
    BAD(&b, "key-value count 1000 cannot fit");
    header(&b, 3, UINT64_MAX, 0);
    BAD(&b, "tensor count 18446744073709551615 cannot fit");
    header(&b, 3, 1000, 0);
    BAD(&b, "tensor count 1000 cannot fit");
}

static void test_malformed_kvs(void) {
    Bytes b = {{0}, 0};
    header(&b, 3, 0, 1);
    put_le(&b, 1000, 8); /* key length past the end */
    put(&b, "abcdefgh", 8);
    BAD(&b, "truncated: key-value pair 0 needs 1000 bytes");
    header(&b, 3, 0, 1);
    put_str(&b, "");
    put_le(&b, GGUF_UINT8, 4);
    put_le(&b, 0, 1);
    BAD(&b, "key is empty");
    header(&b, 3, 0, 1);
    put_le(&b, 3, 8);
    put(&b, "a\0b", 3);
    put_le(&b, GGUF_UINT8, 4);
    put_le(&b, 0, 1);
    BAD(&b, "NUL byte");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, 13, 4);
    put_le(&b, 0, 8);
    BAD(&b, "key 'k': value type id 13 is not a GGUF type");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_UINT64, 4);
    put_le(&b, 0, 4); /* 4 of 8 bytes */
    BAD(&b, "truncated: key 'k' needs 8 bytes");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_STRING, 4);
    put_le(&b, 1ull << 62, 8);
    BAD(&b, "truncated: key 'k' needs 4611686018427387904 bytes");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, 99, 4);
    put_le(&b, 0, 8);
    BAD(&b, "array element type id 99");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, GGUF_UINT32, 4);
    put_le(&b, 1ull << 61, 8); /* x 4 bytes wraps a 64-bit size */
    put_le(&b, 0, 8);
    BAD(&b, "array of 2305843009213693952 UINT32 elements cannot fit");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, GGUF_STRING, 4);
    put_le(&b, 2, 8);
    put_str(&b, "ok");
    put_le(&b, 100, 8); /* second string runs past the end */
    put(&b, "0123456789", 10);
    BAD(&b, "truncated: key 'k' needs 100 bytes");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_le(&b, GGUF_ARRAY, 4);
    for (int i = 0; i < 9; i++) { /* 9 levels of ARRAY of ARRAY ... */
        put_le(&b, GGUF_ARRAY, 4);
        put_le(&b, 1, 8);
    }
    put_le(&b, GGUF_UINT8, 4);
    put_le(&b, 0, 8);
    BAD(&b, "nested more than 8 deep");
    header(&b, 3, 0, 2);
    kv_u32(&b, "k", 1);
    kv_u32(&b, "k", 2);
    BAD(&b, "duplicate key 'k'");
}

static void test_malformed_alignment(void) {
    Bytes b = {{0}, 0};
    header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_le(&b, GGUF_UINT64, 4);
    put_le(&b, 32, 8);
    BAD(&b, "general.alignment has type UINT64, expected UINT32");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    BAD(&b, "general.alignment 48 is not a power of two");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    BAD(&b, "general.alignment 0 is not a power of two");
    header(&b, 3, 1, 1); /* alignment 64: offset 32 is misaligned */
    kv_u32(&b, "general.alignment", 64);
    tinfo(&b, "t", 1, (uint64_t[]){4}, GGML_F32, 32);
    while (b.len % 64) b.p[b.len++] = 0;
    data(&b, 64);
    BAD(&b, "tensor 't': offset 32 is not a multiple of the alignment 64");
}

static void test_malformed_tensors(void) {
    Bytes b = {{0}, 0};
    header(&b, 3, 1, 0);
    tinfo(&b, "", 1, (uint64_t[]){4}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "tensor info 0: name is empty");
    char long_name[300];
    memset(long_name, 'x', 256);
    long_name[256] = '\0';
    header(&b, 3, 1, 0);
    tinfo(&b, long_name, 1, (uint64_t[]){4}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "longer than 255 bytes");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 5, (uint64_t[]){1, 1, 1, 1, 4}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "tensor 't' has 5 dims, at most 4");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){1ull << 63}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "dim 0 is 9223372036854775808, over 2^63 - 1");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, (uint64_t[]){1ull << 40, 1ull << 40}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "dims [1099511627776, 1099511627776] of type F32 overflow");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 3, (uint64_t[]){1ull << 30, 1ull << 30, 4}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "overflow"); /* the element count fits, the byte count does not */
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){1ull << 62}, GGML_F32, 0);
    data(&b, 16);
    BAD(&b, "dims [4611686018427387904] of type F32 overflow"); /* 2^62 x 4 bytes wraps to 0 */
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){4}, 4, 0); /* a retired id */
    data(&b, 16);
    BAD(&b, "tensor 't': type id 4 is not a ggml type");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){4}, 1000, 0);
    data(&b, 16);
    BAD(&b, "type id 1000 is not a ggml type");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){64}, QUANT_NF4, 0); /* loraft's own, never in a file */
    data(&b, 36);
    BAD(&b, "type id 1024 is not a ggml type");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){33}, GGML_Q8_0, 0);
    data(&b, 68);
    BAD(&b, "not a multiple of the block size 32");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){4}, GGML_F32, 8);
    data(&b, 16);
    BAD(&b, "tensor 't': offset 8 is not a multiple of the alignment 32");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){8}, GGML_F32, 0);
    data(&b, 31); /* needs 32 */
    BAD(&b, "bytes [0, 32) of the data section lie outside it (31 bytes)");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){4}, GGML_F32, UINT64_MAX - 31);
    data(&b, 16);
    BAD(&b, "lie outside it");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, (uint64_t[]){16}, GGML_F32, 0); /* [0, 64) */
    tinfo(&b, "b", 1, (uint64_t[]){4}, GGML_F32, 32);
    data(&b, 64);
    BAD(&b, "tensor 'b' overlaps tensor 'a'");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, (uint64_t[]){4}, GGML_F32, 0);
    tinfo(&b, "a", 1, (uint64_t[]){4}, GGML_F32, 32);
    data(&b, 64);
    BAD(&b, "duplicate tensor name 'a'");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (uint64_t[]){4}, GGML_F32, 0);
    BAD(&b, "the data section would start at byte 64");
    header(&b, 3, 1, 0);
    put_str(&b, "tensor");
    put_le(&b, 2, 4);
    put_le(&b, 4, 8); /* the second dim is missing */
    BAD(&b, "truncated: tensor 'tensor' needs 8 bytes");
}

/* Well-formed corner cases: an empty file, v2, a zero-size tensor, nested arrays, an
 * alignment of 1, a hole between tensors. */
static void test_edge_valid(void) {
    Bytes b = {{0}, 0};
    Gguf g;
    LfError err;
    header(&b, 3, 0, 0);
    CHECK_OK(gguf_open(&g, save(&b), &err), &err);
    CHECK(g.n_kvs == 0 && g.n_tensors == 0 && g.alignment == 32);
    gguf_close(&g);
    gguf_close(&g); /* twice is fine */

    header(&b, 2, 2, 2);
    put_str(&b, "nested");
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, 2, 8);
    put_le(&b, GGUF_STRING, 4);
    put_le(&b, 1, 8);
    put_str(&b, "x");
    put_le(&b, GGUF_INT16, 4);
    put_le(&b, 2, 8);
    put_le(&b, 0xffff, 2);
    put_le(&b, 7, 2);
    kv_u32(&b, "general.alignment", 1);
    tinfo(&b, "empty", 2, (uint64_t[]){0, 3}, GGML_Q4_K, 3);
    tinfo(&b, "t", 1, (uint64_t[]){4}, GGML_F32, 5); /* after a hole of 5 bytes */
    data(&b, 21);
    CHECK_OK(gguf_open(&g, save(&b), &err), &err);
    CHECK(g.version == 2 && g.alignment == 1 && g.n_tensors == 2);
    const GgufKV *kv = gguf_find_kv(&g, "nested");
    CHECK(kv && kv->type == GGUF_ARRAY && kv->elem_type == GGUF_ARRAY && kv->n == 2 && !kv->strs);
    size_t n;
    CHECK_OK(gguf_get_arr_len(&g, "nested", &n, &err), &err);
    CHECK(n == 2);
    EXPECT_FAIL(gguf_get_arr_i32(&g, "nested", (int32_t[2]){0}, 2, err_), "ARRAY of ARRAY");
    const GgufTensor *t = gguf_find_tensor(&g, "empty");
    CHECK(t && t->nbytes == 0 && gguf_numel(t) == 0);
    float out[4];
    CHECK_OK(gguf_read_f32(&g, "t", 1, (int64_t[]){4}, out, &err), &err);
    gguf_close(&g);
}

/* ----------------------------------------------------------------- goldens ---- */

static int bits_equal(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

static void test_golden_dequant(void) {
    static const char *const types[] = {"F32",  "F16",  "BF16", "Q8_0", "Q4_0", "Q4_1",
                                        "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    Gguf g;
    LfError err;
    CHECK_OK(open_golden(&g, &err), &err);
    if (g.n_tensors == 0) return;
    CHECK(g.n_tensors == 29); /* 11 types, their .expected, 7 .source */
    const int64_t shape[2] = {3, 512};
    static float got[3 * 512], want[3 * 512];
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.expected", types[i]);
        const GgufTensor *t = gguf_find_tensor(&g, types[i]);
        CHECK(t && strcmp(quant_type_name(t->type), types[i]) == 0);
        CHECK_OK(gguf_read_f32(&g, types[i], 2, shape, got, &err), &err);
        CHECK_OK(gguf_read_f32(&g, name, 2, shape, want, &err), &err);
        int bad = 0;
        for (int j = 0; j < 3 * 512; j++)
            if (!bits_equal(got[j], want[j]) && bad++ == 0)
                fprintf(stderr, "  %s: value %d (block %d) is %.9g, gguf gives %.9g\n", types[i], j,
                        j / quant_block_elems(t->type), got[j], want[j]);
        CHECK(bad == 0);
    }
    gguf_close(&g);
}

/* quant_quantize of each `<type>.source` gives the gguf package's blocks byte for byte (rows 0
 * and 1 of the 32-value types: row 2 is random bytes; all rows of F16 and BF16). */
static void test_golden_quantize(void) {
    static const char *const types[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"};
    Gguf g;
    LfError err;
    CHECK_OK(open_golden(&g, &err), &err);
    if (g.n_tensors == 0) return;
    static float src[3 * 512];
    static unsigned char got[3 * 512 * 2];
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.source", types[i]);
        const GgufTensor *t = gguf_find_tensor(&g, types[i]), *s = gguf_find_tensor(&g, name);
        CHECK(t && s && s->type == GGML_F32);
        if (!t || !s) continue;
        int64_t shape[GGUF_MAX_DIMS];
        gguf_shape_hf(s, shape);
        size_t n = (size_t)(shape[0] * shape[1]);
        size_t bytes = n / quant_block_elems(t->type) * quant_block_bytes(t->type);
        CHECK_OK(gguf_read_f32(&g, name, 2, shape, src, &err), &err);
        CHECK_OK(quant_quantize(t->type, src, n, got, &err), &err);
        size_t bad = 0;
        while (bad < bytes && got[bad] == ((const unsigned char *)t->data)[bad]) bad++;
        if (bad < bytes)
            fprintf(stderr, "  quantise %s: byte %zu (block %zu) differs from the gguf package's\n",
                    types[i], bad, bad / quant_block_bytes(t->type));
        CHECK(bad == bytes);
    }
    gguf_close(&g);
}

static void test_golden_metadata(void) {
    Gguf g;
    LfError err;
    CHECK_OK(open_golden(&g, &err), &err);
    if (g.n_tensors == 0) return;
    uint32_t u;
    int32_t i;
    float f;
    int b;
    const GgufStr *s;
    CHECK_OK(gguf_get_u32(&g, "test.u8", &u, &err), &err);
    CHECK(u == 200);
    CHECK_OK(gguf_get_i32(&g, "test.i8", &i, &err), &err);
    CHECK(i == -100);
    CHECK_OK(gguf_get_u32(&g, "test.u16", &u, &err), &err);
    CHECK(u == 60000);
    CHECK_OK(gguf_get_i32(&g, "test.i16", &i, &err), &err);
    CHECK(i == -30000);
    CHECK_OK(gguf_get_u32(&g, "test.u32", &u, &err), &err);
    CHECK(u == 4000000000u);
    CHECK_OK(gguf_get_i32(&g, "test.i32", &i, &err), &err);
    CHECK(i == -2000000000);
    CHECK_OK(gguf_get_f32(&g, "test.f32", &f, &err), &err);
    CHECK(f == 0.25f);
    CHECK_OK(gguf_get_f32(&g, "test.f64", &f, &err), &err);
    CHECK(f == 0.0f); /* 1e-300 rounds to 0 in f32 */
    CHECK_OK(gguf_get_bool(&g, "test.bool", &b, &err), &err);
    CHECK(b == 1);
    CHECK_OK(gguf_get_str(&g, "test.string", &s, &err), &err);
    CHECK(strcmp(s->s, "h\xc3\xa9llo") == 0 && s->len == 6);
    CHECK_OK(gguf_get_str(&g, "general.architecture", &s, &err), &err);
    CHECK(strcmp(s->s, "loraft-golden") == 0);
    size_t n;
    const GgufStr *strs;
    CHECK_OK(gguf_get_arr_str(&g, "test.strings", &strs, &n, &err), &err);
    CHECK(n == 3 && strcmp(strs[0].s, "a") == 0 && strs[1].len == 0 &&
          strcmp(strs[2].s, "\xc4\xa0the") == 0);
    int32_t ints[3];
    CHECK_OK(gguf_get_arr_i32(&g, "test.ints", ints, 3, &err), &err);
    CHECK(ints[0] == 1 && ints[1] == -2 && ints[2] == 3);
    float floats[2];
    CHECK_OK(gguf_get_arr_f32(&g, "test.floats", floats, 2, &err), &err);
    CHECK(floats[0] == 0.5f && floats[1] == -1.5f);

    EXPECT_FAIL(gguf_get_u32(&g, "test.missing", &u, err_), "key 'test.missing' not found");
    EXPECT_FAIL(gguf_get_u32(&g, "test.string", &u, err_), "has type STRING, expected an integer");
    EXPECT_FAIL(gguf_get_u32(&g, "test.i8", &u, err_),
                "INT8 value is out of range for an integer (u32)");
    EXPECT_FAIL(gguf_get_u32(&g, "test.u64", &u, err_), "out of range");
    EXPECT_FAIL(gguf_get_i32(&g, "test.u32", &i, err_), "UINT32 value is out of range");
    EXPECT_FAIL(gguf_get_i32(&g, "test.i64", &i, err_), "out of range");
    EXPECT_FAIL(gguf_get_f32(&g, "test.i32", &f, err_), "has type INT32, expected FLOAT32");
    EXPECT_FAIL(gguf_get_bool(&g, "test.u8", &b, err_), "expected BOOL");
    EXPECT_FAIL(gguf_get_str(&g, "test.strings", &s, err_),
                "is an ARRAY of STRING, expected STRING");
    EXPECT_FAIL(gguf_get_arr_str(&g, "test.ints", &strs, &n, err_),
                "ARRAY of INT32, expected an ARRAY of STRING");
    EXPECT_FAIL(gguf_get_arr_len(&g, "test.u8", &n, err_), "expected an ARRAY");
    EXPECT_FAIL(gguf_get_arr_i32(&g, "test.ints", ints, 2, err_), "has 3 elements, expected 2");
    EXPECT_FAIL(gguf_get_arr_f32(&g, "test.ints", floats, 3, err_), "expected an ARRAY of FLOAT32");
    gguf_close(&g);
}

/* ------------------------------------------------------------------ writing ---- */

static void test_round_trip(void) {
    const char *path = tmp_path("rt.gguf");
    static const char *const names[] = {"x", "", "\xc4\xa0y"};
    static const int16_t i16s[] = {-1, 2, 300};
    const GgufWriteKV kvs[] = {
        {.key = "general.architecture", .type = GGUF_STRING, .s = "llama"},
        {.key = "k.u8", .type = GGUF_UINT8, .u = 255},
        {.key = "k.i64", .type = GGUF_INT64, .i = -5},
        {.key = "k.f32", .type = GGUF_FLOAT32, .f = 1.5},
        {.key = "k.f64", .type = GGUF_FLOAT64, .f = -2.25},
        {.key = "k.bool", .type = GGUF_BOOL, .b = 1},
        {.key = "k.strs", .type = GGUF_ARRAY, .elem_type = GGUF_STRING, .n = 3, .arr = names},
        {.key = "k.i16s", .type = GGUF_ARRAY, .elem_type = GGUF_INT16, .n = 3, .arr = i16s},
        {.key = "k.empty", .type = GGUF_ARRAY, .elem_type = GGUF_FLOAT32, .n = 0},
    };
    float w[6] = {1, -2, 3.5f, 0, -0.0f, 1e-3f};
    uint16_t h[4] = {0x3c00, 0xc000, 0x7c00, 0x0001}; /* 1, -2, inf, 2^-24 */
    unsigned char q8[34] = {0x00, 0x3c};              /* d = 1 */
    for (int i = 0; i < 32; i++) q8[2 + i] = (unsigned char)(i - 16);
    unsigned char q2k[84] = {0};
    const GgufWriteTensor ts[] = {
        {"w", GGML_F32, 2, {3, 2, 1, 1}, w},
        {"h", GGML_F16, 1, {4, 1, 1, 1}, h},
        {"q8", GGML_Q8_0, 1, {32, 1, 1, 1}, q8},
        {"q2k", GGML_Q2_K, 1, {256, 1, 1, 1}, q2k},
    };
    LfError err;
    for (uint32_t align = 32; align <= 64; align *= 2) {
        CHECK_OK(gguf_write(path, kvs, 9, ts, 4, align, &err), &err);
        Gguf g;
        CHECK_OK(gguf_open(&g, path, &err), &err);
        if (!g.map) continue;
        CHECK(g.version == 3 && g.alignment == align && g.n_kvs == 9 + (align != 32));
        CHECK((gguf_find_kv(&g, "general.alignment") != NULL) == (align != 32));
        CHECK(g.data_offset % align == 0 && g.map_size % align == 0);
        for (int i = 0; i < 4; i++) CHECK(g.tensors[i].offset % align == 0);
        const GgufStr *s;
        CHECK_OK(gguf_get_str(&g, "general.architecture", &s, &err), &err);
        CHECK(strcmp(s->s, "llama") == 0);
        uint32_t u;
        int32_t i;
        float f;
        int b;
        CHECK(gguf_get_u32(&g, "k.u8", &u, &err) == 0 && u == 255);
        CHECK(gguf_get_i32(&g, "k.i64", &i, &err) == 0 && i == -5);
        CHECK(gguf_get_f32(&g, "k.f32", &f, &err) == 0 && f == 1.5f);
        CHECK(gguf_get_f32(&g, "k.f64", &f, &err) == 0 && f == -2.25f);
        CHECK(gguf_get_bool(&g, "k.bool", &b, &err) == 0 && b == 1);
        const GgufStr *strs;
        size_t n;
        CHECK(gguf_get_arr_str(&g, "k.strs", &strs, &n, &err) == 0 && n == 3);
        CHECK(strcmp(strs[2].s, names[2]) == 0 && strs[1].len == 0);
        int32_t got16[3];
        CHECK(gguf_get_arr_i32(&g, "k.i16s", got16, 3, &err) == 0 && got16[0] == -1 &&
              got16[2] == 300);
        CHECK(gguf_get_arr_len(&g, "k.empty", &n, &err) == 0 && n == 0);

        const GgufTensor *t = gguf_find_tensor(&g, "w");
        int64_t hf[4];
        CHECK(t && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 && gguf_shape_hf(t, hf) == 2 &&
              hf[0] == 2 && hf[1] == 3);
        float out[32];
        CHECK_OK(gguf_read_f32(&g, "w", 2, (int64_t[]){2, 3}, out, &err), &err);
        CHECK(memcmp(out, w, sizeof w) == 0);
        CHECK_OK(gguf_read_f32(&g, "h", 1, (int64_t[]){4}, out, &err), &err);
        CHECK(out[0] == 1 && out[1] == -2 && out[2] == INFINITY && out[3] == 0x1p-24f);
        CHECK_OK(gguf_read_f32(&g, "q8", 1, (int64_t[]){32}, out, &err), &err);
        CHECK(out[0] == -16 && out[31] == 15);
        EXPECT_FAIL(gguf_read_f32(&g, "w", 2, (int64_t[]){3, 2}, out, err_),
                    "tensor 'w' has shape [2, 3], expected [3, 2]");
        EXPECT_FAIL(gguf_read_f32(&g, "nope", 1, (int64_t[]){1}, out, err_),
                    "tensor 'nope' not found");
        EXPECT_FAIL(gguf_read_f32(&g, "q2k", 1, (int64_t[]){256}, out, err_),
                    "tensor 'q2k' has type Q2_K, which loraft cannot dequantise");
        gguf_close(&g);
    }
}

static void test_write_errors(void) {
    const char *path = tmp_path("werr.gguf");
    float w[4] = {0};
    GgufWriteKV kv[2] = {{.key = "a", .type = GGUF_UINT32}, {.key = "a", .type = GGUF_UINT32}};
    GgufWriteTensor t[2] = {{"t", GGML_F32, 1, {4, 1, 1, 1}, w},
                            {"t", GGML_F32, 1, {4, 1, 1, 1}, w}};
    EXPECT_FAIL(gguf_write(path, kv, 2, NULL, 0, 32, err_), "duplicate key 'a'");
    EXPECT_FAIL(gguf_write(path, NULL, 0, t, 2, 32, err_), "duplicate tensor name 't'");
    EXPECT_FAIL(gguf_write(path, NULL, 0, t, 1, 48, err_), "not a power of two");
    kv[0].key = "general.alignment";
    EXPECT_FAIL(gguf_write(path, kv, 1, NULL, 0, 32, err_), "pass the alignment");
    kv[0] = (GgufWriteKV){.key = "s", .type = GGUF_STRING};
    EXPECT_FAIL(gguf_write(path, kv, 1, NULL, 0, 32, err_), "key 's': invalid type");
    kv[0] = (GgufWriteKV){.key = "s", .type = GGUF_ARRAY, .elem_type = GGUF_ARRAY};
    EXPECT_FAIL(gguf_write(path, kv, 1, NULL, 0, 32, err_), "key 's': invalid type");
    t[0] = (GgufWriteTensor){"q", GGML_Q8_0, 1, {4, 1, 1, 1}, w};
    EXPECT_FAIL(gguf_write(path, NULL, 0, t, 1, 32, err_), "multiple of the block size");
    t[0] = (GgufWriteTensor){"q", (GgmlType)4, 1, {4, 1, 1, 1}, w};
    EXPECT_FAIL(gguf_write(path, NULL, 0, t, 1, 32, err_), "invalid type");
    CHECK(access(path, F_OK) != 0); /* nothing written */
}

/* -------------------------------------------------------------- architecture ---- */

/* Writes a tiny model file of `arch` with the given extra tensors' presence; rope_freqs: that
 * many of rope_divisors (head size 4: 2 is right). */
typedef struct TinySpec {
    const char *arch;
    int with_output, rope_freqs, vocab_rows, heads, kv_heads;
    const char *scaling;
    float scaling_factor; /* 0: no llama.rope.scaling.factor */
    float rope_divisors[3];
    int key_length;       /* 0: no attention.key_length (nor value_length) */
    const char *yarn_key; /* or NULL: <arch>.rope.scaling.<yarn_key> = yarn_value (F32) */
    float yarn_value;
    const GgufWriteKV *extra; /* n_extra more keys */
    int n_extra;
    int layers;  /* block_count; 0: 2 */
    int factors; /* phi3's longrope tensors, of rope_freqs' count and values: 1 short, 2 long,
                    3 both */
} TinySpec;

static const char *write_tiny(const TinySpec *sp) {
    static float zeros[16 * 8];
    static const char *const tokens[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    char k[6][64];
    const char *suffix[6] = {"block_count",          "embedding_length", "feed_forward_length",
                             "attention.head_count", "context_length",   "attention.head_count_kv"};
    uint64_t layers = sp->layers ? (uint64_t)sp->layers : 2;
    uint64_t vals[6] = {layers, 8, 12, (uint64_t)sp->heads, 16, (uint64_t)sp->kv_heads};
    GgufWriteKV kvs[28];
    int n = 0;
    kvs[n++] = (GgufWriteKV){.key = "general.architecture", .type = GGUF_STRING, .s = sp->arch};
    for (int i = 0; i < 6; i++) {
        snprintf(k[i], sizeof k[i], "%s.%s", sp->arch, suffix[i]);
        kvs[n++] = (GgufWriteKV){.key = k[i], .type = GGUF_UINT32, .u = vals[i]};
    }
    int llama = strcmp(sp->arch, "gpt2") != 0; /* llama, qwen2: the same keys */
    char eps[64], base[64], scaling[64], factor[64];
    snprintf(eps, sizeof eps, "%s.attention.layer_norm_%s", sp->arch,
             llama ? "rms_epsilon" : "epsilon");
    snprintf(base, sizeof base, "%s.rope.freq_base", sp->arch);
    snprintf(scaling, sizeof scaling, "%s.rope.scaling.type", sp->arch);
    snprintf(factor, sizeof factor, "%s.rope.scaling.factor", sp->arch);
    kvs[n++] = (GgufWriteKV){.key = eps, .type = GGUF_FLOAT32, .f = 1e-5};
    if (llama) kvs[n++] = (GgufWriteKV){.key = base, .type = GGUF_FLOAT32, .f = 1e5};
    char klen[64], vlen[64];
    snprintf(klen, sizeof klen, "%s.attention.key_length", sp->arch);
    snprintf(vlen, sizeof vlen, "%s.attention.value_length", sp->arch);
    if (sp->key_length) {
        kvs[n++] = (GgufWriteKV){.key = klen, .type = GGUF_UINT32, .u = (uint64_t)sp->key_length};
        kvs[n++] = (GgufWriteKV){.key = vlen, .type = GGUF_UINT32, .u = (uint64_t)sp->key_length};
    }
    kvs[n++] = (GgufWriteKV){.key = "tokenizer.ggml.tokens",
                             .type = GGUF_ARRAY,
                             .elem_type = GGUF_STRING,
                             .n = 10,
                             .arr = tokens};
    kvs[n++] = (GgufWriteKV){.key = "tokenizer.ggml.eos_token_id", .type = GGUF_UINT32, .u = 2};
    if (sp->scaling)
        kvs[n++] = (GgufWriteKV){.key = scaling, .type = GGUF_STRING, .s = sp->scaling};
    if (sp->scaling_factor)
        kvs[n++] = (GgufWriteKV){.key = factor, .type = GGUF_FLOAT32, .f = sp->scaling_factor};
    char yarn[96];
    snprintf(yarn, sizeof yarn, "%s.rope.scaling.%s", sp->arch, sp->yarn_key ? sp->yarn_key : "");
    if (sp->yarn_key)
        kvs[n++] = (GgufWriteKV){.key = yarn, .type = GGUF_FLOAT32, .f = sp->yarn_value};
    for (int i = 0; i < sp->n_extra; i++) kvs[n++] = sp->extra[i];
    GgufWriteTensor ts[6];
    int nt = 0;
    for (int i = 0; i < 2; i++)
        if (sp->factors & (1 << i))
            ts[nt++] = (GgufWriteTensor){i ? GGUF_ROPE_LONG : GGUF_ROPE_SHORT,
                                         GGML_F32,
                                         1,
                                         {sp->rope_freqs, 1, 1, 1},
                                         sp->rope_divisors};
    ts[nt++] =
        (GgufWriteTensor){"token_embd.weight", GGML_F32, 2, {8, sp->vocab_rows, 1, 1}, zeros};
    if (sp->with_output)
        ts[nt++] = (GgufWriteTensor){"output.weight", GGML_F32, 2, {8, 10, 1, 1}, zeros};
    if (sp->rope_freqs && !sp->factors)
        ts[nt++] = (GgufWriteTensor){
            "rope_freqs.weight", GGML_F32, 1, {sp->rope_freqs, 1, 1, 1}, sp->rope_divisors};
    if (!llama)
        ts[nt++] = (GgufWriteTensor){"position_embd.weight", GGML_F32, 2, {8, 16, 1, 1}, zeros};
    const char *path = tmp_path("tiny.gguf");
    LfError err;
    if (gguf_write(path, kvs, n, ts, nt, 32, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    return path;
}

static void expect_arch(const TinySpec *sp, const char *phrase, GgufArch *a, int line) {
    Gguf g;
    LfError err = {{0}};
    if (gguf_open(&g, write_tiny(sp), &err) != 0) abort();
    int rc = gguf_arch(&g, a, &err);
    if (phrase)
        expect_msg(rc, &err, phrase, line);
    else
        CHECK_OK(rc, &err);
    gguf_close(&g);
}

/* Gemma 3 (of llama's tiny spec): its windowed layers as llama.cpp reads them (every sixth full by
 * default, every n-th with an integer pattern, a flag a layer with a list of BOOL, INT32 or
 * UINT32), their RoPE base (default 10000), the config they make; the final logits' soft-cap
 * (default none), positive or 0; an attention soft-cap, which llama.cpp's gemma3 ignores, refused
 * unless 0. */
static void test_gemma3_arch(const TinySpec *llama) {
    GgufArch a;
    TinySpec s = *llama;
    static const unsigned char flags[2] = {0, 1}, three[3] = {1, 1, 1};
    GgufWriteKV kv[3] = {{.key = "gemma3.attention.sliding_window", .type = GGUF_UINT32, .u = 4}};
    s.arch = "gemma3", s.extra = kv, s.n_extra = 1;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.sliding_window == 4 && a.windowed[0] && a.windowed[1] && a.rope_theta_swa == 1e4f);
    CHECK(a.attn_scalar == 4 && a.attn_softcap == 0 && a.final_softcap == 0);
    kv[1] = (GgufWriteKV){
        .key = "gemma3.attention.sliding_window_pattern", .type = GGUF_UINT32, .u = 2};
    kv[2] = (GgufWriteKV){.key = "gemma3.rope.freq_base_swa", .type = GGUF_FLOAT32, .f = 5e4};
    s.n_extra = 3;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.windowed[0] && !a.windowed[1] && a.rope_theta_swa == 5e4f);
    ModelConfig c;
    LfError err = {{0}};
    CHECK_OK(model_config_load(&c, write_tiny(&s), &err), &err);
    CHECK(c.arch == ARCH_GEMMA3 && model_layer_window(&c, 0) == 4 &&
          model_layer_window(&c, 1) == 0 && c.rope_local_theta == 5e4f && c.rope_theta == 1e5f &&
          model_head_size(&c) == 4 && c.query_pre_attn_scalar == 4 && c.attn_softcap == 0 &&
          c.final_softcap == 0);
    kv[1] = (GgufWriteKV){.key = "gemma3.attention.sliding_window_pattern",
                          .type = GGUF_ARRAY,
                          .elem_type = GGUF_BOOL,
                          .n = 2,
                          .arr = flags};
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(!a.windowed[0] && a.windowed[1]);
    kv[1].n = 3, kv[1].arr = three;
    expect_arch(&s, "gemma3.attention.sliding_window_pattern has 3 entries for 2 layers", &a,
                __LINE__);
    kv[1] = (GgufWriteKV){.key = "gemma3.final_logit_softcapping", .type = GGUF_FLOAT32, .f = 0};
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.final_softcap == 0);
    kv[1].f = 30;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.final_softcap == 30 && a.attn_softcap == 0);
    CHECK_OK(model_config_load(&c, write_tiny(&s), &err), &err);
    CHECK(c.final_softcap == 30 && c.attn_softcap == 0);
    kv[1].f = -30;
    expect_arch(&s,
                "gemma3.final_logit_softcapping is -30, expected a finite soft-cap > 0 (or 0: "
                "none)",
                &a, __LINE__);
    kv[1].f = NAN;
    expect_arch(&s, "gemma3.final_logit_softcapping is nan", &a, __LINE__);
    kv[1] = (GgufWriteKV){.key = "gemma3.attn_logit_softcapping", .type = GGUF_FLOAT32, .f = 0};
    expect_arch(&s, NULL, &a, __LINE__);
    kv[1].f = 50;
    expect_arch(&s, "gemma3.attn_logit_softcapping 50: llama.cpp's gemma3 ignores it", &a,
                __LINE__);
}

/* Gemma 2 (of llama's tiny spec, heads of 8 by key_length) as llama.cpp reads it: a window of 4096
 * by default and every other layer windowed (the even ones, as Gemma2Config's layer_types), or as
 * sliding_window_pattern says; one RoPE base (a rope.freq_base_swa of its own refused); the
 * attention's and the final logits' soft-caps (default 50 and 30), positive (llama.cpp divides by
 * them); the config they make. */
static void test_gemma2_arch(const TinySpec *llama) {
    GgufArch a;
    TinySpec s = *llama;
    static const unsigned char flags[2] = {0, 1};
    GgufWriteKV kv[4] = {{0}};
    s.arch = "gemma2", s.key_length = 8, s.extra = kv;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(strcmp(a.arch, "gemma2") == 0 && a.sliding_window == 4096 && a.windowed[0] &&
          !a.windowed[1] && a.rope_theta_swa == a.rope_theta && a.head_dim == 8);
    CHECK(a.attn_scalar == 8 && a.attn_softcap == 50 && a.final_softcap == 30);
    kv[0] = (GgufWriteKV){.key = "gemma2.attention.sliding_window", .type = GGUF_UINT32, .u = 4};
    kv[1] = (GgufWriteKV){.key = "gemma2.attn_logit_softcapping", .type = GGUF_FLOAT32, .f = 3};
    kv[2] = (GgufWriteKV){.key = "gemma2.final_logit_softcapping", .type = GGUF_FLOAT32, .f = 2};
    kv[3] = (GgufWriteKV){.key = "gemma2.rope.freq_base_swa", .type = GGUF_FLOAT32, .f = 1e5};
    s.n_extra = 4;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.sliding_window == 4 && a.attn_softcap == 3 && a.final_softcap == 2);
    ModelConfig c;
    LfError err = {{0}};
    CHECK_OK(model_config_load(&c, write_tiny(&s), &err), &err);
    CHECK(c.arch == ARCH_GEMMA2 && model_layer_window(&c, 0) == 4 &&
          model_layer_window(&c, 1) == 0 && c.rope_local_theta == 0 && c.rope_theta == 1e5f &&
          model_head_size(&c) == 8 && c.query_pre_attn_scalar == 8 && c.attn_softcap == 3 &&
          c.final_softcap == 2);
    kv[3].f = 1e4;
    expect_arch(&s,
                "gemma2.rope.freq_base_swa 10000 differs from rope.freq_base 100000: a RoPE base "
                "of the windowed layers' own is not supported",
                &a, __LINE__);
    kv[3] = (GgufWriteKV){.key = "gemma2.attention.sliding_window_pattern",
                          .type = GGUF_ARRAY,
                          .elem_type = GGUF_BOOL,
                          .n = 2,
                          .arr = flags};
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(!a.windowed[0] && a.windowed[1]);
    kv[3] = (GgufWriteKV){
        .key = "gemma2.attention.sliding_window_pattern", .type = GGUF_UINT32, .u = 1};
    expect_arch(&s, NULL, &a, __LINE__); /* every layer full */
    CHECK(!a.windowed[0] && !a.windowed[1]);
    static const struct {
        int key;
        float cap;
        const char *phrase;
    } bad[] = {
        {1, 0, "gemma2.attn_logit_softcapping is 0, expected a finite soft-cap > 0"},
        {1, -50, "gemma2.attn_logit_softcapping is -50, expected a finite soft-cap > 0"},
        {2, NAN, "gemma2.final_logit_softcapping is nan, expected a finite soft-cap > 0"},
        {2, INFINITY, "gemma2.final_logit_softcapping is inf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kv[1].f = 3, kv[2].f = 2;
        kv[bad[i].key].f = bad[i].cap;
        expect_arch(&s, bad[i].phrase, &a, __LINE__);
    }
}

/* The attention scalar llama.cpp derives for Gemma: hidden / heads (8 / 2) at the 27B models' layer
 * count (gemma2 46, gemma3 62), the head size (key_length 8) at any other. */
static void test_gemma_scalar(const TinySpec *llama) {
    static const struct {
        const char *arch;
        int layers;
        float scalar;
    } cases[] = {{"gemma2", 46, 4},
                 {"gemma2", 62, 8},
                 {"gemma3", 62, 4},
                 {"gemma3", 46, 8},
                 {"gemma3", 26, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GgufArch a;
        TinySpec s = *llama;
        s.arch = cases[i].arch, s.key_length = 8, s.layers = cases[i].layers;
        expect_arch(&s, NULL, &a, __LINE__);
        CHECK(a.n_layers == cases[i].layers && a.attn_scalar == cases[i].scalar);
    }
}

/* Phi-3 (of llama's tiny spec: heads of 4, 2 pairs) as llama.cpp's converter writes it: its window
 * (0: none), the original context (default context_length), longrope from rope_factors_short and
 * _long with rope.scaling.attn_factor, and the configs they make; refused: one factor tensor alone,
 * an attention factor without them, rope_freqs or a scaling type in a phi3 file, the factors in
 * another architecture's. */
static void test_phi3_arch(const TinySpec *llama) {
    GgufArch a;
    ModelConfig c;
    LfError err = {{0}};
    TinySpec s = *llama;
    GgufWriteKV kv[3] = {
        {.key = "phi3.attention.sliding_window", .type = GGUF_UINT32, .u = 0},
        {.key = "phi3.rope.scaling.original_context_length", .type = GGUF_UINT32, .u = 8},
        {.key = "phi3.rope.scaling.attn_factor", .type = GGUF_FLOAT32, .f = 1.25}};
    s.arch = "phi3", s.extra = kv, s.n_extra = 1;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.sliding_window == 0 && a.n_longrope == 0 && a.rope_orig_ctx == 16 && a.head_dim == 4);
    CHECK_OK(model_config_load(&c, write_tiny(&s), &err), &err);
    CHECK(c.arch == ARCH_PHI3 && c.sliding_window == 0 && c.rope_scaling.type == ROPE_DEFAULT &&
          c.rope_scaling.original_max_positions == 16 && c.max_positions == 16);
    kv[0].u = 6, s.n_extra = 3, s.factors = 3, s.rope_freqs = 2;
    s.rope_divisors[0] = 1.5f, s.rope_divisors[1] = 3;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.sliding_window == 6 && a.n_longrope == 2 && a.rope_orig_ctx == 8 &&
          a.rope_attn_factor == 1.25f && a.rope_short[1] == 3 && a.rope_long[0] == 1.5f);
    CHECK_OK(model_config_load(&c, write_tiny(&s), &err), &err);
    const RopeScaling *r = &c.rope_scaling;
    CHECK(c.arch == ARCH_PHI3 && model_layer_window(&c, 1) == 6 && r->type == ROPE_LONGROPE &&
          r->original_max_positions == 8 && r->attention_factor == 1.25f && r->n_divisors == 2 &&
          r->divisors[1] == 3 && r->long_divisors[0] == 1.5f);
    s.factors = 1;
    expect_arch(&s,
                "rope_factors_short.weight without rope_factors_long.weight: longrope needs both",
                &a, __LINE__);
    s.factors = 0, s.rope_freqs = 0;
    expect_arch(&s, "phi3.rope.scaling.attn_factor 1.25 without longrope's factors", &a, __LINE__);
    s.n_extra = 2, s.rope_freqs = 2;
    expect_arch(&s, "phi3 with rope_freqs.weight: not supported (Phi-3's RoPE scaling is longrope",
                &a, __LINE__);
    s.rope_freqs = 0, s.scaling = "linear", s.scaling_factor = 2;
    expect_arch(&s, "phi3 with rope.scaling.type (linear or yarn): not supported", &a, __LINE__);
    s.scaling = NULL, s.scaling_factor = 0, s.factors = 3, s.rope_freqs = 2;
    s.rope_divisors[1] = -1;
    expect_arch(&s, "rope_factors_short.weight[1] = -1: a frequency divisor must be in [1e-6, 1e6]",
                &a, __LINE__);
    s.rope_freqs = 3;
    expect_arch(&s, "rope_factors_short.weight", &a, __LINE__); /* 3 for 2 pairs */
    s = *llama;
    s.factors = 2, s.rope_freqs = 2, s.rope_divisors[0] = s.rope_divisors[1] = 1;
    expect_arch(&s,
                "rope_factors_short.weight / rope_factors_long.weight (longrope) in a llama "
                "file: they are phi3's",
                &a, __LINE__);
    CHECK(gguf_is_rope_tensor(GGUF_ROPE_FREQS) && gguf_is_rope_tensor("rope_factors_long.weight") &&
          gguf_is_rope_tensor("rope_factors_short.weight") &&
          !gguf_is_rope_tensor("token_embd.weight"));
}

static void test_arch(void) {
    GgufArch a;
    TinySpec llama = {"llama", 0, 0, 10, 2, 1, NULL, 0, {0}, 0, NULL, 0, NULL, 0, 0, 0};
    expect_arch(&llama, NULL, &a, __LINE__);
    CHECK(strcmp(a.arch, "llama") == 0 && a.n_layers == 2 && a.hidden == 8 && a.ffn == 12);
    CHECK(a.n_heads == 2 && a.n_kv_heads == 1 && a.head_dim == 4 && a.context_length == 16);
    CHECK(a.vocab_size == 10 && a.tied_embeddings == 1 && a.rope_theta == 1e5f);
    CHECK(a.norm_eps == 1e-5f && a.bos_token_id == -1 && a.eos_token_id == 2);
    CHECK(a.pad_token_id == -1);
    TinySpec s = llama;
    s.with_output = 1;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.tied_embeddings == 0);
    s = llama;
    s.vocab_rows = 9;
    expect_arch(&s, "tensor 'token_embd.weight' has ne [8, 9]", &a, __LINE__);
    s = llama;
    s.kv_heads = 3;
    expect_arch(&s, "head_count 2 is not a multiple of head_count_kv 3", &a, __LINE__);
    s = llama;
    s.heads = 3;
    s.kv_heads = 3;
    expect_arch(&s, "embedding_length 8 is not a multiple of head_count 3", &a, __LINE__);
    CHECK(a.rope_factor == 0 && a.n_rope_divisors == 0);
    /* RoPE scaling: llama3's divisors (rope_freqs) one a pair of a head, positive; linear */
    s = llama;
    s.rope_freqs = 2, s.rope_divisors[0] = 1, s.rope_divisors[1] = 6.5f;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.n_rope_divisors == 2 && a.rope_divisors[0] == 1 && a.rope_divisors[1] == 6.5f);
    s.rope_divisors[0] = 0;
    expect_arch(&s, "rope_freqs.weight[0] = 0: a frequency divisor must be in [1e-6, 1e6]", &a,
                __LINE__);
    s.rope_divisors[0] = 1e-30f; /* the fuzzer's: a frequency past 1e30 */
    expect_arch(&s, "rope_freqs.weight[0] = 1e-30: a frequency divisor must be in", &a, __LINE__);
    s.rope_freqs = 3;
    expect_arch(&s, "rope_freqs.weight", &a, __LINE__);
    s = llama;
    s.scaling = "linear";
    expect_arch(&s, "llama.rope.scaling.factor' not found", &a, __LINE__);
    s.scaling_factor = 4;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.rope_factor == 4 && !a.rope_yarn && a.n_rope_divisors == 0);
    s.rope_freqs = 2, s.rope_divisors[0] = s.rope_divisors[1] = 1;
    expect_arch(&s, "both linear RoPE scaling and rope_freqs.weight", &a, __LINE__);
    /* yarn: the factor; original_context_length (default context_length), the betas (32, 1)
     * and attn_factor (1) as written; a yarn_attn_factor only where it is the attention factor
     * llama.cpp computes; what transformers' YaRN does not compute refused */
    s = llama;
    s.scaling = "yarn";
    expect_arch(&s, "llama.rope.scaling.factor' not found", &a, __LINE__);
    s.scaling_factor = 4;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.rope_yarn && a.rope_factor == 4 && a.rope_orig_ctx == 16 && a.yarn_beta_fast == 32 &&
          a.yarn_beta_slow == 1 && a.rope_attn_factor == 1);
    s.yarn_key = "attn_factor", s.yarn_value = 1.25f;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.rope_attn_factor == 1.25f);
    s.yarn_key = "yarn_attn_factor", s.yarn_value = (float)(0.1 * log(4.0) + 1);
    expect_arch(&s, NULL, &a, __LINE__); /* the converter's, from a config without one */
    s.yarn_value = 1.5f;
    expect_arch(&s, "yarn_attn_factor 1.5 differs from the attention factor llama.cpp computes", &a,
                __LINE__);
    s.yarn_key = "yarn_beta_fast", s.yarn_value = 8;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.yarn_beta_fast == 8 && a.yarn_beta_slow == 1);
    s.yarn_key = "yarn_ext_factor", s.yarn_value = 0.5f;
    expect_arch(&s, "yarn_ext_factor 0.5 or yarn_log_multiplier 0 is not supported", &a, __LINE__);
    s.yarn_key = "yarn_log_multiplier", s.yarn_value = 0.1f;
    expect_arch(&s, "yarn_log_multiplier 0.1 is not supported", &a, __LINE__);
    s.yarn_key = "yarn_beta_slow", s.yarn_value = -1;
    expect_arch(&s, "yarn_beta_slow -1 is out of range", &a, __LINE__);
    s.yarn_key = NULL, s.rope_freqs = 2, s.rope_divisors[0] = s.rope_divisors[1] = 1;
    expect_arch(&s, "both yarn RoPE scaling and rope_freqs.weight", &a, __LINE__);
    s = llama;
    s.scaling = "linear", s.scaling_factor = 2, s.yarn_key = "attn_factor", s.yarn_value = 2;
    expect_arch(&s, "attn_factor 2 without YaRN is not supported", &a, __LINE__);
    s = llama;
    s.scaling = "longrope";
    expect_arch(&s, "RoPE scaling (llama.rope.scaling.type 'longrope') is not supported", &a,
                __LINE__);
    s.scaling = "none";
    expect_arch(&s, NULL, &a, __LINE__);
    s = llama;
    s.arch = "bert";
    expect_arch(&s, "architecture 'bert' is not supported", &a, __LINE__);
    s = llama; /* qwen2: llama's keys under its own name */
    s.arch = "qwen2";
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(strcmp(a.arch, "qwen2") == 0 && a.n_kv_heads == 1 && a.rope_theta == 1e5f);
    CHECK(a.norm_eps == 1e-5f && a.head_dim == 4 && a.tied_embeddings == 1);
    s.scaling = "yarn", s.scaling_factor = 4; /* Qwen2.5's long-context GGUFs */
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.rope_yarn && a.rope_factor == 4);
    s = llama; /* qwen3: heads of key_length, here twice hidden / heads */
    s.arch = "qwen3", s.key_length = 8;
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(strcmp(a.arch, "qwen3") == 0 && a.head_dim == 8 && a.n_heads == 2 && a.hidden == 8);
    s.heads = s.kv_heads = 3; /* 8 is no multiple of 3: fine with a key_length */
    expect_arch(&s, NULL, &a, __LINE__);
    CHECK(a.head_dim == 8);
    s.key_length = 0;
    expect_arch(&s, "is not a multiple of head_count 3 and there is no qwen3.attention.key_length",
                &a, __LINE__);

    test_gemma3_arch(&llama);
    test_gemma2_arch(&llama);
    test_gemma_scalar(&llama);
    test_phi3_arch(&llama);

    TinySpec gpt2 = {"gpt2", 1, 0, 10, 2, 2, NULL, 0, {0}, 0, NULL, 0, NULL, 0, 0, 0};
    expect_arch(&gpt2, NULL, &a, __LINE__);
    CHECK(strcmp(a.arch, "gpt2") == 0 && a.n_kv_heads == 2 && a.rope_theta == 0);
    CHECK(a.norm_eps == 1e-5f && a.tied_embeddings == 0 && a.context_length == 16);

    Gguf g; /* a key missing altogether */
    LfError err;
    CHECK_OK(open_golden(&g, &err), &err);
    EXPECT_FAIL(gguf_arch(&g, &a, err_), "architecture 'loraft-golden' is not supported");
    gguf_close(&g);
}

/* The real SmolLM2 file, when LORAFT_GGUF_SMOLLM2 points at it. */
static void test_smollm2(void) {
    const char *path = getenv("LORAFT_GGUF_SMOLLM2");
    if (!path || !*path) {
        printf("(LORAFT_GGUF_SMOLLM2 not set: the SmolLM2 config check is skipped)\n");
        return;
    }
    Gguf g;
    GgufArch a;
    LfError err;
    CHECK_OK(gguf_open(&g, path, &err), &err);
    CHECK_OK(gguf_arch(&g, &a, &err), &err);
    CHECK(strcmp(a.arch, "llama") == 0 && a.n_layers == 30 && a.hidden == 576 && a.ffn == 1536);
    CHECK(a.n_heads == 9 && a.n_kv_heads == 3 && a.head_dim == 64 && a.rope_theta == 100000.0f);
    CHECK(a.vocab_size == 49152 && a.tied_embeddings == 1 && a.context_length == 8192);
    CHECK(a.norm_eps == 1e-5f && a.bos_token_id == 1 && a.eos_token_id == 2);
    CHECK(a.pad_token_id == 2); /* transformers' config of the file says pad_token_id 2 too */
    CHECK(g.n_tensors == 272);
    gguf_close(&g);
}

static void test_hf_names(void) {
    static const struct {
        const char *arch, *gguf, *hf;
        GgufFix fix;
    } cases[] = {
        {"llama", "token_embd.weight", "model.embed_tokens.weight", GGUF_FIX_NONE},
        {"llama", "output_norm.weight", "model.norm.weight", GGUF_FIX_NONE},
        {"llama", "output.weight", "lm_head.weight", GGUF_FIX_NONE},
        {"llama", "blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", GGUF_FIX_NONE},
        {"llama", "blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight",
         GGUF_FIX_UNPERMUTE_Q},
        {"llama", "blk.3.attn_q.bias", "model.layers.3.self_attn.q_proj.bias",
         GGUF_FIX_UNPERMUTE_Q},
        {"llama", "blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight",
         GGUF_FIX_UNPERMUTE_K},
        {"llama", "blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight", GGUF_FIX_NONE},
        {"llama", "blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight",
         GGUF_FIX_NONE},
        {"llama", "blk.29.ffn_norm.weight", "model.layers.29.post_attention_layernorm.weight",
         GGUF_FIX_NONE},
        {"llama", "blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight", GGUF_FIX_NONE},
        {"llama", "blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight", GGUF_FIX_NONE},
        {"llama", "blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight", GGUF_FIX_NONE},
        /* qwen2: llama's names, q and k in HF's row order (llama.cpp rotates halves for it) */
        {"qwen2", "blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", GGUF_FIX_NONE},
        {"qwen2", "blk.3.attn_q.bias", "model.layers.3.self_attn.q_proj.bias", GGUF_FIX_NONE},
        {"qwen2", "blk.0.attn_k.bias", "model.layers.0.self_attn.k_proj.bias", GGUF_FIX_NONE},
        {"qwen2", "blk.0.attn_v.bias", "model.layers.0.self_attn.v_proj.bias", GGUF_FIX_NONE},
        {"qwen2", "output.weight", "lm_head.weight", GGUF_FIX_NONE},
        {"qwen2", "blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight", GGUF_FIX_NONE},
        {"qwen3", "blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight",
         GGUF_FIX_NONE},
        {"qwen3", "blk.0.attn_k_norm.weight", "model.layers.0.self_attn.k_norm.weight",
         GGUF_FIX_NONE},
        {"qwen3", "blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", GGUF_FIX_NONE},
        /* Gemma: norms of their own, q and k as HF stores them; Gemma 3's head norms */
        {"gemma2", "blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight",
         GGUF_FIX_NONE},
        {"gemma2", "blk.1.post_attention_norm.weight",
         "model.layers.1.post_attention_layernorm.weight", GGUF_FIX_NONE},
        {"gemma2", "blk.1.ffn_norm.weight", "model.layers.1.pre_feedforward_layernorm.weight",
         GGUF_FIX_NONE},
        {"gemma2", "blk.1.post_ffw_norm.weight", "model.layers.1.post_feedforward_layernorm.weight",
         GGUF_FIX_NONE},
        {"gemma2", "blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", GGUF_FIX_NONE},
        {"gemma2", "output_norm.weight", "model.norm.weight", GGUF_FIX_NONE},
        {"gemma3", "blk.1.ffn_norm.weight", "model.layers.1.pre_feedforward_layernorm.weight",
         GGUF_FIX_NONE},
        {"gemma3", "blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight",
         GGUF_FIX_NONE},
        {"gemma3", "blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", GGUF_FIX_NONE},
        /* Phi-3: q, k, v one linear and gate, up one, neither permuted */
        {"phi3", "blk.0.attn_qkv.weight", "model.layers.0.self_attn.qkv_proj.weight",
         GGUF_FIX_NONE},
        {"phi3", "blk.1.ffn_up.weight", "model.layers.1.mlp.gate_up_proj.weight", GGUF_FIX_NONE},
        {"phi3", "blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight",
         GGUF_FIX_NONE},
        {"phi3", "blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight",
         GGUF_FIX_NONE},
        {"phi3", "blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", GGUF_FIX_NONE},
        {"phi3", "output.weight", "lm_head.weight", GGUF_FIX_NONE},
        {"gpt2", "token_embd.weight", "transformer.wte.weight", GGUF_FIX_NONE},
        {"gpt2", "position_embd.weight", "transformer.wpe.weight", GGUF_FIX_NONE},
        {"gpt2", "output_norm.bias", "transformer.ln_f.bias", GGUF_FIX_NONE},
        {"gpt2", "output.weight", "lm_head.weight", GGUF_FIX_NONE},
        {"gpt2", "blk.0.attn_norm.weight", "transformer.h.0.ln_1.weight", GGUF_FIX_NONE},
        {"gpt2", "blk.0.attn_qkv.weight", "transformer.h.0.attn.c_attn.weight", GGUF_FIX_TRANSPOSE},
        {"gpt2", "blk.0.attn_qkv.bias", "transformer.h.0.attn.c_attn.bias", GGUF_FIX_NONE},
        {"gpt2", "blk.5.attn_output.weight", "transformer.h.5.attn.c_proj.weight",
         GGUF_FIX_TRANSPOSE},
        {"gpt2", "blk.5.ffn_norm.bias", "transformer.h.5.ln_2.bias", GGUF_FIX_NONE},
        {"gpt2", "blk.5.ffn_up.weight", "transformer.h.5.mlp.c_fc.weight", GGUF_FIX_TRANSPOSE},
        {"gpt2", "blk.5.ffn_down.bias", "transformer.h.5.mlp.c_proj.bias", GGUF_FIX_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[128];
        GgufFix fix = (GgufFix)-1;
        LfError err;
        CHECK_OK(gguf_hf_name(cases[i].arch, cases[i].gguf, out, sizeof out, &fix, &err), &err);
        int ok = strcmp(out, cases[i].hf) == 0 && fix == cases[i].fix;
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s -> %s (fix %d)\n", cases[i].gguf, out, fix);
        fix = (GgufFix)-1; /* and back, with the same fix (to be inverted) */
        CHECK_OK(gguf_name_of(cases[i].arch, cases[i].hf, out, sizeof out, &fix, &err), &err);
        ok = strcmp(out, cases[i].gguf) == 0 && fix == cases[i].fix;
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s -> %s (fix %d)\n", cases[i].hf, out, fix);
    }
    char out[32];
    GgufFix fix;
    EXPECT_FAIL(gguf_hf_name("llama", "blk.0.attn_qkv.weight", out, 32, &fix, err_),
                "'blk.0.attn_qkv.weight' has no Hugging Face counterpart in a llama model");
    EXPECT_FAIL(gguf_hf_name("gpt2", "blk.0.attn_q.weight", out, 32, &fix, err_), "counterpart");
    EXPECT_FAIL(gguf_hf_name("llama", "blk.0.attn_q_norm.weight", out, 64, &fix, err_),
                "counterpart"); /* Qwen3's alone */
    EXPECT_FAIL(gguf_hf_name("gemma2", "blk.0.attn_q_norm.weight", out, 64, &fix, err_),
                "no Hugging Face counterpart in a gemma2 model"); /* Gemma 3's alone */
    EXPECT_FAIL(
        gguf_name_of("gemma2", "model.layers.0.self_attn.k_norm.weight", out, 64, &fix, err_),
        "no GGUF counterpart in a gemma2 model");
    EXPECT_FAIL(gguf_hf_name("phi3", "blk.0.attn_q.weight", out, 64, &fix, err_),
                "no Hugging Face counterpart in a phi3 model"); /* fused: attn_qkv */
    EXPECT_FAIL(gguf_name_of("phi3", "model.layers.0.mlp.gate_proj.weight", out, 64, &fix, err_),
                "no GGUF counterpart in a phi3 model");
    EXPECT_FAIL(gguf_hf_name("llama", "blk.x.attn_q.weight", out, 32, &fix, err_), "counterpart");
    EXPECT_FAIL(gguf_hf_name("llama", "blk.1.attn_q", out, 32, &fix, err_), "counterpart");
    EXPECT_FAIL(gguf_hf_name("llama", "rope_freqs.weight", out, 32, &fix, err_), "counterpart");
    EXPECT_FAIL(gguf_hf_name("llama", "blk.1.ffn_down.weight", out, 16, &fix, err_),
                "does not fit in 16 bytes");
    EXPECT_FAIL(gguf_hf_name("bert", "output.weight", out, 32, &fix, err_), "architecture 'bert'");
    EXPECT_FAIL(
        gguf_name_of("llama", "model.layers.0.self_attn.q_proj.lora_A.weight", out, 32, &fix, err_),
        "'model.layers.0.self_attn.q_proj.lora_A.weight' has no GGUF counterpart");
    EXPECT_FAIL(gguf_name_of("llama", "transformer.h.0.ln_1.weight", out, 32, &fix, err_),
                "counterpart in a llama model");
    EXPECT_FAIL(gguf_name_of("llama", "model.layers.x.mlp.up_proj.weight", out, 32, &fix, err_),
                "counterpart");
    EXPECT_FAIL(gguf_name_of("llama", "model.layers.1.mlp.down_proj.weight", out, 16, &fix, err_),
                "does not fit in 16 bytes");
}

/* ------------------------------------------------------------- permutation ---- */

/* numpy's w.reshape(n_head, 2, hd / 2, cols).swapaxes(1, 2).reshape(rows, cols): element
 * [h][a][b] of the swapped array (shape n_head, hd / 2, 2) is element [h][b][a] of the
 * reshaped original (shape n_head, 2, hd / 2). */
static void numpy_permute(const float *hf, float *gguf, int n_head, int hd, int cols) {
    for (int h = 0; h < n_head; h++)
        for (int a = 0; a < hd / 2; a++)
            for (int b = 0; b < 2; b++) {
                int dst = (h * (hd / 2) + a) * 2 + b, src = (h * 2 + b) * (hd / 2) + a;
                for (int c = 0; c < cols; c++) gguf[dst * cols + c] = hf[src * cols + c];
            }
}

static void test_permute(void) {
    LfError err;
    /* By hand: one head of 4 rows, HF rows r0 r1 r2 r3 are GGUF rows r0 r2 r1 r3. */
    float hf4[4] = {0, 1, 2, 3}, g4[4], back[4];
    CHECK_OK(gguf_permute_rows(hf4, g4, 4, 1, 1, &err), &err);
    CHECK(g4[0] == 0 && g4[1] == 2 && g4[2] == 1 && g4[3] == 3);
    CHECK_OK(gguf_unpermute_rows(g4, back, 4, 1, 1, &err), &err);
    CHECK(memcmp(back, hf4, sizeof hf4) == 0);

    /* q of SmolLM2's head geometry (9 heads of 64) and k with 3 kv heads, 5 columns. */
    static const int heads[2] = {9, 3};
    for (int k = 0; k < 2; k++) {
        int rows = heads[k] * 64, cols = 5;
        float *hf = malloc(sizeof(float) * rows * cols), *gg = malloc(sizeof(float) * rows * cols);
        float *got = malloc(sizeof(float) * rows * cols);
        for (int i = 0; i < rows * cols; i++) hf[i] = (float)i;
        numpy_permute(hf, gg, heads[k], 64, cols);
        CHECK_OK(gguf_unpermute_rows(gg, got, rows, cols, heads[k], &err), &err);
        CHECK(memcmp(got, hf, sizeof(float) * rows * cols) == 0);
        CHECK_OK(gguf_permute_rows(hf, got, rows, cols, heads[k], &err), &err);
        CHECK(memcmp(got, gg, sizeof(float) * rows * cols) == 0);
        free(hf);
        free(gg);
        free(got);
    }
    /* Packed rows move as whole byte strings (here 3 bytes a row). */
    const char packed[] = "000222111333";
    char unpacked[13] = {0};
    CHECK_OK(gguf_unpermute_packed_rows(packed, unpacked, 4, 3, 1, &err), &err);
    CHECK(strcmp(unpacked, "000111222333") == 0);
    CHECK_OK(gguf_unpermute_rows(hf4, back, 0, 1, 2, &err), &err); /* empty: nothing moves */
    /* empty rows, however many (a fuzzed file's [2^60, 0]): returns at once */
    CHECK_OK(gguf_unpermute_rows(hf4, back, (int64_t)1 << 60, 0, 2, &err), &err);
    EXPECT_FAIL(gguf_unpermute_rows(hf4, back, 4, 1, 3, err_), "4 rows cannot be split into 3");
    EXPECT_FAIL(gguf_unpermute_rows(hf4, back, 3, 1, 1, err_), "3 rows");
    EXPECT_FAIL(gguf_permute_rows(hf4, back, 4, 1, 0, err_), "0 heads");
}

/* ----------------------------------------------------------------- quant API ---- */

static void test_quant_api(void) {
    CHECK(strcmp(quant_type_name(GGML_Q6_K), "Q6_K") == 0 && quant_type_name(4) == NULL &&
          quant_type_name(1000) == NULL);
    CHECK(quant_block_elems(GGML_Q4_K) == 256 && quant_block_bytes(GGML_Q4_K) == 144);
    CHECK(quant_block_elems(GGML_Q8_0) == 32 && quant_block_bytes(GGML_Q8_0) == 34);
    CHECK(quant_can_dequantize(GGML_BF16) && !quant_can_dequantize(GGML_Q3_K) &&
          !quant_can_dequantize(GGML_IQ4_XS) && !quant_can_dequantize(99));
    float out[32];
    unsigned char q8[34] = {0};
    CHECK(quant_dequantize(GGML_Q8_0, q8, out, 31) == -1);
    CHECK(quant_dequantize(GGML_Q2_K, q8, out, 0) == -1);
    CHECK(quant_dequantize(GGML_Q8_0, q8, out, 32) == 0 && out[0] == 0);
    LfError err;
    CHECK(quant_quantize(GGML_Q4_K, out, 256, q8, &err) == -1 && strstr(err.msg, "Q4_K"));
    CHECK(quant_quantize(GGML_Q8_0, out, 31, q8, &err) == -1 && strstr(err.msg, "31"));
}

/* Every KV of the golden (the gguf package's file: each value type, string arrays) copied into a
 * new file with GgufWriteKV.copy reads back with the same type, count and bytes. */
static void test_copy_kvs(void) {
    Gguf g, c;
    LfError err;
    CHECK_OK(open_golden(&g, &err), &err);
    if (g.n_kvs == 0) return;
    GgufWriteKV kvs[64];
    int n = 0;
    for (int i = 0; i < g.n_kvs && n < 64; i++)
        if (strcmp(g.kvs[i].key, "general.alignment") != 0)
            kvs[n++] = (GgufWriteKV){.key = g.kvs[i].key, .copy = &g.kvs[i]};
    const char *path = tmp_path("copy.gguf");
    CHECK_OK(gguf_write(path, kvs, n, NULL, 0, 32, &err), &err);
    CHECK_OK(gguf_open(&c, path, &err), &err);
    CHECK(c.n_kvs == n);
    for (int i = 0; i < n && i < c.n_kvs; i++) {
        const GgufKV *a = kvs[i].copy, *b = &c.kvs[i];
        int same = strcmp(a->key, b->key) == 0 && gguf_kv_equal(a, b);
        CHECK(same);
        if (!same) fprintf(stderr, "  key '%s' differs after the copy\n", a->key);
    }
    if (c.n_kvs > 1) CHECK(!gguf_kv_equal(&c.kvs[0], &c.kvs[1])); /* two different keys' values */
    gguf_close(&c);
    gguf_close(&g);
}

/* quant_quantize: F16 is f32_to_f16; Q8_0 follows quantize_row_q8_0_ref: d = amax / 127 as f16,
 * q = roundf(x / d) with halves away from zero, and dequantises to within d / 2 of x. */
static void test_quantize(void) {
    LfError err;
    float x[64], back[64];
    uint16_t h[64];
    unsigned char q[68];
    for (int i = 0; i < 64; i++) x[i] = sinf(0.7f * (float)i) * (i < 32 ? 3.0f : 1e-3f);
    CHECK_OK(quant_quantize(GGML_F16, x, 64, h, &err), &err);
    int same = 1;
    for (int i = 0; i < 64; i++) same &= h[i] == f32_to_f16(x[i]); /* little-endian host */
    CHECK(same);
    CHECK_OK(quant_quantize(GGML_Q8_0, x, 64, q, &err), &err);
    CHECK(quant_dequantize(GGML_Q8_0, q, back, 64) == 0);
    for (int b = 0; b < 2; b++) {
        float amax = 0, worst = 0, d = f16_to_f32((uint16_t)(q[34 * b] | q[34 * b + 1] << 8));
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
            worst = (float)worse(worst, fabsf(back[32 * b + j] - x[32 * b + j]));
        }
        CHECK(d == f16_to_f32(f32_to_f16(amax / 127)));
        CHECK_CLOSE(worst, 0, 0.5 * d + 1e-3 * amax, 0); /* + d's own f16 rounding, times 127 */
    }
    /* amax 127: d = 1 exactly, so 2.5 -> 3 and -2.5 -> -3 (roundf; rint would give 2 and -2) */
    float halves[32] = {127, -2.5f, 2.5f, 0.49f, -0.5f};
    CHECK_OK(quant_quantize(GGML_Q8_0, halves, 32, q, &err), &err);
    CHECK(q[0] == 0x00 && q[1] == 0x3c && q[2] == 127 && (int8_t)q[3] == -3 && q[4] == 3 &&
          q[5] == 0 && (int8_t)q[6] == -1 && q[7] == 0);
    float zeros[32] = {0};
    CHECK_OK(quant_quantize(GGML_Q8_0, zeros, 32, q, &err), &err);
    CHECK(q[0] == 0 && q[1] == 0 && q[2] == 0 && q[33] == 0);
    EXPECT_FAIL(quant_quantize(GGML_Q8_0, x, 31, q, err_), "not a whole number of Q8_0 blocks");
    EXPECT_FAIL(quant_quantize(GGML_Q4_K, x, 256, q, err_), "cannot quantise to Q4_K");
    x[5] = NAN;
    EXPECT_FAIL(quant_quantize(GGML_Q8_0, x, 32, q, err_), "value 5 is nan");
}

/* NF4 (bitsandbytes' quantize_4bit; tests/test_quant_bnb.sh compares the bytes): absmax as it is,
 * each value the code nearest x / absmax, values 2k and 2k + 1 in the high and low nibble of byte
 * k; a block of zeros stays zeros; never a GGUF type. */
static void test_nf4(void) {
    LfError err;
    float x[192], back[192];
    unsigned char q[3 * 36];
    for (int i = 0; i < 192; i++)
        x[i] = i < 128 ? sinf(1.3f * (float)i) * (i < 64 ? 0.02f : 7.0f) : 0;
    x[0] = 0.05f, x[1] = -0.05f; /* block 0's absmax, twice: codes 15 and 0 */
    CHECK_OK(quant_quantize(QUANT_NF4, x, 192, q, &err), &err);
    CHECK(quant_dequantize(QUANT_NF4, q, back, 192) == 0);
    CHECK(q[4] == 0xF0 && back[0] == 0.05f && back[1] == -0.05f);
    int nearest = 1, decoded = 1;
    for (int b = 0; b < 3; b++) {
        float amax = 0, stored;
        for (int j = 0; j < 64; j++) amax = fmaxf(amax, fabsf(x[64 * b + j]));
        memcpy(&stored, q + 36 * b, 4); /* little-endian host */
        CHECK(stored == amax);
        for (int j = 0; j < 64; j++) {
            int e = 64 * b + j,
                code = j % 2 ? q[36 * b + 4 + j / 2] & 0xF : q[36 * b + 4 + j / 2] >> 4;
            float v = amax > 0 ? x[e] / amax : 0;
            for (int k = 0; k < 16; k++)
                nearest &= fabsf(v - qb_nf4(code)) <= fabsf(v - qb_nf4(k)) + 1e-6f;
            decoded &= back[e] == qb_nf4(code) * amax;
        }
    }
    CHECK(nearest && decoded && back[150] == 0 && qb_nf4(7) == 0 && qb_nf4(0) == -1);
    CHECK(!strcmp(quant_type_name(QUANT_NF4), "NF4") && quant_block_elems(QUANT_NF4) == 64 &&
          quant_block_bytes(QUANT_NF4) == 36 && quant_can_dequantize(QUANT_NF4));
    CHECK(!quant_is_ggml(QUANT_NF4) && !quant_can_quantize(QUANT_NF4) && quant_is_ggml(GGML_Q4_0));
    EXPECT_FAIL(quant_quantize(QUANT_NF4, x, 96, q, err_), "not a whole number of NF4 blocks");
    x[70] = INFINITY;
    EXPECT_FAIL(quant_quantize(QUANT_NF4, x, 128, q, err_), "value 70 is inf");
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_malformed_header();
    test_malformed_kvs();
    test_malformed_alignment();
    test_malformed_tensors();
    test_edge_valid();
    test_golden_dequant();
    test_golden_quantize();
    test_golden_metadata();
    test_round_trip();
    test_write_errors();
    test_arch();
    test_smollm2();
    test_hf_names();
    test_permute();
    test_quant_api();
    test_copy_kvs();
    test_quantize();
    test_nf4();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report();
}
