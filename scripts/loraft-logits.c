/* loraft-logits.c: loraft's logits for scripts/check-llama-cpp.sh, the twin of
 * llama-cpp-logits.c (same arguments and output), built against libloraft.
 *
 *   loraft-logits MODEL ADAPTER_DIR|- IDS.jsonl OUT.f32
 *
 * MODEL is a .gguf file or an HF directory, ADAPTER_DIR a PEFT LoRA adapter ("-": none). Each
 * line of IDS.jsonl ({"ids":[...]}, as `loraft tokenize` prints it) runs as one sequence in eval
 * mode; OUT.f32 gets the logits of every position, f32 [positions, vocabulary]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logits-ids.h"

#include "loraft/checkpoint.h"

#define MAX_LEN 512

static int run(Model *m, const int32_t *ids, int T, float *logits, FILE *out, LfError *err) {
    int32_t mask[MAX_LEN];
    float loss;
    for (int t = 0; t < T; t++) mask[t] = 1;
    if (model_set_batch(m, ids, NULL, mask, NULL, 1, T, err) || model_forward(m, 0, &loss, err) ||
        model_lm_logits(m, 0, T, logits, err))
        return -1;
    size_t n = (size_t)T * m->cfg.vocab_size;
    return fwrite(logits, sizeof *logits, n, out) == n ? 0 : lf_fail(err, "write failed");
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL ADAPTER_DIR|- IDS.jsonl OUT.f32\n", argv[0]);
        return 2;
    }
    LfError err;
    Model m;
    if (model_open(&m, argv[1], strcmp(argv[2], "-") ? argv[2] : NULL, BASE_F32, PRECISION_FP32,
                   &ops_cpu, 1, MAX_LEN, &err))
        return fprintf(stderr, "loraft: %s\n", err.msg), 1;
    FILE *in = fopen(argv[3], "r"), *out = fopen(argv[4], "wb");
    float *logits = malloc((size_t)MAX_LEN * m.cfg.vocab_size * sizeof *logits);
    if (!in || !out || !logits)
        return fprintf(stderr, "cannot open %s or %s\n", argv[3], argv[4]), 1;
    char line[16384];
    int32_t ids[MAX_LEN];
    int rc = 0, T;
    while (!rc && fgets(line, sizeof line, in))
        if ((T = parse_ids(line, ids, MAX_LEN)) <= 0 || run(&m, ids, T, logits, out, &err))
            rc = fprintf(stderr, "loraft: prompt '%.60s': %s\n", line, T <= 0 ? "no ids" : err.msg);
    fclose(in);
    if (fclose(out)) rc = 1;
    free(logits);
    model_free(&m);
    return rc ? 1 : 0;
}
