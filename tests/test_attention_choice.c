/* test_attention_choice.c: model.attention. cudnn is refused with its reason where it cannot
 * run (the CPU; a precision other than bf16; a backend that says no), and a backend that takes
 * it (here the CPU's table with a switch that accepts it and a bf16 precision it ignores) gets
 * it before the model plans and at every entry; batches whose masks are not a prefix of each
 * sequence (cuDNN's padding) are refused before anything runs, and taken under loraft's. A batch
 * that hides no token gives attention no mask at all. */
#include <string.h>

#include "check.h"
#include "loraft/arch.h"
#include "loraft/model.h"

static Ops cudnn_capable;
static AttentionImpl last_set;

static int accept_attention(AttentionImpl a, LfError *err) {
    (void)err;
    last_set = a;
    return 0;
}
static Precision bf16_best(void) {
    return PRECISION_BF16;
}

static int open_tiny(Model *m, const Ops *ops, Precision p, AttentionImpl a, LfError *err) {
    ModelConfig c;
    TrainSpec s;
    model_config_defaults(&c, ARCH_LLAMA);
    c.vocab_size = 50, c.hidden_size = 32, c.num_layers = 1, c.ffn_size = 48;
    c.num_heads = 4, c.num_kv_heads = 2, c.max_positions = 16;
    c.pad_token_id = -1, c.bos_token_id = c.eos_token_id = 0;
    train_spec_defaults(&s);
    s.task = TASK_CAUSAL_LM;
    s.precision = p;
    s.attention = a;
    return model_create(m, &c, &s, ops, NULL, 7, 2, 8, NULL, 0, err);
}

static void expect_fail(int rc, const LfError *err, const char *want) {
    CHECK(rc == -1 && strstr(err->msg, want));
    if (rc != -1 || !strstr(err->msg, want))
        fprintf(stderr, "  wanted an error with \"%s\", got rc %d: %s\n", want, rc, err->msg);
}

int main(void) {
    Model m;
    LfError err = {{0}};
    expect_fail(open_tiny(&m, &ops_cpu, PRECISION_AUTO, ATTENTION_CUDNN, &err), &err,
                "cuDNN runs on the cuda device only");
    cudnn_capable = ops_cpu;
    cudnn_capable.best_precision = bf16_best;
    cudnn_capable.set_attention = accept_attention;
    expect_fail(open_tiny(&m, &cudnn_capable, PRECISION_FP32, ATTENTION_CUDNN, &err), &err,
                "runs under model.precision bf16 only (it is fp32)");
    CHECK(last_set == ATTENTION_LORAFT); /* the switch put back */

    CHECK_OK(open_tiny(&m, &cudnn_capable, PRECISION_AUTO, ATTENTION_CUDNN, &err), &err);
    CHECK(m.spec.precision == PRECISION_BF16 && last_set == ATTENTION_CUDNN);
    int32_t ids[16] = {0}, prefix[16] = {1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    int32_t hole[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0};
    CHECK_OK(model_set_batch(&m, ids, NULL, prefix, NULL, 2, 8, &err), &err);
    CHECK(model_attention_mask(&m) == m.mask);
    int32_t ones[16];
    for (int i = 0; i < 16; i++) ones[i] = 1;
    CHECK_OK(model_set_batch(&m, ids, NULL, ones, NULL, 2, 8, &err), &err);
    CHECK(model_attention_mask(&m) == NULL); /* nothing hidden: attention gets no mask */
    expect_fail(model_set_batch(&m, ids, NULL, hole, NULL, 2, 8, &err), &err,
                "sequence 1 of the batch has a token at position 2 after padding");
    last_set = ATTENTION_LORAFT; /* an entry sets the model's again */
    CHECK_OK(model_set_batch(&m, ids, NULL, prefix, NULL, 2, 8, &err), &err);
    float loss = 0;
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
    CHECK(last_set == ATTENTION_CUDNN);
    model_free(&m);

    CHECK_OK(open_tiny(&m, &cudnn_capable, PRECISION_AUTO, ATTENTION_LORAFT, &err), &err);
    CHECK_OK(model_set_batch(&m, ids, NULL, hole, NULL, 2, 8, &err), &err);
    model_free(&m);

    AttentionImpl a = ATTENTION_LORAFT;
    CHECK(attention_parse("cudnn", &a, &err) == 0 && a == ATTENTION_CUDNN);
    CHECK(!strcmp(attention_name(ATTENTION_LORAFT), "loraft"));
    expect_fail(attention_parse("flash", &a, &err), &err, "expected loraft or cudnn");
    return check_report();
}
