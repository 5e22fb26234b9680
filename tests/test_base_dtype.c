/* test_base_dtype.c: model.base_dtype on a tiny seeded Llama written as a quantised GGUF by
 * `loraft init --gguf --quant` (2 layers, hidden 64, 4 heads / 2 KV heads, untied head, the GPT-2
 * tokenizer from ../shared/data; skipped without it).
 *
 * For Q4_1 and Q8_0 files, LoRA on all seven projections (B made non-zero, LoRA dropout on):
 * - q (the file's blocks, dequantised inside the GEMMs) equals f32 (dequantised at load) to
 *   float rounding (1e-6 relative loss, 1e-5 relative L2 for gradients and for the LoRA weights
 *   after 3 AdamW steps): both decode the same blocks (observed: bit-identical);
 * - bf16 (the dequantised weights rounded to bf16) stays within bf16's error: a weight moves by
 *   up to 2^-9 of itself, so the loss within 1e-3 relative, each gradient tensor within 3e-2
 *   relative L2, and the loss after 3 AdamW steps within 1e-3 (observed: 1e-5, 5e-3, 1e-4; the
 *   LoRA weights themselves differ by ~5%: Adam's normalised steps magnify tiny gradients'
 *   differences);
 * - training runs with every dtype: 3 AdamW steps lower the loss by more than 0.1;
 * - what is stored: only the 14 frozen projection weights are packed (embeddings, norms, the
 *   LM head and LoRA stay f32), model_weight_bytes is exactly 4 bytes per f32 value plus each
 *   packed weight's blocks (rounded up to 64 bytes), model_all_count is the same for all three;
 * - saving dequantises: model_save_weights (merged and not) writes the same bytes for q as for
 *   f32 (before any step, while the adapters are equal);
 * - model_open (generate, predict) honours the dtype: q's KV-cached decoding gives f32's
 *   logits bit for bit;
 * - q4_1 / q8_0 (quantised at load) from the init's safetensors store each projection as the
 *   GGUF's blocks, byte for byte, and the GGUF under its own type keeps them: the loss and
 *   gradients of q, bit for bit; the Q4_1 file as q8_0 rounds once more (loss within 1e-2 of
 *   f32's); from a seed with an FFN of 80, down_proj's rows are not whole blocks and stay bf16;
 * - the GGUF's tokenizer metadata encodes a text as the GPT-2 tokenizer.json does;
 * - the refusals: q from safetensors, bf16 with full fine-tuning, an unknown base_dtype.
 * A tiny GPT-2 from `init --gguf --quant` (F32, Q8_0) loads back with the safetensors init's
 * config and weights and logits (measured: 0 for F32, 6e-3 of the largest for Q8_0), and its
 * Q8_0 file under q keeps its 8 dense weights packed and gives f32's LoRA loss and gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/fileio.h"
#include "loraft/model.h"
#include "loraft/optimizer.h"
#include "loraft/quant.h"
#include "loraft/rng.h"
#include "loraft/safetensors.h" /* f32_to_bf16, bf16_to_f32 */
#include "loraft/text.h"

static char tmp[] = "/tmp/loraft_dtype_XXXXXX";
enum { B = 2, T = 8 };

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

/* `loraft init --arch llama ... --gguf tmp/NAME.gguf --quant quant`; the HF copy in tmp/NAME.
 * gpt2: the same sizes, tied and with as many KV heads as heads. */
static void write_tiny(const char *vocab, const char *name, const char *quant, int gpt2) {
    char out[512], gguf[600];
    snprintf(out, sizeof out, "%s", tmp_path(name));
    snprintf(gguf, sizeof gguf, "%s.gguf", out);
    char *argv[] = {"--arch",
                    gpt2 ? "gpt2" : "llama",
                    "--layers",
                    "2",
                    "--hidden",
                    "64",
                    "--heads",
                    "4",
                    "--ffn",
                    "96",
                    "--seed",
                    "5",
                    "--max-positions",
                    "32",
                    "--vocab-from",
                    (char *)vocab,
                    "--out",
                    out,
                    "--gguf",
                    gguf,
                    "--quant",
                    (char *)quant,
                    "--untied",
                    "--kv-heads",
                    "2"};
    int llama_only = 3;
    CHECK(cmd_init((int)(sizeof argv / sizeof *argv) - (gpt2 ? llama_only : 0), argv) == 0);
}

static LoraBias lora_bias; /* open_model's lora.bias and lora.init_lora_weights */
static LoraInit lora_init;

static int open_model(Model *m, const char *path, BaseDtype dtype, Strategy strategy,
                      LfError *err) {
    ModelConfig cfg;
    TrainSpec spec;
    if (model_config_load(&cfg, path, err)) return -1;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM;
    spec.strategy = strategy;
    spec.r = 4;
    spec.alpha = 8;
    spec.dropout = 0.1f;
    const char *llama[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                           "gate_proj", "up_proj", "down_proj"};
    const char *gpt2[] = {"c_attn", "c_proj", "c_fc"};
    int is_gpt2 = cfg.arch == ARCH_GPT2, n = is_gpt2 ? 3 : 7;
    for (int i = 0; i < n; i++)
        strcpy(spec.targets[spec.n_targets++], is_gpt2 ? gpt2[i] : llama[i]);
    spec.base_dtype = dtype;
    spec.bias = lora_bias;
    spec.init = lora_init;
    return model_create(m, &cfg, &spec, &ops_cpu, path, 11, B, T, NULL, 0, err);
}

/* LoRA B from a fixed stream (PEFT starts it at 0, which would hide the adapters). */
static void set_lora_b(Model *m) {
    Rng r = {99, 0};
    for (int i = 0; i < m->n_loras; i++) {
        Param *p = m->loras[i].B;
        for (size_t j = 0; j < p->numel; j++)
            p->value[j] = 0.05f * (2.0f * rng_next_uniform(&r) - 1.0f);
    }
}

/* Forward + backward on a fixed batch; returns the loss. */
static float step(Model *m, int32_t *ids) {
    LfError err;
    int32_t mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = 1;
    float loss = 0;
    model_zero_grad(m);
    CHECK_OK(model_set_batch(m, ids, NULL, mask, ids, B, T, &err), &err);
    model_step(m, 42, 1.0f);
    CHECK_OK(model_forward(m, 1, &loss, &err), &err);
    CHECK_OK(model_backward(m, &err), &err);
    return loss;
}

/* Models k < n of paths[k] under dtypes[k] (LoRA on every projection, B set unless the start
 * is PiSSA's), each after a step on ids (random from seed): its loss in loss[k]. 0, or -1
 * (counted) when one did not open. */
static int open_and_step(int n, Model *m, float *loss, int32_t *ids, const char *const *paths,
                         const BaseDtype *dtypes, uint64_t seed) {
    Rng r = {seed, 0};
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(rng_next(&r) % 50257);
    LfError err;
    for (int k = 0; k < n; k++) {
        int rc = open_model(&m[k], paths[k], dtypes[k], STRATEGY_LORA, &err);
        CHECK_OK(rc, &err);
        if (rc) return -1;
        if (!init_splits(lora_init)) set_lora_b(&m[k]);
        loss[k] = step(&m[k], ids);
    }
    return 0;
}

/* Relative L2 distance of two tensors. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(d / (s > 0 ? s : 1));
}

/* The trainable tensors of a and b (same table) within tol relative L2: values or grads. */
static double worst_trainable(const Model *a, const Model *b, int grads) {
    double worst = 0;
    for (int i = 0; i < a->n_params; i++) {
        const Param *p = &a->params[i], *q = &b->params[i];
        if (!p->grad) continue;
        double d =
            grads ? rel_l2(p->grad, q->grad, p->numel) : rel_l2(p->value, q->value, p->numel);
        if (d > worst) worst = d;
    }
    return worst;
}

/* What base_dtype stores: 14 packed projections of `type`, everything else f32. */
static void check_storage(const Model *m, int type) {
    size_t f32 = 0, packed = 0;
    int n_packed = 0;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        int proj = strstr(p->name, "_proj.weight") != NULL && !p->is_lora;
        if (type == GGML_F32 || !proj) {
            CHECK(p->packed == NULL && p->value != NULL && p->dtype == GGML_F32);
            f32 += p->numel;
            continue;
        }
        CHECK(p->packed != NULL && p->value == NULL && p->dtype == type);
        n_packed++;
        packed += (p->numel / quant_block_elems(type) * quant_block_bytes(type) + 63) / 64 * 64;
    }
    CHECK(n_packed == (type == GGML_F32 ? 0 : 14));
    CHECK(model_weight_bytes(m) == 4 * f32 + packed);
    CHECK(model_find_param((Model *)m, "lm_head.weight")->packed == NULL);
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    LfError err;
    if (file_read_all(a, &x, &nx, &err) || file_read_all(b, &y, &ny, &err)) return 0;
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static void compare_dtypes(const char *name, int type) {
    LfError err;
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path(name));
    Model m[3];
    const BaseDtype dtypes[3] = {BASE_F32, BASE_Q, BASE_BF16};
    const char *paths[3] = {gguf, gguf, gguf};
    int32_t ids[B * T];
    float loss[3], after[3];
    AdamW opt[3];
    if (open_and_step(3, m, loss, ids, paths, dtypes, 7)) return;
    check_storage(&m[0], GGML_F32);
    check_storage(&m[1], type);
    check_storage(&m[2], GGML_BF16);
    CHECK(model_all_count(&m[0]) == model_all_count(&m[1]) &&
          model_all_count(&m[0]) == model_all_count(&m[2]));
    double dq = fabs(loss[1] - loss[0]) / loss[0], db = fabs(loss[2] - loss[0]) / loss[0];
    double gq = worst_trainable(&m[0], &m[1], 1), gb = worst_trainable(&m[0], &m[2], 1);
    printf("%s: loss f32 %.7f, q %.7f (rel %.1e), bf16 %.7f (rel %.1e); grads rel L2: q %.1e, "
           "bf16 %.1e\n",
           name, loss[0], loss[1], dq, loss[2], db, gq, gb);
    CHECK(dq <= 1e-6 && gq <= 1e-5);
    CHECK(db <= 1e-3 && gb <= 3e-2);

    /* saves dequantise: q writes f32's bytes, merged or not */
    for (int merge = 0; merge < 2; merge++) {
        CHECK_OK(model_save_weights(&m[0], tmp_path("f32.safetensors"), merge, &err), &err);
        CHECK_OK(model_save_weights(&m[1], tmp_path("q.safetensors"), merge, &err), &err);
        CHECK(same_file(tmp_path("f32.safetensors"), tmp_path("q.safetensors")));
    }

    /* 3 AdamW steps each: training runs with every dtype, q still f32's twin */
    for (int k = 0; k < 3; k++) {
        CHECK_OK(adamw_create(&opt[k], &m[k], 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, &err), &err);
        for (int s = 0; s < 3; s++) {
            if (s) step(&m[k], ids);
            adamw_update(&opt[k], &m[k], 1e-2f, 0.0f);
        }
        after[k] = step(&m[k], ids);
        printf("%s: %s loss %.5f -> %.5f after 3 steps\n", name, base_dtype_name(dtypes[k]),
               loss[k], after[k]);
        CHECK(after[k] < loss[k] - 0.1f);
        adamw_free(&opt[k], &m[k]);
    }
    double wq = worst_trainable(&m[0], &m[1], 0), ab = fabs(after[2] - after[0]) / after[0];
    printf("%s: after 3 steps: LoRA weights of q vs f32 rel L2 %.1e; bf16 loss rel %.1e\n", name,
           wq, ab);
    CHECK(wq <= 1e-5 && ab <= 1e-3);

    for (int k = 0; k < 3; k++) model_free(&m[k]);
}

/* base_dtype q8_0 .. q4_0 quantise at load. From the safetensors of the init that wrote NAME.gguf
 * (its projections quantised to `type` by the same quantiser; its embedding and head too, which
 * loraft dequantises), each of the 14 projections is stored as the file's blocks, byte for byte;
 * the file under the named type keeps its tensors of that type as they are: LoRA's loss and every
 * gradient equal base_dtype q's from the file, bit for bit. */
static void compare_quantised_at_load(const char *name, BaseDtype dtype, int type) {
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path(name));
    const char *paths[3] = {tmp_path(name), gguf, gguf};
    const BaseDtype dtypes[3] = {dtype, BASE_Q, dtype};
    int32_t ids[B * T];
    Model m[3];
    float loss[3];
    if (open_and_step(3, m, loss, ids, paths, dtypes, 8)) return;
    for (int k = 0; k < 3; k++) check_storage(&m[k], type);
    int same_blocks = 0;
    for (int i = 0; i < m[0].n_params; i++) {
        const Param *p = &m[0].params[i];
        size_t n = p->numel / quant_block_elems(type) * quant_block_bytes(type);
        for (int k = 1; k < 3 && p->packed; k++)
            same_blocks += m[k].params[i].packed && !memcmp(p->packed, m[k].params[i].packed, n);
    }
    double g = worst_trainable(&m[1], &m[2], 1);
    printf("%s: base_dtype %s: the 14 projections from safetensors and from the GGUF as the file's "
           "blocks (%d of 28 the same bytes); the GGUF's loss %.7f as q, %.7f as %s, grads rel "
           "L2 %.1e\n",
           name, base_dtype_name(dtype), same_blocks, loss[1], loss[2], base_dtype_name(dtype), g);
    CHECK(same_blocks == 28 && loss[2] == loss[1] && g == 0);
    for (int k = 0; k < 3; k++) model_free(&m[k]);
}

/* How many of m's projections but down_proj are stored as `type`, where every down_proj (rows
 * that are not whole blocks) must be bf16 (checked). */
static int projections_stored(const Model *m, int type) {
    int n = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const Param *w = m->linears[i]->w;
        if (m->linears[i] == m->head) continue;
        if (strstr(w->name, "down_proj"))
            CHECK(w->dtype == GGML_BF16);
        else
            n += w->dtype == type;
    }
    return n;
}

/* Quantised at load from another type: the Q4_1 file as q8_0 (its values rounded once more,
 * within half a Q8_0 step: the loss within 1e-2 relative of f32's from the file), and from a
 * seed with an FFN of 80, whose down_proj rows are not whole blocks and stay bf16. */
static void test_requantised(void) {
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path("q4_1"));
    const char *paths[2] = {gguf, gguf};
    const BaseDtype dtypes[2] = {BASE_F32, BASE_Q8_0};
    int32_t ids[B * T];
    LfError err;
    Model m[2];
    float loss[2];
    if (open_and_step(2, m, loss, ids, paths, dtypes, 9)) return;
    check_storage(&m[1], GGML_Q8_0);
    double rel = fabs(loss[1] - loss[0]) / loss[0];
    printf("q4_1 GGUF as q8_0: loss %.7f, f32 %.7f (rel %.1e)\n", loss[1], loss[0], rel);
    CHECK(rel <= 1e-2);
    for (int k = 0; k < 2; k++) model_free(&m[k]);

    ModelConfig cfg;
    TrainSpec spec;
    CHECK_OK(model_config_load(&cfg, tmp_path("q4_1"), &err), &err);
    cfg.ffn_size = 80;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM, spec.base_dtype = BASE_Q4_0;
    CHECK_OK(model_create(&m[0], &cfg, &spec, &ops_cpu, NULL, 3, B, T, NULL, 0, &err), &err);
    CHECK(projections_stored(&m[0], GGML_Q4_0) == 12);
    model_free(&m[0]);
}

/* base_dtype nf4 from safetensors: the projections of rows of 64 as NF4 blocks, down_proj (rows of
 * 96, not whole blocks) in bf16; the loss within 2e-2 relative of f32's (tests/test_quant_bnb.sh
 * checks the values against bitsandbytes). */
static void test_nf4_at_load(void) {
    const char *paths[2] = {tmp_path("q4_1"), tmp_path("q4_1")};
    const BaseDtype dtypes[2] = {BASE_F32, BASE_NF4};
    int32_t ids[B * T];
    Model m[2];
    float loss[2];
    if (open_and_step(2, m, loss, ids, paths, dtypes, 10)) return;
    int nf4 = projections_stored(&m[1], QUANT_NF4);
    double rel = fabs(loss[1] - loss[0]) / loss[0];
    printf("nf4 from safetensors: %d projections NF4, down_proj bf16; loss %.7f, f32 %.7f (rel "
           "%.1e)\n",
           nf4, loss[1], loss[0], rel);
    CHECK(nf4 == 12 && rel <= 2e-2 && loss[1] != loss[0]);
    CHECK(!strcmp(base_dtype_name(BASE_NF4), "nf4"));
    for (int k = 0; k < 2; k++) model_free(&m[k]);
}

/* model_open (generate, predict) honours the dtype: q's KV-cached decoding gives f32's logits. */
static void test_open_decode(void) {
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path("q4_1"));
    static const int32_t prompt[5] = {15496, 11, 995, 0, 632};
    static float logits[2][50257];
    LfError err;
    for (int k = 0; k < 2; k++) {
        Model m;
        CHECK_OK(
            model_open(&m, gguf, NULL, k ? BASE_Q : BASE_F32, PRECISION_AUTO, &ops_cpu, 1, 8, &err),
            &err);
        CHECK((m.n_packed_bytes > 0) == (k == 1));
        CHECK_OK(model_cache_reset(&m, 1, 8, &err), &err);
        CHECK_OK(model_decode(&m, 0, prompt, 5, &err), &err);
        CHECK_OK(model_decode(&m, 0, prompt, 1, &err), &err);
        CHECK_OK(model_lm_logits(&m, 0, 1, logits[k], &err), &err);
        model_free(&m);
    }
    CHECK(!memcmp(logits[0], logits[1], sizeof logits[0]));
}

static void expect_fail(int rc, const LfError *err, const char *phrase) {
    int ok = rc == -1 && strstr(err->msg, phrase);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  expected an error with '%s', got rc %d: %s\n", phrase, rc, err->msg);
}

/* A GPT-2 from `loraft init --gguf F --quant TYPE` against the same init's safetensors: the same
 * config, the same weights (exactly for F32; 2-D weights within half a Q8_0 step, amax / 254 per
 * block plus the scale's f16 rounding), and logits of the cached decode within 1e-5 (F32) and
 * 3e-2 (Q8_0) of the largest |logit|. */
static void test_gpt2_gguf(const char *vocab, const char *quant, double tol) {
    char name[64], gguf[600];
    snprintf(name, sizeof name, "gpt2_%s", quant);
    write_tiny(vocab, name, quant, 1);
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path(name));
    static const int32_t prompt[5] = {15496, 11, 995, 0, 632};
    static float logits[2][50257];
    LfError err;
    Model m[2];
    CHECK_OK(
        model_open(&m[0], tmp_path(name), NULL, BASE_F32, PRECISION_AUTO, &ops_cpu, 1, 8, &err),
        &err);
    CHECK_OK(model_open(&m[1], gguf, NULL, BASE_F32, PRECISION_AUTO, &ops_cpu, 1, 8, &err), &err);
    if (!m[0].values || !m[1].values) return;
    const ModelConfig *a = &m[0].cfg, *b = &m[1].cfg;
    CHECK(b->arch == ARCH_GPT2 && a->vocab_size == b->vocab_size &&
          a->hidden_size == b->hidden_size && a->num_layers == b->num_layers &&
          a->num_heads == b->num_heads && a->ffn_size == b->ffn_size &&
          a->max_positions == b->max_positions && a->layer_norm_eps == b->layer_norm_eps &&
          a->bos_token_id == b->bos_token_id && a->eos_token_id == b->eos_token_id &&
          b->tie_word_embeddings && m[0].n_params == m[1].n_params);
    for (int i = 0; i < m[0].n_params && m[0].n_params == m[1].n_params; i++) {
        const Param *p = &m[0].params[i], *q = &m[1].params[i];
        double worst = 0, amax = 0;
        for (size_t j = 0; j < p->numel; j++) {
            worst = worse(worst, fabs((double)p->value[j] - q->value[j]));
            amax = fmax(amax, fabs((double)p->value[j]));
        }
        double step_tol = strcmp(quant, "F32") && p->ndim == 2 ? amax / 230 : 0;
        CHECK(!strcmp(p->name, q->name) && worst <= step_tol);
        if (worst > step_tol) fprintf(stderr, "  %s: off by %g\n", p->name, worst);
    }
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_cache_reset(&m[k], 1, 8, &err), &err);
        CHECK_OK(model_decode(&m[k], 0, prompt, 5, &err), &err);
        CHECK_OK(model_lm_logits(&m[k], 4, 1, logits[k], &err), &err);
        model_free(&m[k]);
    }
    double d = 0, big = 1e-30;
    for (int v = 0; v < 50257; v++) {
        d = worse(d, fabs((double)logits[1][v] - logits[0][v]));
        big = fmax(big, fabs((double)logits[0][v]));
    }
    printf("gpt2 GGUF %s vs safetensors: max |logit diff| / max |logit| = %.3g\n", quant, d / big);
    CHECK(d / big <= tol);
}

/* base_dtype q on a GPT-2 GGUF (Q8_0): its four dense weights per layer (c_attn, both c_proj,
 * c_fc; kept [out,in] as in the file) stay packed, wte (the tied head) f32; with LoRA on all of
 * them (B non-zero, dropout on) the loss and every gradient equal f32's from the same file. With
 * lora.bias all the 13 biases train too, the packed weights' among them. */
static void test_gpt2_q(LoraBias bias) {
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path("gpt2_Q8_0"));
    const char *paths[2] = {gguf, gguf};
    const BaseDtype dtypes[2] = {BASE_F32, BASE_Q};
    int32_t ids[B * T];
    Model m[2];
    float loss[2];
    lora_bias = bias;
    int rc = open_and_step(2, m, loss, ids, paths, dtypes, 3);
    lora_bias = LORA_BIAS_NONE;
    if (rc) return;
    int n_packed = 0, n_bias = 0;
    for (int i = 0; i < m[1].n_params; i++) {
        const Param *p = &m[1].params[i];
        int dense = !p->is_lora && p->ndim == 2 && strstr(p->name, ".h.") != NULL;
        CHECK(dense ? p->packed && p->dtype == GGML_Q8_0 : !p->packed && p->dtype == GGML_F32);
        n_packed += dense, n_bias += p->grad && strstr(p->name, ".bias") != NULL;
    }
    double dl = fabs(loss[1] - loss[0]) / loss[0], dg = worst_trainable(&m[0], &m[1], 1);
    printf("gpt2 Q8_0 (lora.bias %s): %d packed weights, %d biases train; loss f32 %.7f, q %.7f "
           "(rel %.1e); grads rel L2 %.1e\n",
           lora_bias_name(bias), n_packed, n_bias, loss[0], loss[1], dl, dg);
    CHECK(n_packed == 8 && n_bias == (bias == LORA_BIAS_ALL ? 13 : 0) && dl <= 1e-6 && dg <= 1e-5);
    for (int k = 0; k < 2; k++) model_free(&m[k]);
}

/* Whether two adapters hold the same A and B, bit for bit. */
static int same_adapter(const Lora *a, const Lora *b) {
    return !memcmp(a->A->value, b->A->value, a->A->numel * sizeof(float)) &&
           !memcmp(a->B->value, b->B->value, a->B->numel * sizeof(float));
}

/* test_pissa_packed's models f32, bf16, q8_0 after their step: the same A and B, bf16's residuals
 * f32's rounded, the losses within the storage's rounding. */
static void pissa_packed_checks(Model *m, const float *loss) {
    int same_ab = 1, n_bf16 = 0;
    for (int i = 0; i < m[0].n_loras; i++)
        for (int k = 1; k < 3; k++)
            same_ab = same_ab && same_adapter(&m[0].loras[i], &m[k].loras[i]);
    for (int i = 0; i < m[0].n_loras; i++) { /* bf16(f32's residual), value for value */
        const Param *w0 = m[0].loras[i].base->w, *w1 = m[1].loras[i].base->w;
        float *res = malloc(w0->numel * sizeof *res);
        CHECK(w1->dtype == GGML_BF16 &&
              quant_dequantize(GGML_BF16, w1->packed, res, (int64_t)w0->numel) == 0);
        int same = 1;
        for (size_t j = 0; j < w0->numel; j++)
            same = same && f32_to_bf16(w0->value[j]) == f32_to_bf16(res[j]) &&
                   bf16_to_f32(f32_to_bf16(res[j])) == res[j];
        n_bf16 += same;
        free(res);
    }
    double db = fabs(loss[1] - loss[0]) / loss[0], dq = fabs(loss[2] - loss[0]) / loss[0];
    printf("PiSSA on packed weights: A and B %s; %d of %d bf16 residuals f32's rounded; loss f32 "
           "%.7f, bf16 %.7f (rel %.1e), q8_0 %.7f (rel %.1e)\n",
           same_ab ? "the same bits" : "differ", n_bf16, m[0].n_loras, loss[0], loss[1], db,
           loss[2], dq);
    CHECK(same_ab && n_bf16 == m[0].n_loras && db <= 1e-3 && dq <= 1e-3);
    for (int k = 0; k < 3; k++) model_free(&m[k]);
}

/* PiSSA under base_dtype q on a Q8_0 GGUF: each adapted weight's blocks are dequantised, split
 * and the rest quantised back to Q8_0 (as peft does for a 4-bit weight): A and B the same bits as
 * the f32 model's from the same file, each packed weight the Q8_0 blocks of its f32 residual,
 * byte for byte, the loss within Q8_0's rounding. */
static void pissa_file_blocks(const char *gguf) {
    const BaseDtype dtypes[2] = {BASE_F32, BASE_Q};
    const char *paths[2] = {gguf, gguf};
    int32_t ids[B * T];
    Model m[2];
    float loss[2];
    LfError err;
    if (open_and_step(2, m, loss, ids, paths, dtypes, 5)) return;
    int same_ab = 1, same_blocks = 0;
    for (int i = 0; i < m[0].n_loras; i++) {
        const Lora *a = &m[0].loras[i], *b = &m[1].loras[i];
        same_ab = same_ab && same_adapter(a, b);
        const Param *w0 = a->base->w, *w1 = b->base->w;
        uint8_t *blocks = malloc(w1->packed_bytes);
        CHECK(w1->dtype == GGML_Q8_0 &&
              quant_quantize(GGML_Q8_0, w0->value, w0->numel, blocks, &err) == 0);
        same_blocks += !memcmp(blocks, w1->packed, w1->packed_bytes);
        free(blocks);
    }
    double dq = fabs(loss[1] - loss[0]) / loss[0];
    printf("PiSSA on a Q8_0 GGUF's own blocks: A and B %s; %d of %d residuals requantised to Q8_0 "
           "byte for byte; loss f32 %.7f, q %.7f (rel %.1e)\n",
           same_ab ? "the same bits" : "differ", same_blocks, m[0].n_loras, loss[0], loss[1], dq);
    CHECK(same_ab && same_blocks == m[0].n_loras && dq <= 1e-3);
    for (int k = 0; k < 2; k++) model_free(&m[k]);
}

/* PiSSA on packed weights: the split runs on each adapted weight's f32 values before they are
 * packed, so bf16 and q8_0 (quantised at load) start from A and B bit-identical to f32's and pack
 * the residual (bf16: f32's residual rounded, bit for bit; the loss within the storage's
 * rounding); then a GGUF's own blocks (pissa_file_blocks). */
static void test_pissa_packed(void) {
    char dir[512], gguf[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("q8_0"));
    snprintf(gguf, sizeof gguf, "%s.gguf", dir);
    const BaseDtype dtypes[3] = {BASE_F32, BASE_BF16, BASE_Q8_0};
    const char *paths[3] = {dir, dir, dir};
    int32_t ids[B * T];
    Model m[3];
    float loss[3];
    lora_init = LORA_INIT_PISSA;
    int rc = open_and_step(3, m, loss, ids, paths, dtypes, 5);
    if (!rc) pissa_packed_checks(m, loss);
    if (!rc) pissa_file_blocks(gguf);
    lora_init = LORA_INIT_DEFAULT;
}

/* The GGUF's tokenizer metadata (bpe_to_arrays) encodes as the tokenizer.json it came from. */
static void test_gguf_tokenizer(const char *vocab) {
    static const char text[] = "Hello, world! It is a truth universally acknowledged 12345 "
                               "<|endoftext|> caf\xc3\xa9";
    TextTokenizer a, b;
    IdList ia = {0}, ib = {0};
    LfError err;
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path("q4_1"));
    CHECK_OK(text_tokenizer_open(&a, vocab, &err), &err);
    CHECK_OK(text_tokenizer_open(&b, gguf, &err), &err);
    CHECK_OK(text_encode(&a, text, sizeof text - 1, &ia, &err), &err);
    CHECK_OK(text_encode(&b, text, sizeof text - 1, &ib, &err), &err);
    CHECK(ia.n > 10 && ia.n == ib.n && !memcmp(ia.ids, ib.ids, ia.n * sizeof *ia.ids));
    CHECK(bpe_vocab_size(a.bpe) == bpe_vocab_size(b.bpe) && bpe_eos(a.bpe) == bpe_eos(b.bpe));
    idlist_free(&ia), idlist_free(&ib);
    text_tokenizer_close(&a), text_tokenizer_close(&b);
}

static void test_refusals(void) {
    Model m;
    LfError err = {{0}};
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s.gguf", tmp_path("q4_1"));
    expect_fail(open_model(&m, tmp_path("q4_1"), BASE_Q, STRATEGY_LORA, &err), &err,
                "or a bitsandbytes 4-bit checkpoint's quantised blocks, and");
    expect_fail(open_model(&m, gguf, BASE_BF16, STRATEGY_FULL, &err), &err,
                "train.strategy full freezes none");
    CHECK_OK(open_model(&m, tmp_path("q4_1"), BASE_BF16, STRATEGY_LORA, &err), &err);
    check_storage(&m, GGML_BF16); /* bf16 from safetensors */
    model_free(&m);
    CHECK(
        base_dtype_parse("q8", &(BaseDtype){0}, &err) == -1 &&
        strstr(err.msg, "f32, bf16, q: a GGUF file's own blocks, or q8_0, q5_1, q5_0, q4_1, q4_0"));
    BaseDtype d = BASE_F32;
    CHECK(base_dtype_parse("q5_1", &d, &err) == 0 && d == BASE_Q5_1);
    CHECK(!strcmp(base_dtype_name(BASE_Q4_0), "q4_0"));
    /* model.precision: the CPU computes fp32, which auto means there */
    for (Precision p = PRECISION_TF32; p <= PRECISION_BF16; p++)
        expect_fail(model_open(&m, tmp_path("q4_1"), NULL, BASE_F32, p, &ops_cpu, 1, 8, &err), &err,
                    "the CPU backend computes in fp32 only");
    CHECK_OK(model_open(&m, tmp_path("q4_1"), NULL, BASE_F32, PRECISION_AUTO, &ops_cpu, 1, 8, &err),
             &err);
    CHECK(m.spec.precision == PRECISION_FP32);
    model_free(&m);
    Precision p = PRECISION_AUTO;
    CHECK(precision_parse("bf16", &p, &err) == 0 && p == PRECISION_BF16);
    CHECK(!strcmp(precision_name(PRECISION_TF32), "tf32"));
    CHECK(precision_parse("fp16", &p, &err) == -1 && strstr(err.msg, "auto, fp32, tf32 or bf16"));
}

int main(void) {
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2", shared_data_dir());
    if (access(vocab, R_OK)) skip("the GPT-2 tokenizer (../shared/data/tokenizers/gpt2) is absent");
    if (!mkdtemp(tmp)) return 1;
    write_tiny(vocab, "q4_1", "Q4_1", 0);
    write_tiny(vocab, "q8_0", "Q8_0", 0);
    compare_dtypes("q4_1", GGML_Q4_1);
    compare_dtypes("q8_0", GGML_Q8_0);
    compare_quantised_at_load("q4_1", BASE_Q4_1, GGML_Q4_1);
    compare_quantised_at_load("q8_0", BASE_Q8_0, GGML_Q8_0);
    test_requantised();
    test_nf4_at_load();
    test_gguf_tokenizer(vocab);
    test_open_decode();
    test_gpt2_gguf(vocab, "F32", 1e-5);
    test_gpt2_gguf(vocab, "Q8_0", 3e-2);
    test_gpt2_q(LORA_BIAS_NONE);
    test_gpt2_q(LORA_BIAS_ALL);
    test_pissa_packed();
    test_refusals();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return check_report();
}
