/* bench_gguf.c: dequantisation speed of a whole GGUF model, and per-tensor checksums for
 * the parity check against the PyPI gguf package (bench/check_gguf_parity.py).
 *   bench_gguf MODEL.gguf [--repeats N] [--dump FILE] [--hf 1]
 * Prints the architecture config, then one line per tensor in file order:
 *   tensor NAME TYPE [HF shape] sum=S hash=H
 * (S: the double sum of the dequantised values in GGUF's layout; H: sum over i of bits(x_i)
 * * (2i + 1) mod 2^64, which the checker recomputes with numpy). With --hf 1 each line ends in
 * hf=HF_NAME and the values are in HF's layout: Llama's q/k rows un-permuted, GPT-2's Conv1D
 * weights transposed. Then the best of N timed passes over every tensor, in MB/s of f32 output and
 * of file bytes read, in all and per type. --dump writes every tensor's f32 values, in file order,
 * to FILE. Single-threaded, as loraft dequantises at load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loraft/gguf.h"

#define N_IDS 64 /* above every ggml type id */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void print_arch(const GgufArch *a) {
    printf("arch %s layers=%d hidden=%d ffn=%d heads=%d kv_heads=%d head_dim=%d ctx=%d vocab=%d "
           "rope_theta=%g eps=%g tied=%d bos=%d eos=%d\n",
           a->arch, a->n_layers, a->hidden, a->ffn, a->n_heads, a->n_kv_heads, a->head_dim,
           a->context_length, a->vocab_size, a->rope_theta, a->norm_eps, a->tied_embeddings,
           a->bos_token_id, a->eos_token_id);
}

/* Dequantises tensor t into buf (its HF shape), failing loudly. */
static int dequant(const Gguf *g, const GgufTensor *t, float *buf) {
    int64_t shape[GGUF_MAX_DIMS];
    int n = gguf_shape_hf(t, shape);
    LfError err;
    if (gguf_read_f32(g, t->name, n, shape, buf, &err) == 0) return 0;
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

/* Applies the fix that turns tensor t (dequantised in x) into its HF form, in place via tmp;
 * prints the HF name. */
static int to_hf(const GgufArch *a, const GgufTensor *t, float *x, float *tmp) {
    char name[GGUF_MAX_NAME + 64];
    GgufFix fix;
    LfError err;
    int64_t shape[GGUF_MAX_DIMS], n = gguf_numel(t);
    int nd = gguf_shape_hf(t, shape),
        rc = gguf_hf_name(a->arch, t->name, name, sizeof name, &fix, &err);
    int64_t rows = shape[0], cols = nd > 1 ? n / rows : 1;
    if (rc == 0 && (fix == GGUF_FIX_UNPERMUTE_Q || fix == GGUF_FIX_UNPERMUTE_K))
        rc = gguf_unpermute_rows(x, tmp, rows, cols,
                                 fix == GGUF_FIX_UNPERMUTE_Q ? a->n_heads : a->n_kv_heads, &err);
    else if (rc == 0 && fix == GGUF_FIX_TRANSPOSE)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) tmp[j * rows + i] = x[i * cols + j];
    if (rc != 0) return fprintf(stderr, "%s\n", err.msg), -1;
    if (fix != GGUF_FIX_NONE) memcpy(x, tmp, (size_t)n * sizeof *x);
    printf(" hf=%s", name);
    return 0;
}

static void print_checksum(const GgufTensor *t, const float *x) {
    int64_t n = gguf_numel(t), shape[GGUF_MAX_DIMS];
    double sum = 0;
    unsigned long long hash = 0;
    for (int64_t i = 0; i < n; i++) {
        unsigned bits;
        memcpy(&bits, &x[i], sizeof bits);
        sum += x[i];
        hash += (unsigned long long)bits * (2ull * (unsigned long long)i + 1);
    }
    printf("tensor %s %s [", t->name, quant_type_name(t->type));
    for (int i = 0, nd = gguf_shape_hf(t, shape); i < nd; i++)
        printf("%s%lld", i ? ", " : "", (long long)shape[i]);
    printf("] sum=%.17g hash=%016llx", sum, hash);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gguf MODEL.gguf [--repeats N] [--dump FILE]\n");
        return 2;
    }
    int repeats = 3, hf = 0;
    const char *dump = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--repeats") == 0) repeats = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--dump") == 0) dump = argv[i + 1];
        if (strcmp(argv[i], "--hf") == 0) hf = atoi(argv[i + 1]);
    }
    Gguf g;
    LfError err;
    if (gguf_open(&g, argv[1], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    GgufArch a;
    if (gguf_arch(&g, &a, &err) != 0) {
        printf("arch: %s\n", err.msg);
        if (hf) return 1;
    } else {
        print_arch(&a);
    }
    int64_t max_numel = 1, total = 0;
    size_t file_bytes = 0;
    for (int i = 0; i < g.n_tensors; i++) {
        int64_t n = gguf_numel(&g.tensors[i]);
        max_numel = n > max_numel ? n : max_numel;
        total += n;
        file_bytes += g.tensors[i].nbytes;
    }
    float *buf = malloc((size_t)max_numel * sizeof *buf);
    float *tmp = malloc((size_t)max_numel * sizeof *tmp);
    FILE *out = dump ? fopen(dump, "wb") : NULL;
    if (!buf || !tmp || (dump && !out)) return perror(dump ? dump : "malloc"), 1;
    for (int i = 0; i < g.n_tensors; i++) {
        if (dequant(&g, &g.tensors[i], buf)) return 1;
        print_checksum(&g.tensors[i], buf);
        if (hf && to_hf(&a, &g.tensors[i], buf, tmp)) return 1;
        printf("\n");
        size_t n = (size_t)gguf_numel(&g.tensors[i]);
        if (out && fwrite(buf, sizeof *buf, n, out) != n) return perror(dump), 1;
    }
    if (out && fclose(out) != 0) return perror(dump), 1;
    double best = 1e30, type_best[N_IDS], type_values[N_IDS] = {0};
    for (int t = 0; t < N_IDS; t++) type_best[t] = 1e30;
    for (int r = 0; r < repeats; r++) {
        double type_time[N_IDS] = {0}, t0 = now();
        for (int i = 0; i < g.n_tensors; i++) {
            double t1 = now();
            if (dequant(&g, &g.tensors[i], buf)) return 1;
            type_time[g.tensors[i].type] += now() - t1;
            if (r == 0) type_values[g.tensors[i].type] += (double)gguf_numel(&g.tensors[i]);
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
        for (int t = 0; t < N_IDS; t++)
            if (type_values[t] > 0 && type_time[t] < type_best[t]) type_best[t] = type_time[t];
    }
    for (int t = 0; t < N_IDS; t++)
        if (type_values[t] > 0)
            printf("type %s: %.0f values in %.4f s, %.0f MB/s of f32 out\n", quant_type_name(t),
                   type_values[t], type_best[t], type_values[t] * 4e-6 / type_best[t]);
    printf("dequantised %d tensors, %lld values (%.1f MB f32 from %.1f MB in the file) in %.3f s: "
           "%.0f MB/s of f32 out, %.0f MB/s of file read (best of %d)\n",
           g.n_tensors, (long long)total, total * 4e-6, file_bytes * 1e-6, best,
           total * 4e-6 / best, file_bytes * 1e-6 / best, repeats);
    free(buf);
    free(tmp);
    gguf_close(&g);
    return 0;
}
