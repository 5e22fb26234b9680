/* test_safetensors.c: the safetensors reader/writer, the f16/bf16 conversions
 * and the file helpers they stand on (atomic writes, mkdir -p, path_join).
 * Every malformed-header rule the reader enforces has a case here, built byte
 * by byte. Reference bit patterns for the conversions were computed with numpy
 * (float16) and torch (bfloat16). */
#include "check.h"
#include "loraft/fileio.h"
#include "loraft/safetensors.h"

#include <ftw.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/loraft_st_XXXXXX";

static const char *tmp_path(const char *name) {
    static char buf[512];
    LfError err;
    if (path_join(buf, sizeof buf, tmpdir, name, &err) != 0) abort();
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) abort();
}

/* A safetensors file made of an 8-byte length, `header` verbatim and data_len
 * zero bytes. */
static void write_raw(const char *path, const char *header, size_t header_len, size_t data_len) {
    size_t len = 8 + header_len + data_len;
    unsigned char *buf = calloc(len, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    memcpy(buf + 8, header, header_len);
    write_bytes(path, buf, len);
    free(buf);
}

/* Opening path must fail with a message naming the file and containing phrase.
 */
static void expect_open_fails(const char *path, const char *phrase, int line) {
    SafeTensors st;
    LfError err = {{0}};
    int rc = safetensors_open(&st, path, &err);
    int ok = rc == -1 && strstr(err.msg, path) && strstr(err.msg, phrase);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  line %d: expected '%s', got rc=%d '%s'\n", line, phrase, rc, err.msg);
    CHECK(st.tensors == NULL && st.map == NULL); /* left closed */
    safetensors_close(&st);
}

static void expect_header_fails(const char *header, size_t data_len, const char *phrase, int line) {
    const char *path = tmp_path("bad.safetensors");
    write_raw(path, header, strlen(header), data_len);
    expect_open_fails(path, phrase, line);
}
#define BAD(header, data_len, phrase) expect_header_fails(header, data_len, phrase, __LINE__)

#define F32_ENTRY(name, b, e)                                                                      \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void) {
    const char *path = tmp_path("short.safetensors");
    write_bytes(path, "", 0);
    expect_open_fails(path, "empty file", __LINE__);
    write_bytes(path, "\x02\0\0\0\0", 5);
    expect_open_fails(path, "shorter than 8 bytes", __LINE__);
    write_bytes(path, "\xe8\x03\0\0\0\0\0\0{}", 10); /* header length 1000 */
    expect_open_fails(path, "header length 1000 is larger than", __LINE__);
    write_bytes(path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    expect_open_fails(path, "is larger than", __LINE__);
    write_raw(path, "{\"a\x00\":1}", 8, 0);
    expect_open_fails(path, "contains a NUL byte", __LINE__);

    BAD("", 0, "not valid JSON");
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("{} x", 0, "trailing bytes");
    BAD("[1,2]", 0, "header is not a JSON object");
    BAD("\"str\"", 0, "header is not a JSON object");
    BAD("{\"a\":5}", 0, "tensor 'a': entry is not a JSON object");
    BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "tensor 'a': missing or invalid dtype");
    BAD("{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "invalid dtype");
    BAD("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "invalid dtype");
    BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape must be a list");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
        "shape must be a list");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
        "non-negative integers");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
        "non-negative integers");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape must be");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":"
        "[0,1]}}",
        1, "at most 8");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets must be [begin, end]");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
        "data_offsets must be [begin, end]");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
        "data_offsets must be [begin, end]");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "begin > end");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
        "outside the data block of 4 bytes");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
        "shape [2, 3] x F32 does not match the byte length 20");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],"
        "\"data_offsets\":[0,4]}}",
        4, "does not match the byte length");
    BAD("{" F32_ENTRY("a", 0, 8) "," F32_ENTRY("b", 4, 12) "}", 12, "overlaps");
    BAD("{" F32_ENTRY("a", 0, 8) "," F32_ENTRY("b", 0, 8) "}", 8, "overlaps");
    BAD("{" F32_ENTRY("a", 0, 8) "," F32_ENTRY("b", 12, 20) "}", 20, "hole in the data block");
    BAD("{" F32_ENTRY("a", 4, 12) "}", 12, "hole in the data block");
    BAD("{" F32_ENTRY("a", 0, 8) "}", 12, "hole in the data block");
    BAD("{}", 4, "hole in the data block");
    BAD("{" F32_ENTRY("a", 0, 8) "," F32_ENTRY("a", 8, 16) "}", 16, "duplicate tensor name 'a'");
    BAD("{\"__metadata__\":5}", 0, "__metadata__ must be an object of string -> string");
    BAD("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ must be an object of string -> string");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "more than once");
    char long_name[400];
    snprintf(long_name, sizeof long_name, "{\"%0300d\":5}", 0);
    BAD(long_name, 0, "longer than 255 bytes");

    expect_open_fails(tmp_path("does_not_exist.safetensors"), "cannot open", __LINE__);
    expect_open_fails(tmpdir, "Is a directory", __LINE__);
}

/* Minimal valid files are accepted: no tensors; padding spaces; zero-size
 * tensors anywhere. */
static void test_edge_valid(void) {
    const char *path = tmp_path("edge.safetensors");
    const char *headers[] = {
        "{}",
        "{\"__metadata__\":{}}    ",
        "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}"
        "," F32_ENTRY("a", 0, 8) "}",
        "{" F32_ENTRY("b", 8, 16) ",\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_"
                                  "offsets\":[16,24]}," F32_ENTRY("a", 0, 8) "}",
    };
    size_t data_len[] = {0, 0, 8, 24}, n_tensors[] = {0, 0, 2, 3};
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        write_raw(path, headers[i], strlen(headers[i]), data_len[i]);
        SafeTensors st;
        LfError err = {{0}};
        CHECK(safetensors_open(&st, path, &err) == 0);
        if (err.msg[0]) fprintf(stderr, "  case %zu: %s\n", i, err.msg);
        CHECK(st.n_tensors == (int)n_tensors[i]);
        safetensors_close(&st);
    }
}

/* Writes one tensor of every dtype (plus a scalar and an empty tensor), reads
 * them back. */
static void test_round_trip(void) {
    enum { N = ST_BOOL + 3 };
    unsigned char bytes[N][48];
    StEntry e[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        for (size_t j = 0; j < sizeof bytes[i]; j++) bytes[i][j] = (unsigned char)(i * 31 + j * 7);
        snprintf(names[i], sizeof names[i], "layer.%d.weight", i);
        StDtype dt = i <= ST_BOOL ? (StDtype)i : ST_F32;
        e[i] = (StEntry){names[i], dt, 2, {2, (int64_t)(24 / st_dtype_size(dt))}, bytes[i]};
    }
    e[N - 2].ndim = 0;     /* scalar */
    e[N - 1].shape[0] = 0; /* empty */
    e[N - 1].data = NULL;
    const char *meta[] = {"format", "pt", "note", "quote \" and \\ and \xc3\xa9", NULL};
    const char *path = tmp_path("rt.safetensors");
    LfError err = {{0}};
    CHECK(safetensors_write(path, e, N, meta, &err) == 0);

    SafeTensors st;
    CHECK(safetensors_open(&st, path, &err) == 0);
    CHECK(st.n_tensors == N);
    for (int i = 0; i < N && st.n_tensors == N; i++) {
        const StTensor *t = safetensors_find(&st, names[i]);
        CHECK(t && t == &st.tensors[i] && t->dtype == e[i].dtype && t->ndim == e[i].ndim);
        if (!t) continue;
        size_t want = (size_t)(e[i].ndim == 0 ? 1 : e[i].shape[0] * e[i].shape[1]) *
                      st_dtype_size(e[i].dtype);
        CHECK(t->nbytes == want && (size_t)st_numel(t) * st_dtype_size(t->dtype) == want);
        CHECK(memcmp(t->data, bytes[i], want) == 0);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == e[i].shape[d]);
    }
    CHECK(safetensors_find(&st, "nope") == NULL);
    CHECK(strcmp(safetensors_metadata(&st, "format"), "pt") == 0);
    CHECK(strcmp(safetensors_metadata(&st, "note"), meta[3]) == 0);
    CHECK(safetensors_metadata(&st, "absent") == NULL);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)((const unsigned char *)st.map)[i] << (8 * i);
    CHECK(hlen % 8 == 0 && st.tensors[0].data == (const unsigned char *)st.map + 8 + hlen);
    safetensors_close(&st);
    safetensors_close(&st); /* closing twice is harmless */

    /* No metadata: safetensors_metadata returns NULL. */
    CHECK(safetensors_write(path, e, 1, NULL, &err) == 0);
    CHECK(safetensors_open(&st, path, &err) == 0);
    CHECK(st.metadata == NULL && safetensors_metadata(&st, "format") == NULL);
    safetensors_close(&st);
}

static void test_read_f32(void) {
    float f[6] = {1, -2, 0.5f, 3.25f, -0.125f, 1e-3f};
    uint16_t h[6], b[6];
    for (int i = 0; i < 6; i++) h[i] = f32_to_f16(f[i]), b[i] = f32_to_bf16(f[i]);
    int32_t ints[6] = {0};
    StEntry e[] = {{"f32", ST_F32, 2, {2, 3}, f},
                   {"f16", ST_F16, 2, {2, 3}, h},
                   {"bf16", ST_BF16, 2, {2, 3}, b},
                   {"i32", ST_I32, 2, {2, 3}, ints}};
    const char *path = tmp_path("f32.safetensors");
    LfError err = {{0}};
    CHECK(safetensors_write(path, e, 4, NULL, &err) == 0);
    SafeTensors st;
    CHECK(safetensors_open(&st, path, &err) == 0);
    int64_t shape[2] = {2, 3}, wrong[2] = {3, 2};
    float out[6];
    CHECK(safetensors_read_f32(&st, "f32", 2, shape, out, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK(out[i] == f[i]);
    CHECK(safetensors_read_f32(&st, "f16", 2, shape, out, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK_CLOSE(out[i], f[i], 0, 1.0 / 2048); /* f16: 11-bit mantissa */
    CHECK(safetensors_read_f32(&st, "bf16", 2, shape, out, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK_CLOSE(out[i], f[i], 0, 1.0 / 256); /* bf16: 8-bit mantissa */

    CHECK(safetensors_read_f32(&st, "f32", 2, wrong, out, &err) == -1);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "'f32' has shape [2, 3], expected [3, 2]"));
    CHECK(safetensors_read_f32(&st, "f32", 1, shape, out, &err) == -1);
    CHECK(strstr(err.msg, "expected [2]") != NULL);
    CHECK(safetensors_read_f32(&st, "missing", 2, shape, out, &err) == -1);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "tensor 'missing' not found"));
    CHECK(safetensors_read_f32(&st, "i32", 2, shape, out, &err) == -1);
    CHECK(strstr(err.msg, "dtype I32, expected F32, F16 or BF16") != NULL);
    safetensors_close(&st);
}

static void test_write_errors(void) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("keep.safetensors"));
    float x[2] = {1, 2};
    StEntry good = {"x", ST_F32, 1, {2}, x};
    LfError err = {{0}};
    CHECK(safetensors_write(path, &good, 1, NULL, &err) == 0);
    struct stat before, after;
    CHECK(stat(path, &before) == 0);

    StEntry dup[] = {good, good};
    CHECK(safetensors_write(path, dup, 2, NULL, &err) == -1 && strstr(err.msg, "duplicate"));
    StEntry bad = {"y", ST_F32, 1, {-1}, x};
    CHECK(safetensors_write(path, &bad, 1, NULL, &err) == -1 && strstr(err.msg, "'y'"));
    bad = (StEntry){"__metadata__", ST_F32, 1, {2}, x};
    CHECK(safetensors_write(path, &bad, 1, NULL, &err) == -1 &&
          strstr(err.msg, "invalid tensor name"));
    const char *odd_meta[] = {"k", NULL};
    CHECK(safetensors_write(path, &good, 1, odd_meta, &err) == -1 &&
          strstr(err.msg, "'k' has no value"));
    CHECK(safetensors_write(tmp_path("no/such/dir.safetensors"), &good, 1, NULL, &err) == -1);
    CHECK(strstr(err.msg, "cannot create") != NULL);

    CHECK(stat(path, &after) == 0 && after.st_size == before.st_size &&
          after.st_ino == before.st_ino);
}

static void test_conversions(void) {
    /* f32 bits -> f16 bits (numpy astype(float16)): ties, overflow, subnormals,
     * signs. */
    static const uint32_t f16_in[] = {0x3f800000, 0x3dcccccd, 0x477fe000, 0x477fefff, 0x477ff000,
                                      0x33000000, 0x33000001, 0x33c00000, 0x387fc000, 0x38800000,
                                      0x3f801000, 0x3f803000, 0x7f800000, 0xff800000, 0x80000000,
                                      0x7f7fffff, 0x00018000, 0xc2f6e979, 0x80000001};
    static const uint16_t f16_out[] = {0x3c00, 0x2e66, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001,
                                       0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c02, 0x7c00, 0xfc00,
                                       0x8000, 0x7c00, 0x0000, 0xd7b7, 0x8000};
    /* f32 bits -> bf16 bits (torch .to(bfloat16)). */
    static const uint32_t bf_in[] = {0x3f800000, 0x3dcccccd, 0x477fe000, 0x7f7fffff, 0x00018000,
                                     0x3f808000, 0x3f818000, 0xc2f6e979, 0xff800000, 0x80000000};
    static const uint16_t bf_out[] = {0x3f80, 0x3dcd, 0x4780, 0x7f80, 0x0002,
                                      0x3f80, 0x3f82, 0xc2f7, 0xff80, 0x8000};
    /* f16 bits -> f32 bits (numpy astype(float32)). */
    static const uint16_t h_in[] = {0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff,
                                    0x7c00, 0xfc00, 0x8001, 0xc000, 0x3555};
    static const uint32_t h_out[] = {0x33800000, 0x387fc000, 0x38800000, 0x3f800000, 0x477fe000,
                                     0x7f800000, 0xff800000, 0xb3800000, 0xc0000000, 0x3eaaa000};
    for (size_t i = 0; i < sizeof f16_in / sizeof *f16_in; i++) {
        float f;
        memcpy(&f, &f16_in[i], 4);
        CHECK(f32_to_f16(f) == f16_out[i]);
        if (f32_to_f16(f) != f16_out[i])
            fprintf(stderr, "  f16 case %zu: %04x\n", i, f32_to_f16(f));
    }
    for (size_t i = 0; i < sizeof bf_in / sizeof *bf_in; i++) {
        float f;
        memcpy(&f, &bf_in[i], 4);
        CHECK(f32_to_bf16(f) == bf_out[i]);
        uint32_t back_bits;
        float back = bf16_to_f32(bf_out[i]);
        memcpy(&back_bits, &back, 4);
        CHECK(back_bits == (uint32_t)bf_out[i] << 16);
    }
    for (size_t i = 0; i < sizeof h_in / sizeof *h_in; i++) {
        float f = f16_to_f32(h_in[i]);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        CHECK(bits == h_out[i]);
    }
    CHECK(isnan(f16_to_f32(f32_to_f16(NAN))) && isnan(bf16_to_f32(f32_to_bf16(NAN))));
    CHECK(isnan(f16_to_f32(0x7e00)) && isnan(bf16_to_f32(0x7fc1)));
    CHECK(signbit(f16_to_f32(0x8000)) && f16_to_f32(0x8000) == 0);
    /* Every finite f16 survives f16 -> f32 -> f16 exactly. */
    int bad = 0;
    for (uint32_t x = 0; x < 0x10000; x++)
        if ((x & 0x7c00) != 0x7c00 && f32_to_f16(f16_to_f32((uint16_t)x)) != x) bad++;
    CHECK(bad == 0);
}

static void test_fileio(void) {
    LfError err = {{0}};
    char *data;
    size_t len;
    CHECK(file_read_all(tmp_path("missing.txt"), &data, &len, &err) == -1);
    CHECK(strstr(err.msg, "missing.txt") && strstr(err.msg, "No such file"));
    CHECK(file_read_all(tmpdir, &data, &len, &err) == -1 && strstr(err.msg, "Is a directory"));

    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("a.txt"));
    CHECK(file_write_atomic(path, "old", 3, &err) == 0);
    CHECK(file_write_atomic(path, "hello\0x", 7, &err) == 0);
    CHECK(file_read_all(path, &data, &len, &err) == 0);
    CHECK(len == 7 && memcmp(data, "hello\0x", 8) == 0); /* embedded NUL kept, NUL-terminated */
    free(data);

    /* An aborted stream leaves the old file and no temp file. */
    AtomicFile f;
    CHECK(atomic_file_open(&f, path, &err) == 0);
    CHECK(atomic_file_write(&f, "partial", 7, &err) == 0);
    CHECK(access(f.tmp_path, F_OK) == 0);
    atomic_file_abort(&f);
    CHECK(access(f.tmp_path, F_OK) != 0);
    CHECK(file_read_all(path, &data, &len, &err) == 0 && len == 7);
    free(data);
    /* Renaming over a directory fails: the temp file is removed, the directory
     * stays. */
    char sub[512];
    snprintf(sub, sizeof sub, "%s", tmp_path("d1/d2/d3"));
    CHECK(dir_create(sub, &err) == 0);
    CHECK(dir_create(sub, &err) == 0); /* exists: fine */
    CHECK(atomic_file_open(&f, sub, &err) == 0);
    CHECK(atomic_file_commit(&f, &err) == -1 && strstr(err.msg, "cannot replace"));
    CHECK(access(f.tmp_path, F_OK) != 0);
    CHECK(dir_create(path, &err) == -1 && strstr(err.msg, "not a directory"));

    char out[16];
    CHECK(path_join(out, sizeof out, "a/b", "c", &err) == 0 && strcmp(out, "a/b/c") == 0);
    CHECK(path_join(out, sizeof out, "a/b/", "c", &err) == 0 && strcmp(out, "a/b/c") == 0);
    CHECK(path_join(out, sizeof out, "", "c", &err) == 0 && strcmp(out, "c") == 0);
    CHECK(path_join(out, sizeof out, NULL, "c", &err) == 0 && strcmp(out, "c") == 0);
    CHECK(path_join(out, sizeof out, "0123456789", "abcdef", &err) == -1);
    CHECK(strstr(err.msg, "longer than 15 bytes") != NULL);
}

/* A sharded checkpoint in dir (made fresh): a and b in model-00001-of-00002.safetensors, c in
 * model-00002-of-00002, and the index text given (NULL: the right one). */
static void write_shards(const char *dir, const char *index) {
    static const float a[2] = {1, 2}, b[3] = {3, 4, 5}, c[1] = {6};
    LfError err;
    if (dir_create(dir, &err)) abort();
    char path[1200];
    StEntry one[2] = {{"a", ST_F32, 1, {2}, a}, {"b", ST_F32, 1, {3}, b}};
    StEntry two[1] = {{"c", ST_F32, 1, {1}, c}};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    if (safetensors_write(path, one, 2, NULL, &err)) abort();
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    if (safetensors_write(path, two, 1, NULL, &err)) abort();
    if (!index)
        index = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
                "\"a\": \"model-00001-of-00002.safetensors\","
                " \"c\": \"model-00002-of-00002.safetensors\","
                " \"b\": \"model-00001-of-00002.safetensors\"}}";
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_bytes(path, index, strlen(index));
}

static void expect_shards_fail(const char *index, const char *phrase, int line) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("bad-shards"));
    write_shards(dir, index);
    StShards s;
    LfError err = {{0}};
    int rc = st_shards_open(&s, dir, &err), ok = rc == -1 && strstr(err.msg, phrase);
    CHECK(ok && s.n == 0 && s.files == NULL);
    if (!ok)
        fprintf(stderr, "  line %d: expected '%s', got rc=%d '%s'\n", line, phrase, rc, err.msg);
}

/* transformers' sharded save: every tensor found in its shard; a single file still works; a bad
 * index is a clear error. */
static void test_shards(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("shards"));
    write_shards(dir, NULL);
    StShards s;
    LfError err;
    CHECK_OK(st_shards_open(&s, dir, &err), &err);
    CHECK(s.n == 2);
    float v[3];
    const SafeTensors *f = st_shards_find(&s, "c");
    CHECK(f && strstr(f->path, "00002-of") && !st_shards_find(&s, "d"));
    CHECK_OK(safetensors_read_f32(f, "c", 1, (int64_t[]){1}, v, &err), &err);
    CHECK(v[0] == 6);
    f = st_shards_find(&s, "b");
    CHECK_OK(safetensors_read_f32(f, "b", 1, (int64_t[]){3}, v, &err), &err);
    CHECK(v[0] == 3 && v[2] == 5);
    st_shards_close(&s);
    st_shards_close(&s); /* closed twice: fine */
    char path[700], index[700];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(rename(tmp_path("rt.safetensors"), path) == 0);     /* one file: test_round_trip's */
    for (int with_index = 1; with_index >= 0; with_index--) { /* the one file wins, as in HF */
        CHECK_OK(st_shards_open(&s, dir, &err), &err);
        CHECK(s.n == 1 && st_shards_find(&s, "layer.0.weight") == &s.files[0] &&
              !st_shards_find(&s, "a"));
        st_shards_close(&s);
        CHECK(!with_index || remove(index) == 0);
    }
    CHECK(remove(path) == 0);
    CHECK(st_shards_open(&s, dir, &err) == -1 && strstr(err.msg, "model.safetensors") &&
          s.files == NULL);
#define SHARD1 "\"model-00001-of-00002.safetensors\""
    expect_shards_fail("{\"weight_map\": {\"a\": " SHARD1 "", "not valid JSON", __LINE__);
    expect_shards_fail("{\"metadata\": {}}", "no weight_map object", __LINE__);
    expect_shards_fail("{\"weight_map\": {}}", "the weight_map is empty", __LINE__);
    expect_shards_fail("{\"weight_map\": {\"a\": 3}}", "weight_map['a'] must name a file",
                       __LINE__);
    expect_shards_fail("{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}",
                       "must name a file beside the index", __LINE__);
    expect_shards_fail("{\"weight_map\": {\"a\": \"model-00003-of-00002.safetensors\"}}",
                       "model-00003-of-00002.safetensors", __LINE__);
    expect_shards_fail("{\"weight_map\": {\"a\": " SHARD1 ", \"c\": " SHARD1 "}}",
                       "weight_map puts 'c' in model-00001-of-00002.safetensors, which does not "
                       "hold it",
                       __LINE__);
#undef SHARD1
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void) {
    if (!mkdtemp(tmpdir)) skip("cannot create a temp directory");
    test_fileio();
    test_conversions();
    test_malformed();
    test_edge_valid();
    test_round_trip();
    test_shards();
    test_read_f32();
    test_write_errors();
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report();
}
