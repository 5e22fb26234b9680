/* test_cudnn_graphs.c: model.attention cudnn's graphs (kernels/cuda/attention_cudnn.cpp) for the
 * shapes loraft trains, described and validated against cuDNN's support rules for Hopper (sm 90)
 * and Ampere (sm 80) on the host: no GPU needed, so CI checks what this build would ask of
 * cuDNN (padding, causal, sliding windows, dropout, grouped KV heads, head sizes, strided
 * copies, attention scales), forward and backward, and what it refuses (soft-capped scores).
 * Running the graphs is test_gpu_parity's, on a GPU. Skips in a build without cuDNN attention (the
 * emulated one always). */
#include <string.h>

#include "../../kernels/cuda/attention_cudnn.h"
#include "check.h"

typedef struct Case {
    const char *name;
    CudnnSdpa s;
} Case;

static void check_accepted(const Case *c) {
    for (int sm = 80; sm <= 90; sm += 10)
        for (int backward = 0; backward < 2; backward++) {
            const char *why = cudnn_sdpa_check(&c->s, backward, sm);
            printf("%-44s sm %d %-8s %s\n", c->name, sm, backward ? "backward" : "forward",
                   why ? why : "accepted");
            CHECK(why == NULL);
        }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *unavailable = cudnn_sdpa_unavailable();
    if (unavailable) skip(unavailable);
    /* B, T, NH, NKV, HS, ld, causal, padded, p, window, scale (1 / sqrt(HS) but Gemma 3 27B's
     * 1 / sqrt(168)), softcap */
    static const Case accepted[] = {
        {"DistilBERT 16 x 512, padded, dropout 0.1",
         {16, 512, 12, 12, 64, 64, 0, 1, 0.1f, 0, 0.125f, 0.0f}},
        {"DistilBERT 64 x 128, padded, dropout 0.1",
         {64, 128, 12, 12, 64, 64, 0, 1, 0.1f, 0, 0.125f, 0.0f}},
        {"SmolLM2 4 x 2048, causal, GQA 9 / 3",
         {4, 2048, 9, 3, 64, 64, 1, 0, 0.0f, 0, 0.125f, 0.0f}},
        {"SmolLM2 16 x 512, causal, padded, GQA 9 / 3",
         {16, 512, 9, 3, 64, 64, 1, 1, 0.0f, 0, 0.125f, 0.0f}},
        {"GPT-2 8 x 1024, causal, padded, dropout 0.1",
         {8, 1024, 12, 12, 64, 64, 1, 1, 0.1f, 0, 0.125f, 0.0f}},
        {"HS 128, causal, GQA 32 / 8", {2, 1024, 32, 8, 128, 128, 1, 0, 0.0f, 0, 0.0883883f, 0.0f}},
        {"HS 40 in rows of 48 (padded copies)",
         {3, 77, 4, 2, 40, 48, 0, 1, 0.0f, 0, 0.158114f, 0.0f}},
        {"Mistral 2 x 8192, window 4096, GQA 32 / 8",
         {2, 8192, 32, 8, 128, 128, 1, 0, 0, 4096, 0.0883883f, 0.0f}},
        {"Qwen2 layer, window 17, causal, padded",
         {2, 70, 9, 3, 64, 64, 1, 1, 0.0f, 17, 0.125f, 0.0f}},
        {"window 17, causal, padded, dropout 0.1",
         {2, 70, 9, 3, 64, 64, 1, 1, 0.1f, 17, 0.125f, 0.0f}},
        {"Gemma 3 27B, scale 1 / sqrt(168), window 1024",
         {2, 2048, 32, 16, 128, 128, 1, 1, 0.0f, 1024, 0.0771517f, 0.0f}},
    };
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) check_accepted(&accepted[i]);

    /* Gemma 3's head size 256 (1B: 4 heads over one KV head, window 512): Hopper forward and
     * backward, Ampere forward; Ampere's backward takes head sizes up to 128, and the refusal says
     * so and where to go */
    CudnnSdpa gemma = {2, 1024, 4, 1, 256, 256, 1, 1, 0.0f, 512, 0.0625f, 0.0f};
    for (int backward = 0; backward < 2; backward++) {
        const char *hopper = cudnn_sdpa_check(&gemma, backward, 90);
        printf("HS 256 sm 90 %-8s %s\n", backward ? "backward" : "forward",
               hopper ? hopper : "accepted");
        CHECK(hopper == NULL);
    }
    CHECK(cudnn_sdpa_check(&gemma, 0, 80) == NULL);
    const char *ampere = cudnn_sdpa_check(&gemma, 1, 80);
    printf("HS 256 sm 80 backward %s\n", ampere ? ampere : "accepted");
    CHECK(ampere && strstr(ampere, "128") && strstr(ampere, "model.attention loraft"));

    /* cuDNN's rules do refuse: a head size that is not a multiple of 8, with its reason */
    CudnnSdpa odd = {2, 64, 4, 4, 36, 48, 0, 0, 0.0f, 0, 0.166667f, 0.0f};
    const char *why = cudnn_sdpa_check(&odd, 0, 90);
    printf("HS 36: %s\n", why ? why : "accepted");
    CHECK(why && strstr(why, "model.attention cudnn") && strstr(why, "multiple of 8"));

    /* and loraft refuses soft-capped scores (Gemma 2's, cap 50), forward and backward, with the
     * way out */
    CudnnSdpa capped = {2, 1024, 8, 4, 256, 256, 1, 1, 0.0f, 4096, 0.0625f, 50.0f};
    for (int backward = 0; backward < 2; backward++) {
        why = cudnn_sdpa_check(&capped, backward, 90);
        printf("soft-capped %-8s %s\n", backward ? "backward" : "forward", why ? why : "accepted");
        CHECK(why && strstr(why, "soft-capped") && strstr(why, "model.attention loraft"));
    }
    return check_report();
}
