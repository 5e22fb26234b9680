/* test_gpu_graphs.c: training micro-batches run as CUDA graphs (train_micro_step under
 * train.cuda_graphs on and auto: forward and backward recorded once per shape and replayed) give
 * the same bits as the same steps launched op by op (off).
 *
 * Two runs, each trained three ways from the same weights on the same batches:
 * - a tiny BERT classifier with LoRA on every linear layer, hidden, attention and LoRA dropout
 *   0.1 (the dropout seed changes every step: a replay must draw new masks), precision fp32, a
 *   linear schedule, no clipping, 4 steps;
 * - a tiny Llama causal LM (GQA) with LoRA on the seven projections, attention and LoRA dropout,
 *   the default precision (bf16 on the GPU: bf16 GEMMs and the tensor-core attention), a cosine
 *   schedule with warmup (the learning rate changes every step), gradient clipping at a norm
 *   the gradients exceed, gradient accumulation 2, 4 steps.
 * Both change the batch's sequence length after two steps, so a second shape is recorded, and
 * every micro-batch has its own count of labels that count (some labels -100), so the loss's
 * gradient scale changes from one replay to the next. Tolerance 0 (memcmp) on every loss,
 * gradient norm and weight: a replay runs the same kernels with the same arguments in the same
 * order as the eager launches, the step's scalars (seed, gradient scale) read from device
 * memory, and nothing in these runs depends on the order of floating-point atomics across
 * blocks (the one column-sum kernel that joins blocks with atomics gets one row group at <= 64
 * rows, and no embedding trains), so any difference is a bug: a scalar baked into a recording,
 * a lost or reordered op. Asserted as well: the graph path was taken (Ops.graph_counts: one
 * graph launch per micro-batch under on, none for the first micro-batch of each shape under
 * auto; one recording per shape, the rest replays; under the emulation one instantiation per
 * shape) and, under the emulation, that the graphs and the launches beside them (AdamW, the
 * step's scalars) are exactly the ops the eager run launched. The same Llama trained as a reward
 * model and with DPO (pairs of rows; DPO's reference forward runs op by op before each
 * micro-batch) must match the same way, and the causal LM with gradient checkpointing (each
 * layer's forward replayed inside the recorded backward), and with DoRA (its norms of each step's
 * weights recomputed by the replay). GRPO (a KL penalty, the entropy mask and bonus) must too,
 * over num_iterations 2 (a generation's passes form their weights on other paths) and with the
 * bonus's coefficient changed between steps of one shape: a recording is kept per shape and the
 * objective's key (Objective.graph_key), which both change. Prints the blocking calls and launches
 * per micro-batch (emulation). With model.attention cudnn (check_cudnn) on and auto record repeats
 * only and match within bounds. Skips (77) without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "tiny.h"
#include "loraft/fileio.h"
#include "loraft/model.h"
#include "loraft/objective.h"
#include "loraft/optimizer.h"
#include "loraft/rng.h"
#include "loraft/train_config.h"
#include "loraft/trainer.h"

/* The emulation's counts (tests/cuda_emu/emu_runtime.cpp); absent on a GPU. */
__attribute__((weak)) long long loraft_cuda_emu_count(const char *what);
static long long emu_count(const char *what) {
    return loraft_cuda_emu_count ? loraft_cuda_emu_count(what) : 0;
}

enum { STEPS = 4, MAX_MICRO = 8, MAX_B = 4, MAX_T = 8 };

typedef struct Job {
    Model m;
    int accum, B, V, labels_per_token, dpo, pairs;
    int T[STEPS]; /* sequence length of each step's batches */
    float max_norm, lr;
    Schedule schedule; /* warmup 1 step */
    /* GRPO (create_grpo): generations of `passes` steps, each later pass on its first's batches
     * and per-token losses (old), the entropy bonus's coefficient of each step */
    int rl, passes;
    float coef[STEPS], old[MAX_MICRO][MAX_B * MAX_T];
} Job;

typedef struct Trace {
    float loss[MAX_MICRO];
    double norm[STEPS];
    float *weights;
    size_t n_weights;
    OpsGraphCounts counts;
    long long eager_ops, graph_nodes, blocking;
} Trace;

/* LoRA B (zero at creation) and A from a fixed seed, so every gradient is non-zero. */
static void randomise_lora(Model *m) {
    Rng rng = {3, 0};
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (!p->is_lora) continue;
        float *h = malloc(p->numel * sizeof *h);
        for (size_t j = 0; j < p->numel; j++) h[j] = 0.2f * (rng_next_uniform(&rng) - 0.5f);
        m->ops->upload(p->value, h, p->numel * sizeof *h);
        free(h);
    }
}

/* GRPO's micro-batch k, batch kb of its generation: the rows' rewards, the step's coefficient,
 * on a later pass the first's losses (old), and the reference's forward op by op, as the
 * trainer. */
static void set_rl(Job *j, int k, int kb, LfError *err) {
    Model *m = &j->m;
    float rewards[MAX_B];
    for (int b = 0; b < j->B; b++) rewards[b] = 0.3f * (float)((kb + 3 * b) % 5) - 0.5f;
    if (m->spec.grpo.entropy_bonus) m->spec.grpo.entropy_coef = j->coef[k / j->accum];
    CHECK_OK(grpo_set_rewards(m, rewards, NULL, err), err);
    if (k != kb) CHECK_OK(grpo_set_old(m, j->old[kb], err), err);
    if (m->spec.grpo.beta > 0) CHECK_OK(reference_forward(m, err), err);
}

/* Micro-batch k of the run: random ids, the last rows shorter (padding masked), a label in
 * five ignored (-100; not a pair objective's, whose rows are whole); GRPO's later passes take
 * their generation's first batches again. */
static void set_batch(Job *j, int k, int T, LfError *err) {
    int32_t ids[MAX_B * MAX_T], mask[MAX_B * MAX_T], labels[MAX_B * MAX_T];
    int kb = j->rl ? k - (k / j->accum % j->passes) * j->accum : k;
    Rng rng = {100 + (uint64_t)kb, 0};
    for (int i = 0; i < j->B * T; i++) {
        mask[i] = i % T < T - i / T;
        ids[i] = mask[i] ? 5 + (int32_t)(rng_next(&rng) % (uint64_t)(j->V - 5)) : 0;
        labels[i] = j->labels_per_token ? (mask[i] ? ids[i] : -100) : (int32_t)(rng_next(&rng) % 2);
        if (!j->pairs && rng_next(&rng) % 5 == 0) labels[i] = -100;
    }
    CHECK_OK(model_set_batch(&j->m, ids, NULL, mask, labels, j->B, T, err), err);
    if (j->dpo) CHECK_OK(reference_forward(&j->m, err), err); /* op by op, as the trainer */
    if (j->rl) set_rl(j, k, kb, err);
}

/* STEPS optimizer steps of j under graphs mode g, as the trainer runs them. */
static void train(Job *j, TrainGraphs g, Trace *t) {
    LfError err;
    Model *m = &j->m;
    AdamW opt;
    CHECK_OK(adamw_create(&opt, m, 0.9f, 0.999f, 1e-6f, 0.01f, 0.0f, &err), &err);
    TrainStep st = {.graphs = g};
    OpsGraphCounts c0;
    m->ops->graph_counts(&c0);
    long long blocking0 = emu_count("blocking");
    int k = 0;
    for (int step = 0; step < STEPS; step++) {
        model_zero_grad(m);
        float lr = schedule_lr(j->schedule, j->lr, step, STEPS, 1);
        for (int micro = 0; micro < j->accum; micro++, k++) {
            set_batch(j, k, j->T[step], &err);
            uint64_t seed = rng_hash(9, (uint64_t)step * 4096 + (uint64_t)micro);
            int end = micro == j->accum - 1;
            long long ops0 = emu_count("launches"), nodes0 = emu_count("graph_nodes");
            CHECK_OK(train_micro_step(&st, m, seed, 1.0f / (float)j->accum, end ? &opt : NULL, lr,
                                      j->max_norm, &err),
                     &err);
            t->eager_ops += emu_count("launches") - ops0;
            t->graph_nodes += emu_count("graph_nodes") - nodes0;
            CHECK_OK(model_read_loss(m, &t->loss[k], end ? &t->norm[step] : NULL, &err), &err);
            if (j->rl && step % j->passes == 0) /* the sampling policy's, for the later passes */
                m->ops->download(j->old[k], m->losses, (size_t)j->B * j->T[step] * sizeof(float));
        }
    }
    t->blocking = emu_count("blocking") - blocking0;
    m->ops->graph_counts(&t->counts);
    t->counts.launches -= c0.launches, t->counts.replayed -= c0.replayed;
    t->counts.instantiated -= c0.instantiated, t->counts.updated -= c0.updated;
    t->n_weights = m->n_values;
    t->weights = malloc(m->n_values * sizeof(float));
    m->ops->download(t->weights, m->values, m->n_values * sizeof(float));
    CHECK_OK(m->ops->status(&err), &err);
    adamw_free(&opt, m);
}

/* Micro-batches that are the first of their shape (auto runs them op by op). */
static int new_shapes(const Job *j) {
    int n = 1;
    for (int s = 1; s < STEPS; s++) n += j->T[s] != j->T[s - 1];
    return n;
}

/* The same model (create builds it anew each time) trained under off, on and auto into t[0..2];
 * *j: the last one's job, its model freed. */
static void train_three(void (*create)(Job *), Trace t[3], Job *j) {
    TrainGraphs modes[3] = {GRAPHS_OFF, GRAPHS_ON, GRAPHS_AUTO};
    memset(t, 0, 3 * sizeof *t);
    for (int i = 0; i < 3; i++) {
        create(j);
        train(j, modes[i], &t[i]);
        model_free(&j->m);
    }
}

/* The three modes against each other. */
static void check_job(const char *name, void (*create)(Job *)) {
    Trace t[3];
    Job j;
    train_three(create, t, &j);
    int micro = STEPS * j.accum, shapes = new_shapes(&j);
    for (int i = 1; i < 3; i++) {
        CHECK(memcmp(t[i].loss, t[0].loss, sizeof t[0].loss) == 0);
        CHECK(memcmp(t[i].norm, t[0].norm, sizeof t[0].norm) == 0);
        CHECK(t[i].n_weights == t[0].n_weights);
        CHECK(memcmp(t[i].weights, t[0].weights, t[0].n_weights * sizeof(float)) == 0);
    }
    int clipped = 0;
    for (int s = 0; s < STEPS; s++) clipped += t[0].norm[s] > j.max_norm;
    CHECK(j.max_norm <= 0 || clipped > 0);
    CHECK(t[0].counts.launches == 0);
    CHECK(t[1].counts.launches == micro);          /* shapes recorded, the rest replays */
    CHECK(t[2].counts.launches == micro - shapes); /* a shape's first op by op */
    CHECK(t[1].counts.replayed == micro - shapes);
    CHECK(t[2].counts.replayed == micro - 2 * shapes);
    for (int i = 1; i < 3; i++) { /* each shape recorded once: a slot updated or instantiated */
        const OpsGraphCounts *c = &t[i].counts;
        CHECK(c->instantiated + c->updated == shapes);
    }
    if (loraft_cuda_emu_count) {
        CHECK(t[1].graph_nodes + t[1].eager_ops == t[0].eager_ops);
        CHECK(t[0].blocking == t[1].blocking);
        printf("  %s: per micro-batch %.1f blocking calls (graphs off and on), %.1f launches, "
               "%.1f of them in the graph\n",
               name, (double)t[0].blocking / micro, (double)t[0].eager_ops / micro,
               (double)t[1].graph_nodes / micro);
    }
    printf("%s: graphs on and auto match op by op bit for bit (losses %.6f .. %.6f; on: %ld "
           "launches, %ld replays, %ld instantiated, %ld updated; auto: %ld, %ld, %ld, %ld)\n",
           name, t[0].loss[0], t[0].loss[micro - 1], t[1].counts.launches, t[1].counts.replayed,
           t[1].counts.instantiated, t[1].counts.updated, t[2].counts.launches,
           t[2].counts.replayed, t[2].counts.instantiated, t[2].counts.updated);
    for (int i = 0; i < 3; i++) free(t[i].weights);
}

static char bert_dir[700];

static void create_bert(Job *j) {
    ModelConfig cfg;
    LfError err;
    CHECK_OK(model_config_load(&cfg, bert_dir, &err), &err);
    cfg.hidden_dropout = cfg.attention_dropout = 0.1f;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f, spec.precision = PRECISION_FP32;
    const char *targets[] = {"query", "key", "value", "dense"};
    spec.n_targets = 4;
    for (int i = 0; i < 4; i++) snprintf(spec.targets[i], sizeof spec.targets[0], "%s", targets[i]);
    *j = (Job){.accum = 1,
               .B = 3,
               .V = 40,
               .T = {7, 7, 5, 5},
               .max_norm = 0,
               .lr = 1e-2f,
               .schedule = SCHEDULE_LINEAR};
    CHECK_OK(model_create(&j->m, &cfg, &spec, &ops_cuda, bert_dir, 5, MAX_B, MAX_T, NULL, 0, &err),
             &err);
    randomise_lora(&j->m);
}

/* vocabulary 300, hidden 32, 4 heads over 2 KV heads, FFN 48, 2 layers */
static void decoder_config(ModelConfig *cfg) {
    model_config_defaults(cfg, ARCH_LLAMA);
    cfg->vocab_size = 300, cfg->hidden_size = 32, cfg->num_layers = 2, cfg->num_heads = 4;
    cfg->num_kv_heads = 2, cfg->ffn_size = 48, cfg->max_positions = 16;
    cfg->attention_dropout = 0.1f;
    cfg->bos_token_id = cfg->eos_token_id = 0;
}

static AttentionImpl attention = ATTENTION_LORAFT; /* the Llama jobs' model.attention */
static int checkpointing;                          /* and their train.gradient_checkpointing */
static int dora; /* and lora.use_dora (the norms of a step's weights replayed; the rest's masks) */
/* and LoRA on embed_tokens and lm_head too (the head's lora dropout, its up-projection inside the
 * head's chunks; the table's row gradients added in a fixed order) */
static int embed_and_head;

/* The GRPO jobs (create_grpo): num_iterations (grpo_passes: a generation's first pass forms its
 * weights on the host where nothing else asks the device to, a later one on the device from the
 * first's losses), the KL's beta, the entropy mask's quantile and the bonus (a coefficient of
 * each step, as adaptive control's), batches of one length. */
static int grpo_passes = 2, grpo_bonus;
static float grpo_beta, grpo_quantile, grpo_coef[STEPS] = {0.01f, 0.01f, 0.02f, 0.02f};

/* The GRPO jobs' settings (model_create plans their buffers by them). */
static GrpoSpec grpo_spec(void) {
    return (GrpoSpec){.beta = grpo_beta,
                      .generations = 2,
                      .loss = GRPO_DAPO,
                      .scale = GRPO_SCALE_GROUP,
                      .max_completion = MAX_T,
                      .iterations = grpo_passes,
                      .eps_low = 0.2f,
                      .eps_high = 0.28f,
                      .level = OPS_GRPO_TOKEN,
                      .kl_corrected = 1,
                      .entropy_quantile = grpo_quantile,
                      .entropy_coef = grpo_bonus ? grpo_coef[0] : 0.0f,
                      .entropy_bonus = grpo_bonus};
}

static void create_llama_task(Job *j, Task task) {
    ModelConfig cfg;
    LfError err;
    decoder_config(&cfg);
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = task;
    spec.attention = attention;
    spec.gradient_checkpointing = checkpointing;
    spec.dpo = (DpoSpec){0.5f, DPO_SIGMOID, 0.1f};
    spec.grpo = grpo_spec();
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f, spec.use_dora = dora;
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    spec.n_targets = 7;
    for (int i = 0; i < 7; i++) snprintf(spec.targets[i], sizeof spec.targets[0], "%s", proj[i]);
    if (embed_and_head) {
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "embed_tokens");
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "lm_head");
    }
    *j = (Job){.accum = 2,
               .B = 4,
               .V = 300,
               .labels_per_token = 1,
               .T = {8, 8, 6, 6},
               .max_norm = 0.05f,
               .lr = 1e-2f,
               .schedule = SCHEDULE_COSINE};
    CHECK_OK(model_create(&j->m, &cfg, &spec, &ops_cuda, NULL, 5, MAX_B, MAX_T, NULL, 0, &err),
             &err);
    randomise_lora(&j->m);
}

static void create_llama(Job *j) {
    create_llama_task(j, TASK_CAUSAL_LM);
}

static void create_reward(Job *j) {
    create_llama_task(j, TASK_REWARD);
    j->pairs = 1;
}

static void create_dpo(Job *j) {
    create_llama_task(j, TASK_DPO);
    j->dpo = j->pairs = 1;
}

static void create_grpo(Job *j) {
    create_llama_task(j, TASK_GRPO);
    j->rl = 1, j->passes = grpo_passes;
    memcpy(j->coef, grpo_coef, sizeof j->coef);
    for (int step = 0; step < STEPS; step++) j->T[step] = MAX_T; /* one shape: keys alone differ */
}

/* GRPO's steps (create_grpo) under the three modes: the same bits (a replay of a recording
 * whose key differs, another pass of a generation or another coefficient, would take the wrong
 * weights), and under on a recording for each key (`keys` of them), the rest replays. */
static void check_grpo(const char *name, int keys) {
    Trace t[3];
    Job j;
    train_three(create_grpo, t, &j);
    int micro = STEPS * j.accum;
    for (int i = 1; i < 3; i++) {
        CHECK(memcmp(t[i].loss, t[0].loss, sizeof t[0].loss) == 0);
        CHECK(memcmp(t[i].norm, t[0].norm, sizeof t[0].norm) == 0);
        CHECK(memcmp(t[i].weights, t[0].weights, t[0].n_weights * sizeof(float)) == 0);
    }
    CHECK(t[1].counts.launches == micro && t[1].counts.replayed == micro - keys);
    CHECK(t[1].counts.instantiated + t[1].counts.updated == keys);
    printf("%s: graphs on and auto match op by op bit for bit (losses %.6f .. %.6f; on: %ld "
           "launches, %ld replays; auto: %ld, %ld)\n",
           name, t[0].loss[0], t[0].loss[micro - 1], t[1].counts.launches, t[1].counts.replayed,
           t[2].counts.launches, t[2].counts.replayed);
    for (int i = 0; i < 3; i++) free(t[i].weights);
}

/* auto records a micro-batch whose shape repeats, and a batch that hides no token is another
 * shape than one that does (attention gets no mask then): padded, unpadded, unpadded give one
 * graph launch, the third. */
static void check_padded_repeat(void) {
    Job j;
    LfError err;
    create_bert(&j);
    TrainStep st = {.graphs = GRAPHS_AUTO};
    OpsGraphCounts c0, c1;
    ops_cuda.graph_counts(&c0);
    int32_t ids[MAX_B * MAX_T], mask[MAX_B * MAX_T], labels[MAX_B] = {0, 1, 0};
    enum { T = 5 };
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < j.B * T; i++) mask[i] = k ? 1 : i % T < T - i / T, ids[i] = 5 + i % 30;
        CHECK_OK(model_set_batch(&j.m, ids, NULL, mask, labels, j.B, T, &err), &err);
        CHECK_OK(train_micro_step(&st, &j.m, (uint64_t)k, 1.0f, NULL, 0.0f, 0.0f, &err), &err);
        CHECK_OK(model_read_loss(&j.m, NULL, NULL, &err), &err);
    }
    ops_cuda.graph_counts(&c1);
    CHECK(c1.launches - c0.launches == 1);
    model_free(&j.m);
}

/* model.attention cudnn (a GPU, in a build with it): cuDNN plans a shape on its first use, which a
 * recording cannot hold, so on records only repeats, as auto does (a shape's first micro-batch
 * op by op); both must match op by op. Within 1e-4 relative, not bit for bit: cuDNN's backward
 * need not add in a fixed order. */
static void check_cudnn(void) {
    LfError err;
    if (ops_cuda.set_attention(ATTENTION_CUDNN, &err)) {
        printf("cudnn attention under graphs skipped: %s\n", err.msg);
        return;
    }
    ops_cuda.set_attention(ATTENTION_LORAFT, NULL);
    attention = ATTENTION_CUDNN;
    Trace t[3];
    Job j;
    train_three(create_llama, t, &j);
    int micro = STEPS * j.accum;
    for (int i = 1; i < 3; i++) {
        for (int k = 0; k < micro; k++) CHECK_CLOSE(t[i].loss[k], t[0].loss[k], 0.0, 1e-4);
        for (int s = 0; s < STEPS; s++) CHECK_CLOSE(t[i].norm[s], t[0].norm[s], 0.0, 1e-4);
        CHECK(t[i].counts.launches == micro - new_shapes(&j));
    }
    printf("cudnn attention: graphs on and auto match op by op within 1e-4 (losses %.6f .. %.6f; "
           "%ld and %ld graph launches)\n",
           t[0].loss[0], t[0].loss[micro - 1], t[1].counts.launches, t[2].counts.launches);
    for (int i = 0; i < 3; i++) free(t[i].weights);
    attention = ATTENTION_LORAFT;
}

/* The trainer's whole run under train.cuda_graphs off, on and auto: a tiny DistilBERT with LoRA
 * (dropout 0.1, hidden and attention dropout too) on 26 lines, gradient accumulation 2, two
 * epochs, an evaluation and a checkpoint after each (other shapes between the recorded ones),
 * precision bf16: the same adapter, bit for bit, and on and auto report replays. */
static void check_trainer(const char *tmp, const char *vocab) {
    char model[700], train[700], val[700];
    tiny_classifier_run(tmp, vocab, model, train, val);
    const char *modes[3] = {"off", "on", "auto"};
    char *adapter[3] = {NULL, NULL, NULL};
    size_t bytes[3] = {0, 0, 0};
    long recorded[3] = {0, 0, 0}, replayed[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        TrainConfig c;
        LfError err;
        train_config_defaults(&c);
        char set[5][800];
        snprintf(set[0], sizeof set[0], "model.model=%s", model);
        snprintf(set[1], sizeof set[1], "data.train_file=%s", train);
        snprintf(set[2], sizeof set[2], "data.validation_file=%s", val);
        snprintf(set[3], sizeof set[3], "train.output_dir=%s/run-%s", tmp, modes[i]);
        snprintf(set[4], sizeof set[4], "train.cuda_graphs=%s", modes[i]);
        const char *fixed[] = {"model.device=cuda",
                               "data.format=jsonl",
                               "lora.dropout=0.1",
                               "lora.target_modules=q_lin,v_lin",
                               "train.batch_size=4",
                               "train.num_epochs=2",
                               "train.gradient_accumulation_steps=2",
                               "train.learning_rate=1e-2"};
        int ok = 1;
        for (int k = 0; k < 5; k++) ok = ok && !train_config_set(&c, set[k], &err);
        for (int k = 0; k < 8; k++) ok = ok && !train_config_set(&c, fixed[k], &err);
        ok = ok && !train_config_check(&c, &err);
        char *log = NULL;
        size_t log_n = 0;
        FILE *out = open_memstream(&log, &log_n);
        RunOptions opt = {NULL, 0};
        ok = ok && out && !trainer_run(&c, &opt, out, &err);
        if (out) fclose(out);
        CHECK_OK(ok ? 0 : -1, &err);
        const char *g = log ? strstr(log, "CUDA graphs: ") : NULL;
        if (g) sscanf(g, "CUDA graphs: %ld recordings, %ld replays", &recorded[i], &replayed[i]);
        CHECK(!g == (i == 0)); /* reported where graphs are on */
        free(log);
        char path[800];
        snprintf(path, sizeof path, "%s/run-%s/last/adapter_model.safetensors", tmp, modes[i]);
        CHECK_OK(file_read_all(path, &adapter[i], &bytes[i], &err), &err);
        CHECK(bytes[i] > 0);
    }
    for (int i = 1; i < 3; i++)
        CHECK(adapter[0] && adapter[i] && bytes[i] == bytes[0] &&
              memcmp(adapter[i], adapter[0], bytes[0]) == 0);
    CHECK(replayed[1] > 0 && replayed[2] > 0);
    printf("trainer (DistilBERT LoRA, bf16, 2 epochs with evaluations and checkpoints): the same "
           "adapter under graphs off, on (%ld recordings, %ld replays) and auto (%ld, %ld)\n",
           recorded[1], replayed[1], recorded[2], replayed[2]);
    for (int i = 0; i < 3; i++) free(adapter[i]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_cuda_device();
    CHECK(ops_cuda.graph_begin && ops_cuda.graph_end && ops_cuda.graph_replay &&
          ops_cuda.graph_drop && ops_cuda.graph_counts);
    CHECK(!ops_cpu.graph_begin && !ops_cpu.graph_end && !ops_cpu.graph_replay &&
          !ops_cpu.graph_drop && !ops_cpu.graph_counts);
    /* the step's device copy made now: its first write would count in the first run only */
    ops_cuda.set_step(&(OpsStep){1, 1.0f});
    char tmp[] = "/tmp/loraft-gpu-graphs-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmp);
    mkdir(vocab, 0700);
    tiny_write_vocab(vocab);
    snprintf(bert_dir, sizeof bert_dir, "%s/bert", tmp);
    tiny_checkpoint("bert", 32, 2, vocab, bert_dir);
    check_job("bert classification (LoRA, dropout, fp32)", create_bert);
    check_job("llama causal-lm (LoRA, dropout, bf16, cosine, clipping, accumulation 2)",
              create_llama);
    check_job("llama reward model (LoRA, the same schedule)", create_reward);
    check_job("llama dpo (LoRA, reference forward op by op, the same schedule)", create_dpo);
    checkpointing = 1;
    check_job("llama causal-lm with gradient checkpointing (the same)", create_llama);
    checkpointing = 0;
    dora = 1;
    check_job("llama causal-lm with DoRA (the same, under lora dropout)", create_llama);
    dora = 0;
    embed_and_head = 1;
    check_job("llama causal-lm with LoRA on embed_tokens and lm_head too (the same)", create_llama);
    check_job("llama dpo with LoRA on embed_tokens and lm_head too (the same)", create_dpo);
    embed_and_head = 0;
    /* keys: the passes' two; then each step's (a pass and a coefficient); then the two
     * coefficients' */
    check_grpo("llama grpo (LoRA, num_iterations 2: host weights, then the device's)", 2);
    grpo_beta = 0.1f, grpo_quantile = 0.5f, grpo_bonus = 1;
    check_grpo("llama grpo (a KL, num_iterations 2, the entropy mask and bonus)", 4);
    grpo_passes = 1; /* every step a generation's first, the coefficient changed at step 3 */
    check_grpo("llama grpo (num_iterations 1, the bonus's coefficient changed)", 2);
    check_padded_repeat();
    check_trainer(tmp, vocab);
    check_cudnn(); /* last: a fault in cuDNN costs no other case */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_report();
}
