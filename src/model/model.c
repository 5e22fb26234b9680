/* model.c: the model core: the parameter table, PEFT's name matching, LoRA beside the dense
 * layers, the activation memory plan, loading, saving and merging (see model.h, arch.h).
 *
 * What the network computes lives in its architecture (src/bert.c, llama.c, gpt2.c) and what it is
 * trained for in its objective (src/classification.c); this file never knows which. Every op runs
 * through the backend table, so it never touches tensor data either. */
#include "loraft/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "loraft/activation.h" /* soft_cap */
#include "loraft/arch.h"
#include "loraft/bnb.h"
#include "loraft/gguf.h"
#include "loraft/objective.h"
#include "loraft/pissa.h"
#include "loraft/rng.h"
#include "loraft/safetensors.h"

/* ------------------------------------------------------------------------------------ */
/* strategy and spec                                                                    */

/* The index of s in names[n], or -1. */
static int name_index(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static const char *const strategy_names[] = {"lora", "head", "full", "tokens", "none"};

int strategy_parse(const char *s, Strategy *out, LfError *err) {
    int i = name_index(strategy_names, 4, s); /* none is not a way to train */
    if (i < 0)
        return lf_fail(err, "unknown strategy '%s' (expected lora, head, full or tokens)", s);
    *out = (Strategy)i;
    return 0;
}

const char *strategy_name(Strategy s) {
    return strategy_names[s];
}

static const char *const base_dtype_names[] = {"f32",  "bf16", "q",    "q8_0", "q5_1",
                                               "q5_0", "q4_1", "q4_0", "nf4"};

int base_dtype_parse(const char *s, BaseDtype *out, LfError *err) {
    int i = name_index(base_dtype_names, 9, s);
    if (i < 0)
        return lf_fail(err,
                       "unknown base dtype '%s' (expected f32, bf16, q: a GGUF file's own "
                       "blocks, or q8_0, q5_1, q5_0, q4_1, q4_0, nf4: quantised at load)",
                       s);
    *out = (BaseDtype)i;
    return 0;
}

const char *base_dtype_name(BaseDtype d) {
    return base_dtype_names[d];
}

static const char *const precision_names[] = {"auto", "fp32", "tf32", "bf16"};

int precision_parse(const char *s, Precision *out, LfError *err) {
    int i = name_index(precision_names, 4, s);
    if (i < 0) return lf_fail(err, "unknown precision '%s' (expected auto, fp32, tf32 or bf16)", s);
    *out = (Precision)i;
    return 0;
}

const char *precision_name(Precision p) {
    return precision_names[p];
}

static const char *const attention_names[] = {"loraft", "cudnn"};

int attention_parse(const char *s, AttentionImpl *out, LfError *err) {
    int i = name_index(attention_names, 2, s);
    if (i < 0) return lf_fail(err, "unknown attention '%s' (expected loraft or cudnn)", s);
    *out = (AttentionImpl)i;
    return 0;
}

const char *attention_name(AttentionImpl a) {
    return attention_names[a];
}

static const char *const lora_bias_names[] = {"none", "all", "lora_only"};

int lora_bias_parse(const char *s, LoraBias *out, LfError *err) {
    int i = name_index(lora_bias_names, 3, s);
    if (i < 0) return lf_fail(err, "unknown bias '%s' (expected none, all or lora_only)", s);
    *out = (LoraBias)i;
    return 0;
}

const char *lora_bias_name(LoraBias b) {
    return lora_bias_names[b];
}

static const char *const lora_init_names[] = {"default", "gaussian", "pissa", "olora"};

int lora_init_parse(const char *s, LoraInit *out, LfError *err) {
    int i = name_index(lora_init_names, 4, s);
    if (i < 0)
        return lf_fail(err, "unknown LoRA init '%s' (expected default, gaussian, pissa or olora)",
                       s);
    *out = (LoraInit)i;
    return 0;
}

int init_splits(LoraInit i) {
    return i == LORA_INIT_PISSA || i == LORA_INIT_OLORA;
}

const char *lora_init_name(LoraInit i) {
    return lora_init_names[i];
}

void train_spec_defaults(TrainSpec *s) {
    memset(s, 0, sizeof *s);
    s->strategy = STRATEGY_LORA;
    s->task = TASK_CLASSIFICATION;
    s->r = 8;
    s->alpha = 8.0f;
    s->dpo = (DpoSpec){0.1f, DPO_SIGMOID, 0.0f};
    s->rloo = (RlooSpec){
        .beta = 0.05f, .generations = 2, .iterations = 1, .eps_low = 0.2f, .eps_high = 0.2f};
    s->grpo = (GrpoSpec){.generations = 2,
                         .loss = GRPO_DAPO,
                         .scale = GRPO_SCALE_GROUP,
                         .max_completion = 256,
                         .iterations = 1,
                         .eps_low = 0.2f,
                         .eps_high = 0.2f,
                         .sapo_pos = 1.0f,
                         .sapo_neg = 1.05f,
                         .kl_corrected = 1,
                         .vespo_k = {2.0f, 3.0f},
                         .vespo_lambda = {3.0f, 2.0f}};
    s->temperature = 1.0f;
}

static const ArchImpl *arch_for(Arch a) {
    static const ArchImpl *const archs[] = {
        [ARCH_DISTILBERT] = &arch_distilbert,
        [ARCH_BERT] = &arch_bert,
        [ARCH_LLAMA] = &arch_llama,
        [ARCH_GPT2] = &arch_gpt2,
        [ARCH_QWEN2] = &arch_llama,
        [ARCH_QWEN3] = &arch_llama,
        [ARCH_MISTRAL] = &arch_llama,
        [ARCH_SMOLLM3] = &arch_llama,
        [ARCH_GEMMA3] = &arch_llama,
        [ARCH_GEMMA2] = &arch_llama,
        [ARCH_PHI3] = &arch_phi3,
    };
    return archs[a];
}

Task arch_task(Arch a) {
    return arch_for(a)->task;
}

Task arch_adapter_task(Arch a, Task t) {
    unsigned tasks = arch_for(a)->tasks;
    if (t == TASK_CLASSIFICATION && !(tasks & 1u << t) && tasks & 1u << TASK_REWARD)
        return TASK_REWARD;
    return t;
}

/* ------------------------------------------------------------------------------------ */
/* the parameter table                                                                  */

Param *model_param(Model *m, int decay, int d0, int d1, const char *fmt, ...) {
    Param *p = &m->params[m->n_params++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    p->decay = decay;
    p->in_checkpoint = 1;
    p->pad_row = -1;
    p->dtype = GGML_F32;
    return p;
}

void model_linear(Model *m, Linear *l, const char *module, int in, int out, int bias) {
    l->w = model_param(m, 1, out, in, "%s.weight", module);
    l->b = bias ? model_param(m, 0, out, 0, "%s.bias", module) : NULL;
    l->in = in;
    l->out = out;
    m->linears[m->n_linears++] = l;
}

void model_conv1d(Model *m, Linear *l, const char *module, int in, int out) {
    model_linear(m, l, module, in, out, 1);
    l->w->hf_transposed = 1;
}

void transpose_f32(float *out, const float *in, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[c * rows + r] = in[r * cols + c];
}

void model_norm(Model *m, Norm *n, const char *module, int C, int bias) {
    n->w = model_param(m, 0, C, 0, "%s.weight", module);
    n->b = bias ? model_param(m, 0, C, 0, "%s.bias", module) : NULL;
    n->w->is_norm = 1;
    if (n->b) n->b->is_norm = 1;
}

void model_norm_plus_one(Model *m, Norm *n, const char *module, int C) {
    model_norm(m, n, module, C, 0);
    n->w->plus_one = 1;
}

const float *model_norm_weight(const Model *m, const Norm *n) {
    return n->w->plus_one ? m->plus_one + (n->w->value - m->values) : n->w->value;
}

/* "a.b.weight" -> module "a.b" (into out). */
static void module_of(const Param *p, char *out, size_t cap) {
    snprintf(out, cap, "%s", p->name);
    char *dot = strrchr(out, '.');
    if (dot) *dot = 0;
}

/* PEFT matches a target (list form) when the module name equals it or ends in ".target". */
static int name_matches(const char *module, const char *target) {
    size_t lm = strlen(module), lt = strlen(target);
    if (lm == lt) return !strcmp(module, target);
    return lm > lt && module[lm - lt - 1] == '.' && !strcmp(module + lm - lt, target);
}

/* PEFT's modules_to_save test is a plain suffix match (so "pre_classifier" matches
 * "classifier"). */
static int is_saved_module(const TrainSpec *s, const char *module) {
    for (int i = 0; i < s->n_modules_to_save; i++) {
        size_t lm = strlen(module), lt = strlen(s->modules_to_save[i]);
        if (lm >= lt && !strcmp(module + lm - lt, s->modules_to_save[i])) return 1;
    }
    return 0;
}

/* Empty lists mean PEFT's defaults: target_modules by architecture, modules_to_save by task.
 * Written into the spec so that adapters record what was actually used. */
static void resolve_defaults(TrainSpec *s, const ArchImpl *arch, const Objective *obj) {
    if (!s->n_targets && !s->target_regex[0])
        for (int i = 0; i < 2 && arch->default_targets[i]; i++)
            strcpy(s->targets[s->n_targets++], arch->default_targets[i]);
    if (!s->n_modules_to_save)
        for (int i = 0; i < 2 && obj->modules_to_save[i]; i++)
            strcpy(s->modules_to_save[s->n_modules_to_save++], obj->modules_to_save[i]);
}

static int all_linear(const TrainSpec *s) {
    return !strcasecmp(s->target_regex, LORA_ALL_LINEAR);
}

/* PEFT's all-linear leaves out the output layer: the LM head, or a classifier's (PEFT's
 * SEQ_CLS_HEAD_NAMES, a reward model's score). */
static int output_layer(const Model *m, const Linear *l, const char *module) {
    return l == m->head || !strcmp(module, "classifier") || !strcmp(module, "score");
}

/* PEFT's exclude_modules: module (or its name in PEFT's tree) is a listed name or ends in "."
 * one, or matches exclude_regex whole. */
static int excluded(const TrainSpec *s, const char *module, const char *peft_name) {
    for (int i = 0; i < s->n_exclude; i++)
        if (name_matches(module, s->exclude[i]) || name_matches(peft_name, s->exclude[i])) return 1;
    return s->exclude_regex[0] && lora_regex_fullmatch(peft_name, s->exclude_regex);
}

/* Whether module (peft_name in PEFT's module tree: model_tree_name), the linear l or (l NULL) the
 * token embedding, is a LoRA target, as PEFT's check_target_module_exists decides: target_regex
 * (all-linear, which takes linears only, or the whole name matched) or a target_modules name (in
 * one of layers_to_transform's layers when there are any), and not excluded; used[t] set for the
 * names it matches, used[0] for the regular expression. */
static int is_target(const Model *m, const Linear *l, const char *module, const char *peft_name,
                     int *used) {
    const TrainSpec *s = &m->spec;
    int hit = 0;
    if (s->target_regex[0]) {
        hit = all_linear(s) ? l && !output_layer(m, l, module)
                            : lora_regex_fullmatch(peft_name, s->target_regex);
        used[0] |= hit;
    }
    for (int t = 0; t < s->n_targets; t++)
        if (name_matches(module, s->targets[t]) || name_matches(peft_name, s->targets[t]))
            hit = used[t] = 1;
    if (!hit || excluded(s, module, peft_name)) return 0;
    if (!s->n_layers) return 1;
    int layer = lora_layer_index(peft_name, s->layers_pattern, s->n_layers_pattern);
    for (int i = 0; i < s->n_layers; i++)
        if (layer >= 0 && s->layers[i] == layer) return 1;
    return 0;
}

/* all-linear as the list it stands for, which the adapter then records: the last segment of each
 * adapted module's name, once (a name stands for every module it ends). */
static void write_all_linear(Model *m) {
    TrainSpec *s = &m->spec;
    s->target_regex[0] = 0;
    for (int i = 0; i < m->n_loras; i++) {
        char module[160];
        module_of(m->loras[i].base->w, module, sizeof module);
        const char *last = strrchr(module, '.') ? strrchr(module, '.') + 1 : module;
        int seen = 0;
        for (int t = 0; t < s->n_targets && !seen; t++) seen = !strcmp(s->targets[t], last);
        if (!seen && s->n_targets < LORA_MAX_TARGETS) /* a name: at most the linears */
            snprintf(s->targets[s->n_targets++], sizeof s->targets[0], "%.63s", last);
    }
}

/* A group's members share one input copy and one scale in the bf16 GEMMs (fused_lora): where
 * rank_pattern or alpha_pattern give its adapted members different ranks or scales, each
 * member runs alone. */
static void split_mixed_groups(Model *m) {
    for (int i = 0; i < m->n_linears; i++) {
        Linear *l = m->linears[i];
        if (!l->peers || l->peers[0] != l) continue;
        const Lora *first = NULL;
        int mixed = 0;
        for (int j = 0; j < l->group; j++) {
            const Lora *lo = l->peers[j]->lora;
            if (!lo) continue;
            mixed = mixed || (first && (lo->r != first->r || lo->scale != first->scale));
            first = first ? first : lo;
        }
        Linear *const *peers = l->peers;
        for (int j = 0, n = l->group; mixed && j < n; j++)
            peers[j]->peers = NULL, peers[j]->group = 1;
    }
}

/* Whether module (PEFT's name of it into peft) is a LoRA target (is_target); -1 with the reason
 * where it is also in modules_to_save. */
static int targeted(const Model *m, const Linear *l, const char *module, char peft[200], int *used,
                    LfError *err) {
    char buf[200];
    snprintf(peft, 200, "%s", model_tree_name(&m->cfg, module, 0, buf, sizeof buf));
    if (!is_target(m, l, module, peft, used)) return 0;
    if (is_saved_module(&m->spec, module))
        return lf_fail(err,
                       "LoRA target '%s' is also in modules_to_save (leave it out: "
                       "lora.exclude_modules)",
                       module);
    return 1;
}

/* An adapter's rank and scale: the spec's, or its rank_pattern's and alpha_pattern's. */
static void lora_shape(const Model *m, Lora *lo, const char *peft) {
    const TrainSpec *s = &m->spec;
    lo->r = (int)lora_pattern_value(s->rank_pattern, s->n_rank_pattern, peft, (float)s->r);
    float alpha = lora_pattern_value(s->alpha_pattern, s->n_alpha_pattern, peft, s->alpha);
    lo->scale = s->use_rslora ? alpha / sqrtf((float)lo->r) : alpha / (float)lo->r;
}

/* PEFT's LoRA on an nn.Embedding, when the token embedding is a target: A [R,V] held transposed
 * (Model.embedding_lora), B [C,R]. */
static int attach_embedding_lora(Model *m, int *used, LfError *err) {
    Param *table = m->word_embedding;
    char module[160], peft[200];
    if (!table) return 0;
    module_of(table, module, sizeof module);
    int hit = targeted(m, NULL, module, peft, used, err);
    if (hit <= 0) return hit;
    if (m->spec.use_dora)
        return lf_fail(err,
                       "DoRA on the embedding '%s' is not supported (leave it out of the "
                       "targets, or lora.use_dora false)",
                       module);
    Lora *lo = &m->embedding_lora;
    lora_shape(m, lo, peft);
    lo->A = model_param(m, 1, table->shape[0], lo->r, "%s.lora_embedding_A", module);
    lo->B = model_param(m, 1, table->shape[1], lo->r, "%s.lora_embedding_B", module);
    lo->A->hf_transposed = 1;
    lo->A->is_lora = lo->B->is_lora = 1;
    lo->A->in_checkpoint = lo->B->in_checkpoint = 0;
    return 0;
}

/* Token ids whose rows train (of a table of V rows): each in the vocabulary, none twice. */
static int check_token_ids(const int *ids, int n, int V, const char *key, LfError *err) {
    for (int k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= V)
            return lf_fail(err, "%s: token id %d is outside the vocabulary (size %d)", key, ids[k],
                           V);
        for (int j = 0; j < k; j++)
            if (ids[j] == ids[k])
                return lf_fail(err, "%s: token id %d is listed twice", key, ids[k]);
    }
    return 0;
}

/* A TokenRows' trained rows [K,C], named as peft names them under module: LoRA's
 * trainable_token_indices wrap the module (token_adapter), TrainableTokens replaces it. */
static void add_token_rows(Model *m, TokenRows *tr, int k, const char *module) {
    const char *wrap = m->spec.strategy == STRATEGY_TOKENS ? "" : ".token_adapter";
    tr->k = k;
    tr->rows =
        model_param(m, 1, k, m->cfg.hidden_size, "%s%s.trainable_tokens_delta", module, wrap);
    tr->rows->is_lora = 1, tr->rows->in_checkpoint = 0; /* token_rows_create starts them */
}

/* peft's trainable tokens (trainable_token_indices; Model.token_rows): rows of the token
 * embedding trained in place of the table's, and so of a tied head's, which peft ties to them. */
static int attach_embedding_rows(Model *m, LfError *err) {
    const TrainSpec *s = &m->spec;
    Param *table = m->word_embedding;
    char module[160];
    if (!s->n_token_indices) return 0;
    module_of(table, module, sizeof module);
    size_t lm = strlen(module), lt = strlen(s->token_module); /* peft's suffix match */
    if (lt && (lt > lm || strcmp(module + lm - lt, s->token_module)))
        return lf_fail(err,
                       "trainable_token_indices names '%s', which is neither the token embedding "
                       "('%s') nor lm_head",
                       s->token_module, module);
    int ties_head = model_head_tied(m) && !s->n_head_token_indices;
    if (m->embedding_lora.A || (ties_head && m->head->lora))
        return lf_fail(err,
                       "trainable_token_indices beside LoRA on '%s': both would change the same "
                       "table (choose one)",
                       m->embedding_lora.A ? module : "lm_head");
    if (is_saved_module(s, module))
        return lf_fail(err,
                       "trainable_token_indices on '%s', which modules_to_save trains whole "
                       "(choose one)",
                       module);
    if (check_token_ids(s->token_indices, s->n_token_indices, (int)table->shape[0],
                        "trainable_token_indices", err))
        return -1;
    add_token_rows(m, &m->token_rows, s->n_token_indices, module);
    if (ties_head) m->head_branch_rows = &m->token_rows;
    return 0;
}

/* Whether the embedding's and the head's lists of token ids are one list, in the same order. */
static int same_token_lists(const TrainSpec *s) {
    return s->n_token_indices == s->n_head_token_indices &&
           !memcmp(s->token_indices, s->head_token_indices,
                   s->n_token_indices * sizeof *s->token_indices);
}

/* peft's trainable_token_indices {"lm_head": ids} (Model.head_token_rows): rows of the LM head
 * trained apart from the embedding's. On a tied model peft ties the same list, in the same order,
 * to the embedding's instead: so does loraft (the head's list dropped). */
static int attach_head_rows(Model *m, LfError *err) {
    TrainSpec *s = &m->spec;
    int n = s->n_head_token_indices, tied = model_head_tied(m);
    if (!n) return 0;
    if (tied && same_token_lists(s)) {
        s->n_head_token_indices = 0; /* attach_embedding_rows ties them */
        return 0;
    }
    if (!m->head || m->head->out != m->cfg.vocab_size)
        return lf_fail(err,
                       "trainable_token_indices names lm_head, which this model does not have "
                       "(its objective, %s, has no LM head)",
                       m->objective->name);
    if (tied && s->n_token_indices && s->ensure_weight_tying)
        return lf_fail(err, "ensure_weight_tying with other trainable_token_indices for the tied "
                            "lm_head than for the embedding: peft refuses them too");
    if (m->head->lora)
        return lf_fail(err, "trainable_token_indices beside LoRA on 'lm_head': both would change "
                            "the head (choose one)");
    if (is_saved_module(s, "lm_head"))
        return lf_fail(err, "trainable_token_indices on 'lm_head', which modules_to_save trains "
                            "whole (choose one)");
    if (check_token_ids(s->head_token_indices, n, m->cfg.vocab_size,
                        "trainable_token_indices of lm_head", err))
        return -1;
    add_token_rows(m, &m->head_token_rows, n, "lm_head");
    m->head_branch_rows = &m->head_token_rows;
    return 0;
}

/* The trained token rows, beside LoRA's adapters or alone (STRATEGY_TOKENS: peft's
 * TrainableTokens, which needs them). */
static int attach_token_rows(Model *m, LfError *err) {
    int tokens = m->spec.strategy == STRATEGY_TOKENS;
    if (tokens && !m->spec.n_token_indices && !m->spec.n_head_token_indices)
        return lf_fail(err, "strategy tokens trains the rows of trainable_token_indices: "
                            "give their token ids");
    if (tokens && !(m->head && m->head->out == m->cfg.vocab_size))
        return lf_fail(err,
                       "strategy tokens (peft's TrainableTokens) trains no head: it needs a "
                       "language model's objective (causal-lm, sft, dpo), not %s",
                       m->objective->name);
    const TrainSpec *s = &m->spec; /* TrainableTokens has one list, for every module it replaces */
    if (tokens && s->n_head_token_indices && !same_token_lists(s) &&
        (s->n_token_indices || model_head_tied(m)))
        return lf_fail(err, "strategy tokens (peft's TrainableTokens) trains one list of token "
                            "ids: lm_head_token_indices must be trainable_token_indices, or alone "
                            "for an untied head (else use strategy lora)");
    return attach_head_rows(m, err) || attach_embedding_rows(m, err);
}

/* An adapter beside the linear l (named module), of its rank and scale. The LM head's takes
 * neither DoRA nor a start split from its weight. */
static int attach_lora(Model *m, Linear *l, const char *module, const char *peft, LfError *err) {
    const TrainSpec *s = &m->spec;
    if (l == m->head && (s->use_dora || init_splits(s->init)))
        return lf_fail(err,
                       "%s on the LM head ('%s') is not supported (leave it out of the targets)",
                       s->use_dora ? "DoRA" : lora_init_name(s->init), module);
    Lora *lo = &m->loras[m->n_loras++];
    lora_shape(m, lo, peft);
    lo->A = model_param(m, 1, lo->r, l->in, "%s.lora_A.weight", module);
    lo->B = model_param(m, 1, l->out, lo->r, "%s.lora_B.weight", module);
    lo->A->is_lora = lo->B->is_lora = 1;
    lo->A->in_checkpoint = lo->B->in_checkpoint = 0;
    lo->base = l;
    l->lora = lo;
    if (!s->use_dora) return 0;
    lo->mag = model_param(m, 1, l->out, 0, "%s.lora_magnitude_vector", module);
    lo->mag->is_lora = 1, lo->mag->in_checkpoint = 0; /* sync_dora initialises it */
    return 0;
}

/* PEFT's lm_head where the head is tied to the token embedding: a module of its own there, whose
 * weight is the table (no linear of loraft's), adapted apart from it. */
static int attach_tied_head_lora(Model *m, int *used, LfError *err) {
    char peft[200];
    if (!model_head_tied(m)) return 0;
    int hit = targeted(m, m->head, "lm_head", peft, used, err);
    return hit <= 0 ? hit : attach_lora(m, m->head, "lm_head", peft, err);
}

/* Adds LoRA A/B beside every targeted dense layer, of its rank and scale, and beside the token
 * embedding and a tied LM head where they are targets. */
static int attach_loras(Model *m, LfError *err) {
    const TrainSpec *s = &m->spec;
    int used[LORA_MAX_TARGETS] = {0};
    for (int i = 0; i < m->n_linears; i++) {
        Linear *l = m->linears[i];
        char module[160], peft[200];
        module_of(l->w, module, sizeof module);
        int hit = targeted(m, l, module, peft, used, err);
        if (hit < 0 || (hit && attach_lora(m, l, module, peft, err))) return -1;
    }
    if (attach_embedding_lora(m, used, err) || attach_tied_head_lora(m, used, err) ||
        attach_token_rows(m, err))
        return -1;
    if (s->ensure_weight_tying && model_head_tied(m) && (m->embedding_lora.A || m->head->lora))
        return lf_fail(err,
                       "ensure_weight_tying: peft makes the adapters of the tied embedding and "
                       "head one, which loraft does not (it adapts each apart); convert the "
                       "adapter in peft without it, or merge it there");
    for (int t = 0; t < s->n_targets; t++)
        if (!used[t])
            return lf_fail(err, "LoRA target module '%s' not found in the %s model", s->targets[t],
                           arch_name(m->cfg.arch));
    if (s->target_regex[0] && !used[0])
        return lf_fail(err, "LoRA target_modules \"%s\" matches no module of the %s model",
                       s->target_regex, arch_name(m->cfg.arch));
    if (!m->n_loras && !m->embedding_lora.A)
        return lf_fail(err, "no LoRA target is left by lora.layers_to_transform and "
                            "lora.exclude_modules");
    if (all_linear(s)) write_all_linear(m);
    split_mixed_groups(m);
    return 0;
}

int model_adapted_bias(const Model *m, const Param *p) {
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->lora && m->linears[i]->b == p) return 1;
    return 0;
}

/* PEFT's bias: "all" trains every parameter named so ("bias" in its name), "lora_only" the biases
 * of the adapted linears. */
static int bias_trains(const Model *m, const Param *p) {
    if (m->spec.bias == LORA_BIAS_ALL) return strstr(p->name, "bias") != NULL;
    return m->spec.bias == LORA_BIAS_LORA_ONLY && model_adapted_bias(m, p);
}

/* Which parameters train under the strategy. */
static int param_trains(const Model *m, const Param *p) {
    char module[160];
    module_of(p, module, sizeof module);
    switch (m->spec.strategy) {
    case STRATEGY_FULL:
        return 1;
    case STRATEGY_HEAD:
        return strncmp(p->name, m->arch->prefix, strlen(m->arch->prefix)) != 0;
    case STRATEGY_LORA:
        return p->is_lora || is_saved_module(&m->spec, module) || bias_trains(m, p);
    case STRATEGY_TOKENS:
        return p->is_lora;
    case STRATEGY_NONE:
        return 0;
    }
    return 0;
}

/* Points every trainable parameter's grad into the gradient block (table order). */
static int assign_gradients(Model *m, LfError *err) {
    int trains[m->n_params];
    m->n_grads = m->n_saved_copy = 0;
    for (int i = 0; i < m->n_params; i++) {
        trains[i] = param_trains(m, &m->params[i]);
        if (trains[i]) m->n_grads += m->params[i].numel;
        if (trains[i] && m->spec.strategy == STRATEGY_LORA && !m->params[i].is_lora)
            m->n_saved_copy += m->params[i].numel;
    }
    if (m->n_grads) {
        m->grads = m->ops->alloc(m->n_grads * sizeof(float));
        if (!m->grads) return lf_fail(err, "out of memory for %zu gradients", m->n_grads);
    }
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++)
        if (trains[i]) m->params[i].grad = m->grads + off, off += m->params[i].numel;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* initial values                                                                       */

/* Standard normal from two uniforms (Box-Muller). */
static float normal_draw(Rng *r) {
    float u1 = rng_next_uniform(r), u2 = rng_next_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

/* HF's _init_weights: Linear and Embedding weights ~ N(0, initializer_range) (or the
 * parameter's own init_std), biases 0,
 * norm weights 1, an embedding's padding row 0; PEFT's LoRA: A ~ kaiming_uniform(a=sqrt(5))
 * = U(+-1/sqrt(in)) (gaussian: N(0, 1/r)), B = 0; on an embedding, whatever the start, A = 0
 * and B ~ N(0, 1). */
static void param_init(const Model *m, const Param *p, float *v, Rng *r) {
    size_t len = strlen(p->name);
    int is_bias = len > 5 && !strcmp(p->name + len - 5, ".bias");
    if (p == m->embedding_lora.A || p == m->embedding_lora.B) {
        for (size_t i = 0; i < p->numel; i++)
            v[i] = p == m->embedding_lora.A ? 0.0f : normal_draw(r);
    } else if (p->is_lora) {
        int is_a = strstr(p->name, "lora_A") != NULL;
        float bound = 1.0f / sqrtf((float)p->shape[1]), std = 1.0f / (float)p->shape[0];
        int gaussian = m->spec.init == LORA_INIT_GAUSSIAN;
        for (size_t i = 0; i < p->numel; i++)
            v[i] = !is_a      ? 0.0f
                   : gaussian ? normal_draw(r) * std
                              : (2.0f * rng_next_uniform(r) - 1.0f) * bound;
    } else if (is_bias) {
        memset(v, 0, p->numel * sizeof *v);
    } else if (p->is_norm) {
        for (size_t i = 0; i < p->numel; i++) v[i] = p->plus_one ? 0.0f : 1.0f;
    } else {
        float std = p->init_std > 0 ? p->init_std : m->cfg.initializer_range;
        for (size_t i = 0; i < p->numel; i++) v[i] = normal_draw(r) * std;
        if (p->pad_row >= 0 && p->pad_row < p->shape[0])
            memset(v + (size_t)p->pad_row * p->shape[1], 0, p->shape[1] * sizeof *v);
    }
}

/* Initialises p (a head tensor the checkpoint lacks) and adds its name to report. */
static void init_missing(const Model *m, const Param *p, float *dst, Rng *r, char *report,
                         size_t report_cap) {
    param_init(m, p, dst, r);
    if (report && strlen(report) + strlen(p->name) + 3 < report_cap)
        strcat(strcat(report, report[0] ? ", " : ""), p->name);
}

/* Where the loaders put the values: f32 parameters into the host image of m->values (uploaded
 * at the end), packed ones through a staging buffer straight to their backend memory. */
typedef struct Loader {
    Model *m;
    float *host;    /* [m->n_values] */
    float *f32;     /* a packed weight's f32 values, [its numel] */
    uint8_t *bytes; /* its packed bytes */
    float *starts;  /* PiSSA, OLoRA: each adapter's A and B, m->loras' order, until split_finish */
} Loader;

/* Where a loader writes p's f32 values; then load_store. */
static float *load_dst(const Loader *ld, const Param *p) {
    return p->packed ? ld->f32 : ld->host + (p->value - ld->m->values);
}

/* Bytes of one row of a packed weight's values (without room for B). */
static size_t packed_row_bytes(const Param *p) {
    return (size_t)p->shape[1] / quant_block_elems(p->dtype) * quant_block_bytes(p->dtype);
}

/* Bytes from one stored row to the next: past the room for B, if any (BF16, 2 bytes a value). */
static size_t packed_stride(const Param *p) {
    return packed_row_bytes(p) + 2 * (size_t)p->lora_room;
}

/* Uploads a packed weight from its rows, back to back at src; a weight with room for LoRA's
 * fused GEMMs is spread out in ld->bytes first, the room zeroed (sync_adapters writes B there,
 * or nothing: a linear without LoRA in a group with it). */
static void upload_packed(const Loader *ld, const Param *p, const void *src) {
    if (p->lora_room) {
        size_t row = packed_row_bytes(p), stride = packed_stride(p);
        if (src != ld->bytes) memcpy(ld->bytes, src, p->shape[0] * row);
        for (size_t r = p->shape[0]; r-- > 0;) {
            memmove(ld->bytes + r * stride, ld->bytes + r * row, row);
            memset(ld->bytes + r * stride + row, 0, stride - row);
        }
        src = ld->bytes;
    }
    ld->m->ops->upload(p->packed, src, p->packed_bytes);
}

static int split_weight(const Loader *ld, const Param *p, float *W, LfError *err);

/* Whether p is a weight that PiSSA or OLoRA splits: its f32 values go through load_store, even
 * where its file holds them in p's packed type. */
static int splits(const Loader *ld, const Param *p) {
    for (int i = 0; ld->starts && i < ld->m->n_loras; i++)
        if (ld->m->loras[i].base->w == p) return 1;
    return 0;
}

/* A weight's f32 values, stored: PiSSA's or OLoRA's split first (an adapted weight); a packed
 * one's (in ld->f32) then rounded to its type and uploaded. */
static int load_store(const Loader *ld, const Param *p, LfError *err) {
    int split = splits(ld, p);
    if (split && split_weight(ld, p, load_dst(ld, p), err)) return -1;
    if (!p->packed) return 0;
    if (quant_quantize(p->dtype, ld->f32, p->numel, ld->bytes, err))
        return split ? lf_wrap(err,
                               "%s: lora.init_lora_weights %s stores the rest of the weight "
                               "in its type",
                               p->name, lora_init_name(ld->m->spec.init))
                     : lf_wrap(err, "%s", p->name);
    upload_packed(ld, p, ld->bytes);
    return 0;
}

/* A packed weight of the GGUF tensor's type (base_dtype q, or the type base_dtype names): its
 * blocks as they are (rows un-permuted for Q/K). */
static int load_blocks(const Loader *ld, const Param *p, const Gguf *g, const GgufTensor *t,
                       GgufFix fix, int heads, LfError *err) {
    int64_t shape[GGUF_MAX_DIMS];
    if (gguf_shape_hf(t, shape) != 2 || shape[0] != p->shape[0] || shape[1] != p->shape[1] ||
        t->nbytes != p->shape[0] * packed_row_bytes(p))
        return lf_fail(err, "%s: tensor '%s' is not the [%lld, %lld] %s matrix of %s", g->path,
                       t->name, (long long)p->shape[0], (long long)p->shape[1],
                       quant_type_name(p->dtype), p->name);
    const void *rows = t->data;
    if (fix == GGUF_FIX_UNPERMUTE_Q || fix == GGUF_FIX_UNPERMUTE_K) {
        if (gguf_unpermute_packed_rows(t->data, ld->bytes, p->shape[0], packed_row_bytes(p), heads,
                                       err))
            return -1;
        rows = ld->bytes;
    }
    upload_packed(ld, p, rows);
    return 0;
}

/* Reads every GGUF tensor into the parameter of its HF name: dequantised, Q/K rows back in
 * HF's RoPE layout, or (a packed weight of its type) its blocks; every base parameter must be found
 * once, but a task head outside the base model (a reward model's score) is initialised and
 * reported, and a reward model has no use for the LM head (transformers'
 * AutoModelForSequenceClassification drops it too). GGUF keeps GPT-2's Conv1D weights as [out,in]
 * (GGUF_FIX_TRANSPOSE: transposed from HF's), which is loraft's own layout, and a copy of the tied
 * embedding as output.weight, which a tied model skips. */
static int load_gguf_weights(const Loader *ld, const char *path, Rng *r, char *report,
                             size_t report_cap, LfError *err) {
    Model *m = ld->m;
    Gguf g;
    if (gguf_open(&g, path, err)) return -1;
    char *seen = calloc((size_t)m->n_params, 1);
    int rc = seen ? 0 : lf_fail(err, "out of memory");
    for (int t = 0; t < g.n_tensors && !rc; t++) {
        char name[GGUF_MAX_NAME + 64];
        GgufFix fix;
        if (gguf_is_rope_tensor(g.tensors[t].name)) continue; /* the config's (gguf_arch) */
        if (gguf_hf_name(arch_gguf_name(m->cfg.arch), g.tensors[t].name, name, sizeof name, &fix,
                         err)) {
            rc = -1;
            break;
        }
        Param *p = model_find_param(m, name);
        if (!p && !strcmp(name, "lm_head.weight") &&
            (m->spec.task == TASK_REWARD || m->cfg.tie_word_embeddings))
            continue; /* a reward model's unused head; GPT-2's copy of token_embd */
        if (!p || seen[p - m->params]) {
            rc = lf_fail(err, "%s: tensor '%s' (%s) has no place in this model", path,
                         g.tensors[t].name, name);
            break;
        }
        seen[p - m->params] = 1;
        if ((fix == GGUF_FIX_TRANSPOSE) != p->hf_transposed) {
            rc = lf_fail(err, "%s: tensor '%s' (%s): the GGUF and the model disagree on its layout",
                         path, g.tensors[t].name, name);
            break;
        }
        int heads = fix == GGUF_FIX_UNPERMUTE_Q ? m->cfg.num_heads : m->cfg.num_kv_heads;
        if (p->packed && g.tensors[t].type == (GgmlType)p->dtype && !splits(ld, p)) {
            /* not rounded twice */
            rc = load_blocks(ld, p, &g, &g.tensors[t], fix, heads, err);
            continue;
        }
        float *dst = load_dst(ld, p);
        int permuted = fix == GGUF_FIX_UNPERMUTE_Q || fix == GGUF_FIX_UNPERMUTE_K;
        float *tmp = !permuted ? dst : malloc(p->numel * sizeof *tmp);
        rc = !tmp ? lf_fail(err, "out of memory")
                  : gguf_read_f32(&g, g.tensors[t].name, p->ndim, p->shape, tmp, err);
        if (!rc && permuted)
            rc = gguf_unpermute_rows(tmp, dst, p->shape[0], p->shape[1], heads, err);
        for (size_t i = 0; !rc && p->plus_one && i < p->numel; i++)
            dst[i] -= 1.0f; /* the GGUF holds what the norm multiplies by (Gemma's 1 + w) */
        if (tmp != dst) free(tmp);
        if (!rc) rc = load_store(ld, p, err);
    }
    gguf_close(&g);
    const char *prefix = m->arch->prefix;
    if (report && report_cap) report[0] = 0;
    for (int i = 0; i < m->n_params && !rc; i++) {
        Param *p = &m->params[i];
        if (!p->in_checkpoint || (!seen[i] && strncmp(p->name, prefix, strlen(prefix)))) {
            init_missing(m, p, load_dst(ld, p), r, p->in_checkpoint ? report : NULL, report_cap);
            rc = load_store(ld, p, err);
        } else if (!seen[i])
            rc = lf_fail(err, "%s: tensor '%s' not found", path, p->name);
    }
    free(seen);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

/* Reads a parameter's tensor, in its checkpoint layout ([in,out] for a Conv1D), into dst. */
static int read_param(const SafeTensors *st, const char *name, const Param *p, float *dst,
                      LfError *err) {
    if (!p->hf_transposed) return safetensors_read_f32(st, name, p->ndim, p->shape, dst, err);
    int64_t shape[2] = {p->shape[1], p->shape[0]};
    float *tmp = malloc(p->numel * sizeof *tmp);
    int rc =
        !tmp ? lf_fail(err, "out of memory") : safetensors_read_f32(st, name, 2, shape, tmp, err);
    if (!rc) transpose_f32(dst, tmp, shape[0], shape[1]);
    free(tmp);
    return rc;
}

const char *model_tree_name(const ModelConfig *cfg, const char *name, int saved, char *buf,
                            size_t cap) {
    if (!cfg->multimodal) return name;
    int body = !strncmp(name, "model.", 6); /* else the head */
    const char *at = saved ? (body ? "language_model.model." : "language_model.")
                           : (body ? "model.language_model." : "");
    snprintf(buf, cap, "%s%s", at, body ? name + 6 : name);
    return buf;
}

/* p's tensor name in st: as it is, else without the model prefix (a bare base-model checkpoint:
 * DistilBertModel, BertModel); a multimodal Gemma 3's under either of its layouts
 * (model_tree_name), the saved one when neither is there. */
static const char *stored_name(const Model *m, const StShards *st, const Param *p, char *buf,
                               size_t cap) {
    const char *prefix = m->arch->prefix;
    size_t plen = strlen(prefix);
    if (m->cfg.multimodal) {
        const char *tree = model_tree_name(&m->cfg, p->name, 0, buf, cap);
        return st_shards_find(st, tree) ? tree : model_tree_name(&m->cfg, p->name, 1, buf, cap);
    }
    if (!st_shards_find(st, p->name) && !strncmp(p->name, prefix, plen) && p->name[plen] == '.')
        return p->name + plen + 1;
    return p->name;
}

/* A bitsandbytes 4-bit weight: its NF4 blocks as they are where p is stored as NF4 (*stored set),
 * else its values (bitsandbytes' dequantisation) into p's load_dst, for load_store. */
static int load_bnb(const Loader *ld, const Param *p, const StShards *st, const char *name,
                    int *stored, LfError *err) {
    BnbWeight w;
    if (p->hf_transposed)
        return lf_fail(err,
                       "%s: '%s' is a bitsandbytes 4-bit Conv1D weight: loraft reads them for "
                       "Linear weights",
                       st->path, name);
    if (bnb_open(&w, st, name, p->shape[0], p->ndim == 2 ? p->shape[1] : 1, err)) return -1;
    *stored = p->dtype == QUANT_NF4 && bnb_has_nf4_blocks(&w) && !splits(ld, p);
    if (*stored) {
        bnb_nf4_blocks(&w, ld->bytes);
        upload_packed(ld, p, ld->bytes);
    } else {
        bnb_dequantize(&w, load_dst(ld, p));
    }
    bnb_close(&w);
    return 0;
}

/* Reads base weights from dir/model.safetensors or its shards (see stored_name); missing head
 * tensors are initialised and reported, any other missing tensor is an error. Tensors no parameter
 * names (a multimodal checkpoint's vision tower) are never read. */
static int load_weights(const Loader *ld, const char *dir, Rng *r, char *report, size_t report_cap,
                        LfError *err) {
    Model *m = ld->m;
    StShards st;
    if (st_shards_open(&st, dir, err)) return -1;
    const char *prefix = m->arch->prefix;
    size_t plen = strlen(prefix) + 1;
    if (report && report_cap) report[0] = 0;
    int rc = 0;
    for (int i = 0; i < m->n_params && !rc; i++) {
        Param *p = &m->params[i];
        float *dst = load_dst(ld, p);
        if (!p->in_checkpoint) {
            param_init(m, p, dst, r);
            continue;
        }
        char buf[sizeof p->name + 32];
        const char *name = stored_name(m, &st, p, buf, sizeof buf);
        const SafeTensors *file = st_shards_find(&st, name);
        int stored = 0;
        if (file && bnb_is_quantised(&st, name)) {
            rc = load_bnb(ld, p, &st, name, &stored, err);
        } else if (file) {
            rc = read_param(file, name, p, dst, err);
        } else if (strncmp(p->name, prefix, plen - 1)) {
            init_missing(m, p, dst, r, report, report_cap); /* the task head of a base model */
        } else {
            rc = lf_fail(err, "%s: tensor '%s' not found", st.path,
                         m->cfg.multimodal ? name : p->name);
        }
        if (!rc && !stored) rc = load_store(ld, p, err);
    }
    st_shards_close(&st);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* memory plan: every activation sized once for (max_batch, max_len)                    */

/* Debug and sanitizer builds (LORAFT_ACT_GUARDS) follow every planned buffer with a guard
 * block of a fixed NaN pattern, checked after each forward and backward: an op that writes
 * past its buffer stays inside the one activation allocation, where neither ASan nor
 * compute-sanitizer can see it, so without guards an under-sized buffer corrupts silently. */
#ifdef LORAFT_ACT_GUARDS
enum { GUARD_FLOATS = 16 };
#else
enum { GUARD_FLOATS = 0 };
#endif
static const uint32_t GUARD_BITS = 0x7fa5a5a5u; /* a NaN no op produces */

enum { PLAN_OWN, PLAN_RECORD, PLAN_REPLAY }; /* Plan.layer */

int model_recomputes(const Model *m) {
    return m->spec.gradient_checkpointing;
}

void plan_layer(Plan *pl, int recomputed) {
    pl->layer = !recomputed ? PLAN_OWN : pl->recorded ? PLAN_REPLAY : PLAN_RECORD;
    pl->recorded |= recomputed, pl->at = 0;
}

void plan_take(Plan *pl, float **slot, size_t n, int keep, float *shared, const char *name) {
    if (!keep) {
        *slot = shared;
        return;
    }
    int replay = pl->layer == PLAN_REPLAY, at = pl->at;
    pl->at += replay;
    if (replay && at < pl->n_ref && pl->ref[at][1] == n) {
        *slot = pl->base ? pl->base + pl->ref[at][0] : NULL;
        return; /* the recorded take's guard guards it */
    }
    if (pl->layer == PLAN_RECORD && pl->n_ref < PLAN_LAYER_TAKES)
        pl->ref[pl->n_ref][0] = pl->used, pl->ref[pl->n_ref++][1] = n;
    *slot = pl->base ? pl->base + pl->used : NULL;
    pl->used += (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
    if (!GUARD_FLOATS) return;
    if (pl->guards) pl->guards[pl->n_guards] = (ActGuard){pl->used, n, name};
    pl->n_guards++;
    pl->used += GUARD_FLOATS;
}

void plan_take_bf16(Plan *pl, uint16_t **slot, size_t n, int keep, const char *name) {
    float *f;
    plan_take(pl, &f, (n + 1) / 2, keep, NULL, name);
    *slot = (uint16_t *)f;
}

int model_keeps_bf16(const Model *m) {
    return m->spec.precision == PRECISION_BF16;
}

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

/* precision bf16: a packed weight runs on bf16 tensor cores (dtype, not packed: this also
 * decides the storage, before the weights are allocated). */
static int bf16_gemm(const Model *m, const Linear *l) {
    return l->w->dtype != GGML_F32 && m->spec.precision == PRECISION_BF16;
}

/* precision bf16 runs an adapted linear's up-projection inside its base GEMM, R more columns:
 * [x | s u] [W | B]^T, and with lora dropout 0 the input gradient's LoRA term inside the dinp
 * GEMM: [dout | du] [W ; A]. A group's members share one input copy [x | s u_0 | s u_1 ..] and
 * one weight block (a BF16 block as stored, or q weights dequantised into scratch), B
 * block-diagonal: [[W_0 | B_0 0 ..] ; [W_1 | 0 B_1 ..] ; .. ; [A_0 | -] ; [A_1 | -] ..], rows in +
 * the adapted members' ranks values apart (group_lora_cols). */
static int fused_lora(const Model *m, const Linear *l) {
    return l->lora && bf16_gemm(m, l) && l != m->head; /* the head's: lm_head_cross_entropy's */
}

int linear_reads_bf16(const Model *m, const Linear *l) {
    return bf16_gemm(m, l) && !l->lora;
}

static int group_lora_cols(const Model *m, const Linear *l);

/* Whether n linears are one whole group (or one linear alone), which shares an input copy. */
static int whole_group(Linear *const *ls, int n) {
    return n <= OPS_LORA_GROUP_MAX && (n == 1 ? !ls[0]->peers : ls[0]->peers && ls[0]->group == n);
}

void linear_input_bf16(const Model *m, Linear *const *ls, int n, uint16_t *shared) {
    uint16_t *at = shared;
    int bf16 = 1, whole = whole_group(ls, n);
    for (int i = 0; i < n; i++) {
        bf16 = bf16 && bf16_gemm(m, ls[i]);
        if (ls[i]->lora) at = whole ? ls[i]->lora->xb : NULL; /* the group's one copy */
    }
    for (int i = 0; i < n; i++) ls[i]->in_bf16 = bf16 ? at : NULL;
}

int linear_keeps_copy(const Model *m, Linear *const *ls, int n, int keep) {
    int trains = 0, copy = 1;
    for (int i = 0; i < n; i++) {
        if (!linear_trains(ls[i])) continue;
        trains = 1;
        copy = copy && fused_lora(m, ls[i]); /* a bf16 GEMM's weight and bias are frozen */
    }
    return keep && trains && copy;
}

int linear_input_ld(const Model *m, const Linear *l) {
    return l->in + group_lora_cols(m, l);
}

void plan_take_input(Plan *pl, const Model *m, Linear *const *ls, int n, float **slot, int keep,
                     float *shared, const char *name) {
    size_t N = (size_t)m->max_batch * m->max_len, C = ls[0]->in, cols = 0;
    int trains = 0, copy = linear_keeps_copy(m, ls, n, keep), whole = whole_group(ls, n);
    for (int i = 0; i < n; i++) {
        cols += ls[i]->lora ? (size_t)ls[i]->lora->r : 0;
        trains = trains || linear_trains(ls[i]);
    }
    uint16_t *xb = NULL;
    for (int i = 0, first = 1; i < n; i++) {
        Lora *lo = ls[i]->lora;
        if (!lo) continue;
        if (first || !whole) /* the group's one copy, else each its own */
            plan_take_bf16(pl, &xb, N * (C + (whole ? cols : (size_t)lo->r)), copy, name);
        lo->xb = xb, first = 0;
        plan_take(pl, &lo->u, N * (size_t)lo->r, 1, NULL, "Lora.u");
        plan_take(pl, &lo->pre, N * (size_t)ls[i]->out, lo->mag != NULL, NULL, "Lora.pre");
        lo->u_in_layer = 1;
    }
    if (slot) plan_take(pl, slot, N * C, keep && trains && !copy, shared, name);
}

/* The linears of l's group (model_share_input), in order: n of them, member i. */
static int group_size(const Linear *l) {
    return l->peers ? l->group : 1;
}

static const Linear *group_member(const Linear *l, int i) {
    return l->peers ? l->peers[i] : l;
}

/* A group's bf16 weights are one block (in storage or dequantised into scratch): its members'
 * rows [W | B columns], then the A rows of its adapted members (fused_lora), so that forward runs
 * one GEMM for the group over its input copy and backward one over [W ; A]. */
static int group_lora_cols(const Model *m, const Linear *l) {
    int n = 0;
    for (int i = 0; i < group_size(l); i++)
        n += fused_lora(m, group_member(l, i)) ? group_member(l, i)->lora->r : 0;
    return n;
}

/* The rank of l's group's adapted members (one: split_mixed_groups), 0 where none is. */
static int group_rank(const Model *m, const Linear *l) {
    for (int i = 0; i < group_size(l); i++)
        if (fused_lora(m, group_member(l, i))) return group_member(l, i)->lora->r;
    return 0;
}

static int weight_ld(const Model *m, const Linear *l) {
    return l->in + group_lora_cols(m, l);
}

/* The first of l's B columns in its group's block (and of its s u in the input copy). */
static int lora_col(const Model *m, const Linear *l) {
    int col = l->in;
    for (int i = 0; group_member(l, i) != l; i++)
        col += fused_lora(m, group_member(l, i)) ? group_member(l, i)->lora->r : 0;
    return col;
}

/* The block's rows: outputs, then R a member with LoRA. */
static int group_rows(const Model *m, const Linear *l) {
    int rows = 0;
    for (int i = 0; i < group_size(l); i++) {
        const Linear *g = group_member(l, i);
        rows += g->out + (fused_lora(m, g) ? g->lora->r : 0);
    }
    return rows;
}

/* Whether l's group is stored in bf16 as one block (place_packed), else built in scratch. */
static int group_stored(const Linear *l) {
    int stored = 1;
    for (int i = 0; i < group_size(l); i++)
        stored = stored && group_member(l, i)->w->dtype == GGML_BF16;
    return stored;
}

/* DoRA (TrainSpec.use_dora): PEFT's weight-decomposed LoRA. An adapted linear's output, without
 * its bias, is scaled per output feature by mag / ||W + s B A||, the row norm of the adapted
 * weight, which is taken as a constant (PEFT detaches it: the DoRA paper's section 4.3): y = mag /
 * norm * (W x + s B A x) + b. The GEMMs are LoRA's, with the output's gradient scaled before
 * them (linear_backward); the norms are computed once a forward (sync_dora). */
static int has_dora(const Linear *l) {
    return l->lora && l->lora->mag;
}

/* sync_dora dequantises a packed weight this many rows at a time into the op scratch. */
#define DORA_ROWS 256

/* A packed weight's stored row in values, with its room for B (BF16 under precision bf16). */
static size_t stored_cols(const Linear *l) {
    return (size_t)l->w->shape[1] + (size_t)l->w->lora_room;
}

/* The scratch a packed weight's GEMM over N rows needs: the weight dequantised to f32, or
 * under precision bf16 the bf16 GEMM's, after its group's block built where not stored whole
 * (forward: the weights; backward: also A); forward, before them, the bf16 copy of the input of
 * its group (linear_forward_bf16), then also the down-projections' scratch; backward, before
 * them, the group's du and [douts | dus] in bf16, then also lora_backward_bf16's
 * (linear_backward_bf16). */
static size_t weight_scratch(const Model *m, const Linear *l, size_t N) {
    if (!bf16_gemm(m, l)) return ops_dequantize_scratch(l->out, l->in);
    const Ops *o = m->ops;
    size_t C = l->in, R = (size_t)group_rank(m, l), ld = weight_ld(m, l), outs = 0;
    for (int i = 0; i < group_size(l); i++) outs += (size_t)group_member(l, i)->out;
    size_t w = group_stored(l) ? 0 : ops_dequantize_bf16_scratch(outs, ld);
    size_t K = (size_t)group_rows(m, l), block = ops_dequantize_bf16_scratch(K, ld);
    size_t lora = R ? ops_lora_scratch(N, C, R) : 0, lora_bw = 0; /* the group's adapted */
    for (int i = 0; i < group_size(l); i++) {
        const Linear *g = group_member(l, i);
        lora_bw += g->lora ? ops_lora_bf16_scratch(N, C, (size_t)g->out, (size_t)g->lora->r) : 0;
    }
    size_t group = l->group > 1 ? (size_t)l->group : 1; /* du: any member may be adapted */
    size_t du = group * ops_floats64(N * R);
    size_t backward = du + ops_dequantize_bf16_scratch(N, K) +
                      max_size(lora_bw, block + o->matmul_bf16_scratch((int)N, (int)C, (int)K));
    size_t gemm = max_size(w + o->matmul_bf16_scratch((int)N, (int)ld, (int)outs), lora);
    return max_size(backward, ops_lora_copy_scratch(N, ld) + gemm);
}

/* dora_rest_forward's and dora_rest_backward's: rest and x's rest (or the input gradient's
 * term), then the linear's own GEMM over them (its weight dequantised, or the bf16 GEMM's after
 * the rest rounded and the weight's rows where not stored in bf16: group_weight of one). */
static size_t dora_rest_scratch(const Model *m, const Linear *l, size_t N) {
    size_t C = l->in, OC = l->out, front = ops_floats64(N * OC) + ops_floats64(N * C);
    if (!bf16_gemm(m, l)) return front + (l->w->packed ? ops_dequantize_scratch(OC, C) : 0);
    size_t w = l->w->dtype == GGML_BF16 ? 0 : ops_dequantize_bf16_scratch(OC, weight_ld(m, l));
    return front + ops_dequantize_bf16_scratch(N, max_size(C, OC)) + w +
           m->ops->matmul_bf16_scratch((int)N, (int)C, (int)OC);
}

/* The largest op scratch any op of this model asks for (ops.h's contract); every linear is
 * sized for B*T rows, the most any of them sees. */
static size_t scratch_floats(const Model *m) {
    size_t B = m->max_batch, T = m->max_len;
    int NH = m->cfg.num_heads;
    size_t need = m->ops->attention_scratch((int)B, (int)T, NH, m->cfg.num_kv_heads,
                                            model_head_size(&m->cfg));
    for (int i = 0; i < m->n_linears; i++) {
        const Linear *l = m->linears[i];
        if (l->lora)
            need = max_size(need, ops_lora_scratch(B * T, (size_t)l->in, (size_t)l->lora->r));
        if (l->w->packed && l != m->head) need = max_size(need, weight_scratch(m, l, B * T));
        if (l->b && l->b->grad) need = max_size(need, ops_bias_scratch(B * T, (size_t)l->out));
        if (!has_dora(l)) continue;
        need = max_size(need, ops_dora_scratch(B * T, (size_t)l->out));
        if (m->spec.dropout > 0) need = max_size(need, dora_rest_scratch(m, l, B * T));
        if (l->w->packed) need = max_size(need, ops_dequantize_scratch(DORA_ROWS, stored_cols(l)));
    }
    if (m->head && m->head->lora) /* lm_head_run's lora_forward and lora_backward */
        need = max_size(
            need, ops_lora_scratch(B * T, (size_t)m->cfg.hidden_size, (size_t)m->head->lora->r));
    const TokenRows *tr = m->head_branch_rows;
    if (m->token_rows.rows) /* model_embedding_lora's gathered rows */
        need = max_size(need, B * T * (size_t)m->cfg.hidden_size);
    if (tr) /* the head's branch */
        need = max_size(need, ops_lora_scratch(B * T, (size_t)m->cfg.hidden_size, (size_t)tr->k));
    return max_size(need, B * T * (size_t)m->embedding_lora.r); /* embedding_lora_backward's */
}

/* The widest DoRA gradient a group's backward holds at once (Model.dora_grad): the outputs of its
 * adapted members. */
static size_t dora_grad_width(const Model *m) {
    size_t most = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const Linear *l = m->linears[i];
        size_t outs = 0;
        for (int j = 0; group_member(l, 0) == l && j < group_size(l); j++)
            outs += has_dora(group_member(l, j)) ? (size_t)group_member(l, j)->out : 0;
        most = max_size(most, outs);
    }
    return most;
}

size_t model_attention_saved(const Model *m, int out_apart) {
    int NH = m->cfg.num_heads;
    return m->ops->attention_saved(m->spec.precision, m->max_batch, m->max_len, NH,
                                   m->cfg.num_kv_heads, model_head_size(&m->cfg), out_apart);
}

/* Floats of the pair readout (objective.h), for an objective on preference pairs. */
static size_t readout_pairs(const Model *m) {
    return m->objective->pairs ? pair_readout_floats((size_t)m->max_batch) : 0;
}

/* Everything the model keeps between ops: the architecture's activations, the LoRA
 * branches' saved u, the objective's buffers and the op scratch. */
static void plan_activations(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len;
    for (int i = 0; i < m->n_loras; i++) m->loras[i].u_in_layer = 0;
    m->arch->plan(m, pl);
    for (int i = 0; i < m->n_loras; i++) { /* the rest: a head's, an input planned as a field */
        Lora *lo = &m->loras[i];
        int dora = lo->mag != NULL;
        if (!lo->u_in_layer) PLAN_TAKE(pl, &lo->u, N * (size_t)lo->r, 1, NULL);
        if (!lo->u_in_layer) PLAN_TAKE(pl, &lo->pre, N * (size_t)lo->base->out, dora, NULL);
        PLAN_TAKE(pl, &lo->norm, (size_t)lo->base->out, dora, NULL);
    }
    Lora *el = &m->embedding_lora;
    PLAN_TAKE(pl, &el->u, N * (size_t)el->r, el->A != NULL, NULL);
    PLAN_TAKE(pl, &m->dora_grad, N * dora_grad_width(m), m->spec.use_dora, NULL);
    PLAN_TAKE(pl, &m->dora_grest, N * dora_grad_width(m), m->spec.use_dora && m->spec.dropout > 0,
              NULL);
    m->objective->plan(m, pl);
    /* grad_norm (a double), the pair readout, then losses: model_read_loss's one copy */
    size_t pairs = readout_pairs(m);
    float *readout;
    PLAN_TAKE(pl, &readout, 2 + pairs + N, 1, NULL);
    m->grad_norm = (double *)readout;
    m->losses = readout ? readout + 2 + pairs : NULL;
    if (pairs) pair_readout_place(m, readout ? readout + 2 : NULL, m->host_readout + 2);
    PLAN_TAKE(pl, &m->scratch, scratch_floats(m), 1, NULL);
}

/* Sizes the plan, allocates the activations and the batch buffers, assigns the plan and
 * arms the guards. */
static int activations_create(Model *m, LfError *err) {
    const Ops *ops = m->ops;
    Plan pl = {0};
    plan_activations(m, &pl);
    m->n_act = pl.used;
    m->act_mem = ops->alloc(m->n_act * sizeof(float));
    size_t NT = (size_t)m->max_batch * m->max_len;
    m->ids = ops->alloc(7 * NT * sizeof(int32_t));
    m->guards = calloc(pl.n_guards ? pl.n_guards : 1, sizeof *m->guards);
    if (!m->act_mem || !m->ids || !m->guards)
        return lf_fail(err, "out of memory for %zu activations (%.1f MiB)%s", m->n_act,
                       m->n_act * sizeof(float) / 1048576.0,
                       model_recomputes(m) ? ""
                                           : "; train.gradient_checkpointing = true keeps one "
                                             "layer's, or lower the batch size or max_length");
    m->types = m->ids + NT;
    m->mask = m->types + NT;
    m->labels = m->mask + NT;
    m->head_rows = m->labels + NT;
    m->token_rows.slot = m->head_rows + NT; /* and its backward's after it */
    pl = (Plan){.base = m->act_mem, .guards = m->guards};
    plan_activations(m, &pl);
    if (pl.used != m->n_act) /* the two passes must take the same */
        return lf_fail(err, "activation plan: %zu floats assigned, %zu sized", pl.used, m->n_act);
    m->n_guards = pl.n_guards;
    uint32_t pattern[GUARD_FLOATS + 1];
    for (int i = 0; i < GUARD_FLOATS; i++) pattern[i] = GUARD_BITS;
    for (int g = 0; g < m->n_guards; g++)
        ops->upload(m->act_mem + m->guards[g].offset, pattern, GUARD_FLOATS * sizeof(float));
    return 0;
}

/* Fails, naming the buffer, when an op wrote past a planned activation buffer. */
static int check_guards(Model *m, LfError *err) {
    uint32_t got[GUARD_FLOATS + 1];
    for (int g = 0; g < m->n_guards; g++) {
        const ActGuard *a = &m->guards[g];
        m->ops->download(got, m->act_mem + a->offset, GUARD_FLOATS * sizeof(float));
        for (int i = 0; i < GUARD_FLOATS; i++)
            if (got[i] != GUARD_BITS)
                return lf_fail(err, "activation memory: an op wrote past %s (%zu floats planned)",
                               a->name + (a->name[0] == '&'), a->floats);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* construction                                                                         */

/* Every regular expression of the spec compiles (the config and adapter readers check theirs;
 * this is for a spec built otherwise), so that matching never meets one that does not. */
static int check_regexes(const TrainSpec *s, LfError *err) {
    for (int i = 0; i < s->n_rank_pattern; i++)
        if (lora_pattern_check(s->rank_pattern[i].key, err)) return lf_wrap(err, "rank_pattern");
    for (int i = 0; i < s->n_alpha_pattern; i++)
        if (lora_pattern_check(s->alpha_pattern[i].key, err)) return lf_wrap(err, "alpha_pattern");
    for (int i = 0; i < s->n_layers_pattern; i++)
        if (lora_pattern_check(s->layers_pattern[i], err)) return lf_wrap(err, "layers_pattern");
    if (s->target_regex[0] && strcasecmp(s->target_regex, LORA_ALL_LINEAR) &&
        lora_pattern_check(s->target_regex, err))
        return lf_wrap(err, "target_modules");
    if (s->exclude_regex[0] && lora_pattern_check(s->exclude_regex, err))
        return lf_wrap(err, "exclude_modules");
    return 0;
}

static int check_sizes(const ModelConfig *c, const TrainSpec *s, int max_batch, int max_len,
                       LfError *err) {
    if (max_batch < 1 || max_len < 2)
        return lf_fail(err, "batch size %d and sequence length %d must be >= 1 and >= 2", max_batch,
                       max_len);
    if (c->num_layers < 1 || c->num_layers > 256)
        return lf_fail(err, "num_layers %d must be in 1..256", c->num_layers);
    if (max_len > c->max_positions)
        return lf_fail(err, "max_length %d exceeds the model's max_position_embeddings %d", max_len,
                       c->max_positions);
    if (!(s->temperature > 0.0f) || isinf(s->temperature))
        return lf_fail(err, "temperature %g must be finite and > 0", (double)s->temperature);
    const GrpoSpec *g = &s->grpo;
    if (s->task == TASK_GRPO && (g->iterations < 1 || !(g->eps_low >= 0.0f && g->eps_low < 1.0f) ||
                                 !(g->eps_high >= 0.0f) || isinf(g->eps_high) ||
                                 !(g->delta == 0.0f || g->delta > 1.0f) || isinf(g->delta)))
        return lf_fail(err,
                       "GRPO's num_iterations %d must be >= 1, epsilon %g in [0, 1), "
                       "epsilon_high %g finite and >= 0, delta %g 0 or finite and > 1",
                       g->iterations, (double)g->eps_low, (double)g->eps_high, (double)g->delta);
    const RlooSpec *rl = &s->rloo;
    if (s->task == TASK_RLOO &&
        (rl->iterations < 1 || !(rl->eps_low >= 0.0f && rl->eps_low < 1.0f) ||
         !(rl->eps_high >= 0.0f) || isinf(rl->eps_high) || !(rl->beta >= 0.0f)))
        return lf_fail(err,
                       "RLOO's num_iterations %d must be >= 1, epsilon %g in [0, 1), epsilon_high "
                       "%g finite and >= 0, beta %g >= 0",
                       rl->iterations, (double)rl->eps_low, (double)rl->eps_high, (double)rl->beta);
    if (s->task == TASK_GRPO && g->loss == GRPO_SAPO &&
        !(g->sapo_pos > 0.0f && g->sapo_neg > 0.0f && isfinite(g->sapo_pos) &&
          isfinite(g->sapo_neg)))
        return lf_fail(err, "sapo's temperatures %g and %g must be finite and > 0",
                       (double)g->sapo_pos, (double)g->sapo_neg);
    if (s->strategy == STRATEGY_LORA && (s->r < 1 || s->r > LORA_MAX_R))
        return lf_fail(err, "lora.r = %d must be in 1..%d", s->r, LORA_MAX_R);
    if (s->use_dora && init_splits(s->init))
        return lf_fail(err, "lora.init_lora_weights %s with lora.use_dora is not supported",
                       lora_init_name(s->init));
    for (int i = 0; i < s->n_rank_pattern; i++) {
        float r = s->rank_pattern[i].value;
        if (!(r >= 1 && r <= LORA_MAX_R && r == floorf(r)))
            return lf_fail(err, "lora.rank_pattern: %s: %g is not a rank in 1..%d",
                           s->rank_pattern[i].key, (double)r, LORA_MAX_R);
    }
    for (int i = 0; i < s->n_alpha_pattern; i++)
        if (!(s->alpha_pattern[i].value > 0))
            return lf_fail(err, "lora.alpha_pattern: %s: %g is not > 0", s->alpha_pattern[i].key,
                           (double)s->alpha_pattern[i].value);
    return check_regexes(s, err);
}

/* The table: the architecture's tensors, then LoRA's; values in one block. */
static int build_table(Model *m, LfError *err) {
    int base = m->arch->max_params(&m->cfg);
    m->max_params = 4 * base; /* + an A, a B and DoRA's magnitude per linear, and every linear
                                 has a weight */
    m->params = calloc(m->max_params, sizeof *m->params);
    m->linears = calloc(base, sizeof *m->linears);
    m->loras = calloc(base, sizeof *m->loras);
    if (!m->params || !m->linears || !m->loras) return lf_fail(err, "out of memory");
    if (m->arch->build(m, err)) return -1;
    if (m->spec.strategy == STRATEGY_LORA && attach_loras(m, err)) return -1;
    if (m->spec.strategy == STRATEGY_TOKENS && attach_token_rows(m, err)) return -1;
    for (int i = 0; i < m->n_params; i++) {
        m->n_all += m->params[i].numel;
        if (m->params[i].in_checkpoint) m->n_base += m->params[i].numel;
    }
    return 0;
}

/* A dense weight that base_dtype bf16 / q packs: frozen, and not the LM head (the objective
 * reads it whole, in chunks). Its bias may train (bias_grads). */
static int packable(const Model *m, const Linear *l) {
    return !l->w->grad && l != m->head;
}

/* precision bf16 packs the f32 frozen weights as bf16 too, under an adapter (LoRA's, token
 * rows'), which saves only the adapter, and where nothing trains (nothing is saved from a model
 * opened to run), not under head, which saves the whole model, weights as they were loaded. */
static int pack_f32_as_bf16(const Model *m) {
    Strategy s = m->spec.strategy;
    return m->spec.precision == PRECISION_BF16 && (strategy_is_adapter(s) || s == STRATEGY_NONE);
}

/* base_dtype q: each packable weight keeps its GGUF tensor's type; an F32 tensor stays f32
 * (bf16 where precision bf16 packs f32 weights). */
static int gguf_storage(Model *m, const char *path, LfError *err) {
    Gguf g;
    if (gguf_open(&g, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_linears && !rc; i++) {
        Param *w = m->linears[i]->w;
        char name[GGUF_MAX_NAME];
        GgufFix fix;
        if (!packable(m, m->linears[i])) continue;
        rc = gguf_name_of(arch_gguf_name(m->cfg.arch), w->name, name, sizeof name, &fix, err);
        const GgufTensor *t = rc ? NULL : gguf_find_tensor(&g, name);
        if (!rc && !t) rc = lf_fail(err, "%s: tensor '%s' (%s) not found", path, name, w->name);
        if (!rc && t->type != GGML_F32 && quant_can_dequantize(t->type)) w->dtype = (int)t->type;
        if (!rc && w->dtype == GGML_F32 && pack_f32_as_bf16(m)) w->dtype = GGML_BF16;
    }
    gguf_close(&g);
    return rc;
}

/* base_dtype q from an HF directory: each packable weight that is a bitsandbytes NF4 one of
 * 64-value blocks along its rows keeps them; any other stays f32 (bf16 where precision bf16 packs
 * f32 weights, and where its blocks run across rows). A directory without any is refused. */
static int bnb_storage(Model *m, const char *dir, LfError *err) {
    StShards st;
    if (st_shards_open(&st, dir, err)) return -1;
    int rc = 0, n_bnb = 0;
    for (int i = 0; i < m->n_linears && !rc; i++) {
        Param *w = m->linears[i]->w;
        char buf[sizeof w->name + 32];
        const char *name = stored_name(m, &st, w, buf, sizeof buf);
        if (!packable(m, m->linears[i]) || !bnb_is_quantised(&st, name)) continue;
        int keeps = bnb_keeps_blocks(&st, name, w->shape[0], w->shape[1], err);
        if (keeps < 0) rc = -1;
        if (keeps > 0) w->dtype = QUANT_NF4;
        n_bnb++;
    }
    for (int i = 0; i < m->n_linears && !rc; i++) {
        Param *w = m->linears[i]->w;
        if (packable(m, m->linears[i]) && w->dtype == GGML_F32 && pack_f32_as_bf16(m))
            w->dtype = GGML_BF16;
    }
    if (!rc && !n_bnb)
        rc = lf_fail(err,
                     "model.base_dtype q keeps a GGUF file's or a bitsandbytes 4-bit "
                     "checkpoint's quantised blocks, and %s has neither (use bf16 or f32)",
                     dir);
    st_shards_close(&st);
    return rc;
}

/* The [V,C] tables a frozen one of which precision bf16 stores in bf16 alone, into tables: the
 * LM head's weight, which its bf16 GEMMs read, and a decoder's token embedding, which
 * embedding_forward gathers from bf16 too (tied: one table); not a reward model's score head
 * (one row, read by reward.c's f32 GEMM). Returns how many. */
static int vocab_tables(const Model *m, Param *tables[2]) {
    int n = 0;
    if (m->head && !m->cfg.score_head) tables[n++] = m->head->w;
    if (m->embedding && (!n || m->embedding != tables[0])) tables[n++] = m->embedding;
    return n;
}

/* Which frozen dense weights are packed, and as what (model.base_dtype, model.precision). */
static int choose_storage(Model *m, const char *dir, LfError *err) {
    BaseDtype d = m->spec.base_dtype;
    if (d == BASE_F32 && !pack_f32_as_bf16(m)) return 0;
    if (m->spec.strategy == STRATEGY_FULL)
        return lf_fail(err,
                       "model.base_dtype %s stores frozen weights, and train.strategy full "
                       "freezes none: use base_dtype f32",
                       base_dtype_name(d));
    Param *tables[2];
    for (int t = 0; t < vocab_tables(m, tables); t++)
        if (!tables[t]->grad && model_keeps_bf16(m)) tables[t]->dtype = GGML_BF16;
    if (d == BASE_Q && !dir)
        return lf_fail(err, "model.base_dtype q keeps a checkpoint's quantised blocks, and a model "
                            "initialised from a seed has none (use bf16 or f32)");
    if (d == BASE_Q)
        return ends_with(dir, ".gguf") ? gguf_storage(m, dir, err) : bnb_storage(m, dir, err);
    static const GgmlType types[] = {
        [BASE_F32] = GGML_BF16,  [BASE_BF16] = GGML_BF16, [BASE_Q8_0] = GGML_Q8_0,
        [BASE_Q5_1] = GGML_Q5_1, [BASE_Q5_0] = GGML_Q5_0, [BASE_Q4_1] = GGML_Q4_1,
        [BASE_Q4_0] = GGML_Q4_0, [BASE_NF4] = QUANT_NF4};
    for (int i = 0; i < m->n_linears; i++) {
        Param *w = m->linears[i]->w;
        if (!packable(m, m->linears[i])) continue;
        int whole_blocks = w->shape[1] % quant_block_elems(types[d]) == 0;
        w->dtype = whole_blocks ? types[d] : GGML_BF16; /* blocks run along a row */
    }
    return 0;
}

/* An adapted linear whose weight is stored in bf16 keeps its adapter's bf16 copy in that storage:
 * B as R more columns of each row, A as R rows after its group's weights (group_adapted). A
 * weight dequantised for each GEMM (base_dtype q) gets the copy in the scratch it is dequantised
 * to. */
static int adapter_in_weight(const Model *m, const Linear *l) {
    return fused_lora(m, l) && l->w->dtype == GGML_BF16;
}

/* Places the packed weights from base (or, base NULL, only counts their bytes): group by group,
 * 64-byte aligned, a group's weights back to back and then the A rows of its adapted members
 * (adapter_in_weight), so that a group stored in bf16 is one block (group_adapted); then the LM
 * head's and the token embedding's bf16 tables (one when tied). */
static size_t place_packed(Model *m, char *base) {
    size_t at = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const Linear *l = m->linears[i];
        if (group_member(l, 0) != l || l == m->head) continue; /* placed with its group */
        at = (at + 63) & ~(size_t)63;
        for (int j = 0; j < group_size(l); j++) {
            Param *p = group_member(l, j)->w;
            if (p->dtype == GGML_F32) continue;
            if (base) p->packed = base + at;
            at += p->packed_bytes;
        }
        for (int j = 0; j < group_size(l); j++) {
            const Linear *g = group_member(l, j);
            if (!adapter_in_weight(m, g)) continue;
            if (base) g->lora->a_bf16 = (uint16_t *)(base + at);
            at += (size_t)g->lora->r * packed_stride(g->w);
        }
    }
    Param *tables[2];
    for (int t = 0, n = vocab_tables(m, tables); t < n; t++) {
        Param *p = tables[t];
        if (p->dtype == GGML_F32) continue;
        at = (at + 63) & ~(size_t)63;
        if (base) p->packed = base + at;
        at += p->packed_bytes;
    }
    return at;
}

/* Where the next f32 parameter starts: 64 bytes aligned, so that kernels load any parameter's
 * rows as float4 (LoRA's A in the down-projection; a classifier's bias of 2 values would
 * otherwise leave every later tensor 8 bytes off). */
static size_t value_start(size_t off) {
    return (off + 15) / 16 * 16;
}

/* Points every f32 parameter into base (NULL: none) and returns their floats: the plus_one ones
 * first, their run's length in *n_plus_one. */
static size_t place_values(Model *m, float *base, size_t *n_plus_one) {
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < m->n_params; i++) {
            Param *p = &m->params[i];
            if (p->dtype != GGML_F32 || p->plus_one != !pass) continue;
            off = value_start(off);
            if (base) p->value = base + off;
            off += p->numel;
        }
        if (!pass) *n_plus_one = off = value_start(off);
    }
    return off;
}

/* 1 + the plus_one parameters' values, where their norms read them: one pass over their run */
static int plus_one_create(Model *m, LfError *err) {
    size_t n = m->n_plus_one;
    if (!n) return 0;
    float *ones = malloc(n * sizeof *ones);
    if (ones) m->plus_one = m->ops->alloc(2 * n * sizeof(float));
    for (size_t i = 0; ones && i < n; i++) ones[i] = 1.0f;
    if (m->plus_one) m->ops->upload(m->plus_one + n, ones, n * sizeof *ones);
    free(ones);
    return m->plus_one ? 0 : lf_fail(err, "out of memory");
}

static void sync_norms(Model *m) {
    size_t n = m->n_plus_one;
    if (n) m->ops->add(m->plus_one, m->values, m->plus_one + n, n);
}

/* Allocates the f32 values and the packed weights and points every parameter into them. */
static int allocate_values(Model *m, LfError *err) {
    for (int i = 0; i < m->n_linears; i++) {
        Linear *l = m->linears[i];
        if (l->w->dtype == GGML_BF16) l->w->lora_room = group_lora_cols(m, l);
    }
    m->n_values = place_values(m, NULL, &m->n_plus_one);
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (p->dtype == GGML_F32) continue;
        int be = quant_block_elems(p->dtype);
        if (p->shape[1] % be)
            return lf_fail(err, "%s: %lld columns are not whole %s blocks of %d", p->name,
                           (long long)p->shape[1], quant_type_name(p->dtype), be);
        p->packed_bytes = (size_t)p->shape[0] * packed_stride(p);
    }
    m->n_packed_bytes = place_packed(m, NULL);
    m->values = m->ops->alloc(m->n_values * sizeof(float));
    m->packed = m->n_packed_bytes ? m->ops->alloc(m->n_packed_bytes) : NULL;
    if (!m->values || (m->n_packed_bytes && !m->packed))
        return lf_fail(err, "out of memory for %zu weights and %zu packed bytes", m->n_values,
                       m->n_packed_bytes);
    place_packed(m, m->packed);
    place_values(m, m->values, &m->n_plus_one);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].dtype != GGML_F32 && !m->params[i].packed)
            return lf_fail(err, "%s: a packed weight that no linear owns", m->params[i].name);
    m->head_bf16 = model_head_bf16(m) ? m->head->w->packed : NULL;
    return plus_one_create(m, err);
}

/* PiSSA and OLoRA (lora.init_lora_weights pissa, olora; PEFT's) start each adapter from its
 * weight and leave the weight the rest, W <- W - s B A: PiSSA's A = sqrt(S_r / s) Vh_r, B = U_r
 * sqrt(S_r / s) from W = U S Vh; OLoRA's A = R_r, B = Q_r from W = Q R. On the weight's f32 values
 * as they are stored (load_store), before a packed one is rounded to its type, so the rest is what
 * gets packed. A and B wait in Loader.starts until the loaders have initialised the adapters
 * (split_finish). An adapter loaded afterwards replaces A and B over the rest, which peft rebuilds
 * the same way when it loads one (U_r S_r Vh_r and Q_r R_r do not depend on the factors' signs). */
static float *start_slot(const Loader *ld, int i) {
    float *at = ld->starts;
    for (int j = 0; j < i; j++) at += ld->m->loras[j].A->numel + ld->m->loras[j].B->numel;
    return at;
}

static int split_weight(const Loader *ld, const Param *p, float *W, LfError *err) {
    const Model *m = ld->m;
    int olora = m->spec.init == LORA_INIT_OLORA;
    const char *what = olora ? "OLoRA" : "PiSSA";
    for (int i = 0; i < m->n_loras; i++) {
        const Lora *lo = &m->loras[i];
        if (lo->base->w != p) continue;
        int out = lo->base->out, in = lo->base->in, R = lo->r;
        if (olora && p->hf_transposed) /* its QR would be of W^T: B [in, R], A [R, out] */
            return lf_fail(err,
                           "OLoRA: %s is a Conv1D weight (stored [in, out]), whose factors do "
                           "not fit its adapter (peft's olora_init fails there too): use pissa "
                           "or default",
                           p->name);
        if (R > (out < in ? out : in))
            return lf_fail(err, "%s: rank %d exceeds min(out, in) of %s [%d, %d]", what, R, p->name,
                           out, in);
        float *A = start_slot(ld, i), *B = A + lo->A->numel;
        int rc = olora ? olora_split(W, out, in, R, lo->scale, A, B)
                       : pissa_split(W, out, in, R, lo->scale, A, B);
        if (rc)
            return lf_fail(err, "%s: the %s of %s failed (or out of memory)", what,
                           olora ? "QR" : "SVD", p->name);
    }
    return 0;
}

/* A and B over the adapters' initial values. */
static void split_finish(const Loader *ld) {
    const Model *m = ld->m;
    for (int i = 0; i < m->n_loras; i++) {
        const Lora *lo = &m->loras[i];
        const float *A = start_slot(ld, i), *B = A + lo->A->numel;
        memcpy(ld->host + (lo->A->value - m->values), A, lo->A->numel * sizeof *A);
        memcpy(ld->host + (lo->B->value - m->values), B, lo->B->numel * sizeof *B);
    }
}

/* Initial values: from dir's checkpoint (an HF directory or a .gguf file), else HF's
 * initialisation from seed. */
static int load_values(Model *m, const char *dir, uint64_t seed, char *missing_report,
                       size_t report_cap, LfError *err) {
    size_t most = 0, most_bytes = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].packed) {
            most = max_size(most, m->params[i].numel);
            most_bytes = max_size(most_bytes, m->params[i].packed_bytes);
        }
    size_t adapters = 0;
    for (int i = 0; i < m->n_loras; i++) adapters += m->loras[i].A->numel + m->loras[i].B->numel;
    int split = init_splits(m->spec.init);
    Loader ld = {m, calloc(m->n_values + 1, sizeof(float)), malloc(most * sizeof(float) + 1),
                 malloc(most_bytes + 1), split ? calloc(adapters + 1, sizeof(float)) : NULL};
    Rng rng = {seed, 0};
    int rc = 0;
    if (missing_report && report_cap) missing_report[0] = 0; /* a GGUF or no dir: none */
    if (!ld.host || !ld.f32 || !ld.bytes || (split && !ld.starts)) {
        rc = lf_fail(err, "out of memory");
    } else if (dir && ends_with(dir, ".gguf")) {
        rc = load_gguf_weights(&ld, dir, &rng, missing_report, report_cap, err);
    } else if (dir) {
        rc = load_weights(&ld, dir, &rng, missing_report, report_cap, err);
    } else {
        for (int i = 0; i < m->n_params && !rc; i++) {
            param_init(m, &m->params[i], load_dst(&ld, &m->params[i]), &rng);
            rc = load_store(&ld, &m->params[i], err);
        }
    }
    if (!rc && split) split_finish(&ld);
    if (!rc) m->ops->upload(m->values, ld.host, m->n_values * sizeof(float));
    free(ld.host);
    free(ld.f32);
    free(ld.bytes);
    free(ld.starts);
    return rc;
}

/* auto: the most the device runs (bf16 on a GPU of compute capability 8.0 or more, fp32 on the
 * CPU, which has no other); more than that is refused. */
static int resolve_precision(TrainSpec *s, const Ops *ops, LfError *err) {
    Precision best = ops->best_precision();
    if (s->precision == PRECISION_AUTO) s->precision = best;
    if (s->precision <= best) return 0;
    if (!strcmp(ops->name, "cpu"))
        return lf_fail(err,
                       "model.precision %s: the CPU backend computes in fp32 only (use fp32 or "
                       "auto there, or the cuda device)",
                       precision_name(s->precision));
    return lf_fail(err,
                   "model.precision %s: this GPU has no bf16 / TF32 tensor cores (compute "
                   "capability below 8.0): use fp32 or auto",
                   precision_name(s->precision));
}

/* model.attention: the backend says whether it runs it (its switch set before the plan asks for
 * attention's scratch); cuDNN's kernels run under bf16 only (the switch is put back then). */
static int choose_attention(const TrainSpec *s, const Ops *ops, LfError *err) {
    if (ops->set_attention(s->attention, err)) return -1;
    if (s->attention == ATTENTION_LORAFT || s->precision == PRECISION_BF16) return 0;
    ops->set_attention(ATTENTION_LORAFT, NULL);
    return lf_fail(err, "model.attention cudnn runs under model.precision bf16 only (it is %s)",
                   precision_name(s->precision));
}

/* precision bf16: a frozen LM head (its own weight or the tied embedding, which the embedding
 * reads so too) is stored in bf16 alone (choose_storage), where frozen weights are packed, and
 * runs on bf16 tensor cores: its logits, training's and generation's, are bf16 GEMMs'. */
int model_head_bf16(const Model *m) {
    return m->head && m->head->w->dtype == GGML_BF16;
}

/* The table of round_bf16_many copies that refresh every adapter_in_weight copy from the f32 A and
 * B the optimizer updates: one launch a forward (sync_adapters) instead of one per adapted GEMM. */
static int adapter_copies_create(Model *m, LfError *err) {
    OpsBf16Copy *host = malloc(2 * (size_t)m->n_loras * sizeof *host + 1);
    if (!host) return lf_fail(err, "out of memory");
    int n = 0;
    for (int i = 0; i < m->n_loras; i++) {
        const Lora *lo = &m->loras[i];
        const Linear *l = lo->base;
        if (!adapter_in_weight(m, l)) continue;
        uint16_t *w = l->w->packed;
        int ld = weight_ld(m, l), R = lo->r;
        host[n++] = (OpsBf16Copy){lo->B->value, w + lora_col(m, l), l->out, R, ld};
        host[n++] = (OpsBf16Copy){lo->A->value, lo->a_bf16, R, l->in, ld};
    }
    int rc = 0;
    if (n && !(m->adapter_copies = m->ops->alloc((size_t)n * sizeof *host)))
        rc = lf_fail(err, "out of memory");
    else if (n)
        m->ops->upload(m->adapter_copies, host, (size_t)n * sizeof *host);
    m->n_adapter_copies = rc ? 0 : n;
    free(host);
    return rc;
}

/* Trained token rows' constant buffers, from the table t as loaded (its rows ids): minus its
 * rows, delta's zero row, a head's one-hot B and, for the embedding's, each id's slot; the rows
 * start as the table's (peft's). */
static int token_rows_start(Model *m, TokenRows *tr, const Param *t, const int *ids, LfError *err) {
    const Ops *o = m->ops;
    size_t K = (size_t)tr->k, C = (size_t)t->shape[1], V = (size_t)t->shape[0];
    size_t NT = (size_t)m->max_batch * m->max_len;
    int head = tr == m->head_branch_rows, embedding = tr == &m->token_rows;
    tr->neg_orig = o->alloc(K * C * sizeof(float));
    tr->delta = o->alloc((K + 1) * C * sizeof(float));
    tr->onehot = head ? o->alloc(V * K * sizeof(float)) : NULL;
    tr->slot_of = embedding ? malloc((V + NT) * sizeof *tr->slot_of) : NULL;
    float *host = calloc(head ? V * K : 1, sizeof *host);
    if (!tr->neg_orig || !tr->delta || (head && !tr->onehot) || (embedding && !tr->slot_of) ||
        !host)
        return free(host), lf_fail(err, "out of memory for %zu trained token rows", K);
    for (size_t v = 0; embedding && v < V; v++) tr->slot_of[v] = (int32_t)K;
    for (size_t k = 0; k < K; k++) {
        if (embedding) tr->slot_of[ids[k]] = (int32_t)k;
        if (head) host[(size_t)ids[k] * K + k] = 1.0f;
        o->dequantize_rows(tr->delta + k * C, t->packed ? t->packed : t->value,
                           t->packed ? t->dtype : GGML_F32, ids[k], 1, (int)C);
    }
    if (head) o->upload(tr->onehot, host, V * K * sizeof *host);
    free(host);
    o->zero(tr->rows->value, K * C * sizeof(float));
    o->axpy(tr->rows->value, tr->delta, 1.0f, K * C);
    o->axpy(tr->neg_orig, tr->delta, -1.0f, K * C);
    o->zero(tr->delta, K * C * sizeof(float));
    int pad = t->pad_row;
    if (embedding)
        tr->grad_slot = pad >= 0 && tr->slot_of[pad] < (int32_t)K ? tr->slot + NT : tr->slot;
    return 0;
}

/* The embedding's trained rows, and the head's own from its weight (the table where tied). */
static int token_rows_create(Model *m, LfError *err) {
    if (m->token_rows.rows &&
        token_rows_start(m, &m->token_rows, m->word_embedding, m->spec.token_indices, err))
        return -1;
    return m->head_token_rows.rows ? token_rows_start(m, &m->head_token_rows, m->head->w,
                                                      m->spec.head_token_indices, err)
                                   : 0;
}

static void token_rows_free(const Ops *o, TokenRows *tr) {
    o->free(tr->neg_orig);
    o->free(tr->delta);
    o->free(tr->onehot);
    free(tr->slot_of);
}

/* The batch's ids (n of them) to the backend, and the trained token rows' slot of each. */
static void upload_ids(Model *m, const int32_t *ids, int n) {
    const TokenRows *tr = &m->token_rows;
    m->ops->upload(m->ids, ids, (size_t)n * sizeof *ids);
    if (!tr->rows) return;
    int32_t *slots = tr->slot_of + m->word_embedding->shape[0];
    for (int i = 0; i < n; i++) slots[i] = tr->slot_of[ids[i]];
    m->ops->upload(tr->slot, slots, (size_t)n * sizeof *slots);
    if (tr->grad_slot == tr->slot) return;
    for (int i = 0; i < n; i++) slots[i] = ids[i] == m->word_embedding->pad_row ? tr->k : slots[i];
    m->ops->upload(tr->grad_slot, slots, (size_t)n * sizeof *slots);
}

/* At every forward and decode step (each recorded in its graph): the adapters' bf16 copies, and
 * the trained token rows' difference from the table's. */
static void sync_adapters(Model *m) {
    if (m->n_adapter_copies) m->ops->round_bf16_many(m->adapter_copies, m->n_adapter_copies);
    const TokenRows *all[] = {&m->token_rows, &m->head_token_rows};
    for (int i = 0; i < 2; i++)
        if (all[i]->rows)
            m->ops->add(all[i]->delta, all[i]->rows->value, all[i]->neg_orig, all[i]->rows->numel);
}

/* norm[out] = || W + s B A || per row of lo's linear, from the weight as stored. */
static void weight_norms(Model *m, const Lora *lo, float *norm) {
    const Linear *l = lo->base;
    const Param *w = l->w;
    int R = lo->r, ld = (int)stored_cols(l);
    if (!w->packed) {
        m->ops->dora_norm(norm, w->value, l->in, lo->A->value, lo->B->value, lo->scale, l->out,
                          l->in, R);
        return;
    }
    for (int r0 = 0; r0 < l->out; r0 += DORA_ROWS) {
        int rows = l->out - r0 < DORA_ROWS ? l->out - r0 : DORA_ROWS;
        m->ops->dequantize_rows(m->scratch, w->packed, w->dtype, r0, rows, ld);
        m->ops->dora_norm(norm + r0, m->scratch, ld, lo->A->value, lo->B->value + (size_t)r0 * R,
                          lo->scale, rows, l->in, R);
    }
}

/* DoRA's norms from the adapters the optimizer last updated: once a forward, and before a
 * generation's decode steps. */
static void sync_dora(Model *m) {
    for (int i = 0; i < m->n_loras && !m->adapters_off; i++)
        if (m->loras[i].mag) weight_norms(m, &m->loras[i], m->loras[i].norm);
}

/* DoRA's magnitude starts as the norm (PEFT's), so the adapted linear starts as LoRA's. */
static void dora_init(Model *m) {
    for (int i = 0; i < m->n_loras; i++)
        if (m->loras[i].mag) weight_norms(m, &m->loras[i], m->loras[i].mag->value);
}

int model_create(Model *m, const ModelConfig *cfg, const TrainSpec *spec, const Ops *ops,
                 const char *dir, uint64_t seed, int max_batch, int max_len, char *missing_report,
                 size_t report_cap, LfError *err) {
    memset(m, 0, sizeof *m);
    if (check_sizes(cfg, spec, max_batch, max_len, err)) return -1;
    m->cfg = *cfg;
    m->spec = *spec;
    m->ops = ops;
    m->arch = arch_for(cfg->arch);
    m->objective = objective_for(spec->task);
    m->step_weight = 1.0f;
    m->decode_graphs = 1;
    if (!(m->arch->tasks & 1u << spec->task))
        return lf_fail(err, "model.task %s: a %s model is for %s", m->objective->name,
                       arch_name(m->cfg.arch), objective_for(m->arch->task)->name);
    if (spec->strategy == STRATEGY_LORA) resolve_defaults(&m->spec, m->arch, m->objective);
    if (resolve_precision(&m->spec, ops, err) || choose_attention(&m->spec, ops, err)) return -1;
    m->max_batch = max_batch;
    m->max_len = max_len;
    size_t pairs = readout_pairs(m);
    m->host_readout = calloc(2 + pairs + (size_t)max_batch * max_len, sizeof *m->host_readout);
    m->host_losses = m->host_readout ? m->host_readout + 2 + pairs : NULL;
    m->host_labels = calloc(2 * (size_t)max_batch * max_len, sizeof *m->host_labels);
    m->host_head_rows = m->host_labels ? m->host_labels + (size_t)max_batch * max_len : NULL;
    size_t host_weights = (size_t)m->objective->host_per_token * max_batch * max_len;
    m->host_weights = host_weights ? malloc(host_weights * sizeof *m->host_weights) : NULL;
    if (!m->host_losses || !m->host_labels || (host_weights && !m->host_weights))
        return model_free(m), lf_fail(err, "out of memory");
    if (build_table(m, err) || assign_gradients(m, err) || choose_storage(m, dir, err) ||
        allocate_values(m, err) || activations_create(m, err) ||
        load_values(m, dir, seed, missing_report, report_cap, err) ||
        adapter_copies_create(m, err) || token_rows_create(m, err))
        return model_free(m), -1;
    dora_init(m);
    return ops->status(err) ? (model_free(m), -1) : 0;
}

/* A decode step: the model, its cache and what the step's ops are given (the sequence decoded,
 * or -1 with n rows of several). The backend's decode slot holds a recording of `recorded` (the
 * slots are the process's, like the backend's graphs); `warmed` ran op by op last, so that a step
 * records only when it repeats, as the trainer's auto graphs do: its first run makes what ops make
 * on first use (cuBLASLt plans). */
typedef struct DecodeStep {
    const Model *m;
    const float *cache;
    int keys, adapters_off, seq, n;
} DecodeStep;
static DecodeStep decode_recorded, decode_warmed;

static void cache_free(Model *m) {
    m->ops->free(m->kv_cache);
    m->ops->free(m->cache_scratch);
    m->ops->free(m->positions);
    m->ops->free(m->seqs);
    free(m->cached);
    m->kv_cache = m->cache_scratch = NULL;
    m->positions = m->seqs = NULL;
    m->cached = NULL;
    m->cache_len = m->cache_seqs = 0;
}

void model_free(Model *m) {
    if (m->ops) {
        if (m->ops->graph_drop) m->ops->graph_drop(); /* recordings may hold its buffers */
        memset(&decode_recorded, 0, sizeof decode_recorded);
        memset(&decode_warmed, 0, sizeof decode_warmed);
        m->ops->free(m->values);
        m->ops->free(m->packed);
        m->ops->free(m->adapter_copies);
        m->ops->free(m->plus_one);
        m->ops->free(m->grads);
        m->ops->free(m->act_mem);
        m->ops->free(m->ids);
        token_rows_free(m->ops, &m->token_rows);
        token_rows_free(m->ops, &m->head_token_rows);
        cache_free(m);
    }
    if (m->arch) m->arch->free(m);
    free(m->params);
    free(m->linears);
    free(m->loras);
    free(m->host_readout);
    free(m->host_labels);
    free(m->host_weights);
    free(m->guards);
    memset(m, 0, sizeof *m);
}

void model_zero_grad(Model *m) {
    if (m->n_grads) m->ops->zero(m->grads, m->n_grads * sizeof(float));
}

size_t model_trainable_count(const Model *m) {
    return m->n_grads;
}

/* PEFT counts a modules_to_save module twice (the frozen original and the trained copy). */
size_t model_all_count(const Model *m) {
    return m->n_all + m->n_saved_copy;
}

size_t model_weight_bytes(const Model *m) {
    return m->n_values * sizeof(float) + m->n_packed_bytes;
}

size_t model_activation_bytes(const Model *m) {
    return m->n_act * sizeof(float);
}

Param *model_find_param(Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* a step                                                                               */

/* model.attention cudnn takes a sequence's keys as the prefix its mask's 1s cover. */
static int check_prefix_masks(const Model *m, const int32_t *mask, int B, int T, LfError *err) {
    if (m->spec.attention != ATTENTION_CUDNN) return 0;
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t++)
            if (mask[b * T + t] && !mask[b * T + t - 1])
                return lf_fail(err,
                               "model.attention cudnn: sequence %d of the batch has a token at "
                               "position %d after padding, and cuDNN takes a sequence's keys as "
                               "a prefix (right padding): use model.attention loraft",
                               b, t);
    return 0;
}

int model_set_batch(Model *m, const int32_t *ids, const int32_t *types, const int32_t *mask,
                    const int32_t *labels, int B, int T, LfError *err) {
    const ModelConfig *c = &m->cfg;
    if (B < 1 || B > m->max_batch || T < 1 || T > m->max_len)
        return lf_fail(err, "batch %dx%d exceeds the sizes the model was built for (%dx%d)", B, T,
                       m->max_batch, m->max_len);
    for (int i = 0; i < B * T; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return lf_fail(err, "token id %d at position %d is outside the vocabulary (size %d)",
                           ids[i], i, c->vocab_size);
        if (types && (types[i] < 0 || types[i] >= (c->type_vocab_size ? c->type_vocab_size : 1)))
            return lf_fail(err, "token type %d at position %d is not supported", types[i], i);
    }
    if (check_prefix_masks(m, mask, B, T, err)) return -1;
    m->n_valid = m->n_head_rows = 0;
    if (labels && m->objective->prepare_labels(m, labels, B, T, m->host_labels, err)) return -1;
    const Ops *o = m->ops;
    size_t n = (size_t)B * T * sizeof(int32_t);
    upload_ids(m, ids, B * T);
    if (types)
        o->upload(m->types, types, n);
    else
        o->zero(m->types, n);
    o->upload(m->mask, mask, n);
    if (labels)
        o->upload(m->labels, m->host_labels,
                  (m->objective->labels_per_token ? (size_t)B * T : (size_t)B) * sizeof(int32_t));
    if (labels && m->n_head_rows)
        o->upload(m->head_rows, m->host_head_rows, (size_t)m->n_head_rows * sizeof(int32_t));
    m->B = B;
    m->T = T;
    m->padded = 0;
    for (int i = 0; i < B * T && !m->padded; i++) m->padded = !mask[i];
    m->has_labels = labels != NULL;
    return 0;
}

const int32_t *model_attention_mask(const Model *m) {
    return m->padded ? m->mask : NULL;
}

uint64_t model_site(int layer, int which) {
    return rng_hash(0xD20F, (uint64_t)layer * 16 + (uint64_t)which);
}

const uint64_t *model_sites(uint64_t *s, int n, int layer, int first) {
    for (int i = 0; i < n; i++) s[i] = model_site(layer, first + i);
    return s;
}

/* l's weight as f32 for one GEMM: its values, or its packed rows dequantised at `at`: base_weight
 * into the op scratch, which is free again once the GEMM is done (the LoRA branch after it
 * reuses it). */
static const float *base_weight_at(Model *m, const Linear *l, float *at) {
    if (!l->w->packed) return l->w->value;
    m->ops->dequantize_rows(at, l->w->packed, l->w->dtype, 0, l->out, l->in);
    return at;
}

static const float *base_weight(Model *m, const Linear *l) {
    return base_weight_at(m, l, m->scratch);
}

/* The bf16 weight block of n linears ls of one group, rows weight_ld apart: in storage when they
 * are stored in bf16 and placed so (place_packed: the whole group, or one weight without its A),
 * else built at *scratch, which then moves past it: each weight copied (BF16: its rows whole, its
 * B columns with them) or dequantised, then with_b (forward) the B columns of those dequantised
 * (the room zeroed first: a member's B meets the others' u with zeros), or with_a (backward) the
 * A rows of their adapted members after the weights, rounded from f32. */
static const uint16_t *group_weight(Model *m, Linear *const *ls, int n, int with_a, int with_b,
                                    float **scratch) {
    int stored = n == group_size(ls[0]) || (n == 1 && !(with_a && ls[0]->lora));
    for (int i = 0; i < n; i++) stored = stored && ls[i]->w->dtype == GGML_BF16;
    if (stored) return ls[0]->w->packed;
    const Ops *o = m->ops;
    int ld = weight_ld(m, ls[0]), C = ls[0]->in, rows = 0;
    uint16_t *w = (uint16_t *)*scratch;
    for (int i = 0; i < n; i++) rows += ls[i]->out;
    if (with_b && ld > C) o->zero(w, (size_t)rows * ld * sizeof *w);
    rows = 0;
    for (int i = 0; i < n; i++) {
        const Linear *l = ls[i];
        int bf16 = l->w->dtype == GGML_BF16;
        uint16_t *row0 = w + (size_t)rows * ld;
        o->dequantize_rows_bf16(row0, l->w->packed, l->w->dtype, 0, l->out, bf16 ? ld : C, ld);
        if (with_b && fused_lora(m, l) && !bf16) /* else sync_adapters wrote it */
            o->dequantize_rows_bf16(row0 + lora_col(m, l), l->lora->B->value, GGML_F32, 0, l->out,
                                    l->lora->r, ld);
        rows += l->out;
    }
    for (int i = 0; i < n && with_a; i++) {
        const Lora *lo = ls[i]->lora;
        if (!lo) continue;
        o->dequantize_rows_bf16(w + (size_t)rows * ld, lo->A->value, GGML_F32, 0, lo->r, C, ld);
        rows += lo->r;
    }
    *scratch += ops_dequantize_bf16_scratch((size_t)rows, ld);
    return w;
}

static int adapted(const Model *m, const Linear *l) {
    return l->lora && !m->adapters_off;
}

/* The outputs of n linears, side by side. */
static int outs_width(Linear *const *ls, int n) {
    int width = 0;
    for (int i = 0; i < n; i++) width += ls[i]->out;
    return width;
}

static int dora(const Model *m, const Linear *l) {
    return adapted(m, l) && l->lora->mag;
}

/* DoRA under lora dropout p > 0 (training): PEFT's DoraLinearLayer then takes the base's term
 * from drop(x) too, so the base's term on the rest, x - drop(x), stays out of the magnitude's
 * scale (Ops.dora_forward's rest). */
static int dora_rest(const Model *m, const Linear *l, float p) {
    return dora(m, l) && p > 0.0f;
}

/* dora_rest's rest [N,out] = (x - drop(x)) W^T at the scratch's start, where x is inp or, under
 * bf16, the copy the op before wrote (Linear.in_bf16), and the GEMM the linear's own: f32, or
 * bf16 over the rest rounded. */
static const float *dora_rest_forward(Model *m, Linear *l, const float *inp, int N, float p,
                                      uint64_t seed) {
    const Ops *o = m->ops;
    size_t C = l->in, OC = l->out;
    float *rest = m->scratch, *x_rest = rest + ops_floats64(N * OC);
    float *scratch = x_rest + ops_floats64(N * C);
    const uint16_t *xb = l->in_bf16;
    o->lora_dropout_rest(x_rest, xb ? NULL : inp, xb, linear_input_ld(m, l), p, seed, N, (int)C,
                         OPS_SET);
    if (!bf16_gemm(m, l)) {
        o->matmul_forward(rest, x_rest, base_weight_at(m, l, scratch), NULL, N, l->in, l->out);
        return rest;
    }
    uint16_t *x_bf16 = (uint16_t *)scratch;
    scratch += ops_dequantize_bf16_scratch(N, C);
    o->dequantize_rows_bf16(x_bf16, x_rest, GGML_F32, 0, N, l->in, l->in);
    const uint16_t *W = group_weight(m, &l, 1, 0, 0, &scratch);
    o->matmul_forward_bf16(rest, NULL, l->out, x_bf16, l->in, W, weight_ld(m, l), NULL, scratch, N,
                           l->in, l->out);
    return rest;
}

/* dinp += the input gradient through dora_rest_forward: drop-rest(grest W), grest as
 * Ops.dora_backward gives it, after the GEMMs that wrote dinp. */
static void dora_rest_backward(Model *m, Linear *l, float *dinp, const float *grest, int N, float p,
                               uint64_t seed) {
    const Ops *o = m->ops;
    float *t = m->scratch, *scratch = t + ops_floats64((size_t)N * l->in);
    if (!bf16_gemm(m, l)) {
        o->matmul_backward(t, NULL, grest, NULL, base_weight_at(m, l, scratch), N, l->in, l->out,
                           OPS_SET);
    } else {
        uint16_t *g_bf16 = (uint16_t *)scratch;
        scratch += ops_dequantize_bf16_scratch(N, (size_t)l->out);
        o->dequantize_rows_bf16(g_bf16, grest, GGML_F32, 0, N, l->out, l->out);
        const uint16_t *W = group_weight(m, &l, 1, 0, 0, &scratch);
        o->matmul_backward_bf16(t, NULL, g_bf16, l->out, W, weight_ld(m, l), scratch, N, l->in,
                                l->out, OPS_SET);
    }
    o->lora_dropout_rest(dinp, t, NULL, 0, p, seed, N, l->in, OPS_ADD);
}

static void linear_forward_f32(Model *m, Linear *l, float *out, const float *inp, int N, float p,
                               uint64_t seed) {
    const Ops *o = m->ops;
    if (out)
        o->matmul_forward(out, inp, base_weight(m, l), l->b ? l->b->value : NULL, N, l->in, l->out);
    if (adapted(m, l))
        o->lora_forward(out, l->lora->u, inp, l->lora->A->value, l->lora->B->value, l->lora->scale,
                        p, seed, m->scratch, N, l->in, l->out, l->lora->r);
}

/* Whether n linears' outputs (out NULL: any) lie side by side in one matrix and their biases
 * (if any) in one vector. */
static int side_by_side(Linear *const *ls, float *const *outs, int n) {
    int ok = 1, col = 0;
    for (int i = 0; i < n; col += ls[i++]->out) {
        const Param *b = ls[i]->b, *b0 = ls[0]->b;
        ok = ok && (!outs || outs[i] == outs[0] + col);
        ok = ok && !b == !b0 && (!b || b->value == b0->value + col);
    }
    return ok;
}

int linear_outputs_join(const Model *m, Linear *const *ls, int n) {
    int join = n <= OPS_LORA_GROUP_MAX && n == group_size(ls[0]) && side_by_side(ls, NULL, n);
    for (int i = 0; i < n; i++) join = join && bf16_gemm(m, ls[i]) && !has_dora(ls[i]);
    return join;
}

/* n bf16 linears of one input: the adapted ones' down-projections and the input's bf16 copy
 * ([x | s u_0 | ..] with LoRA, or a plain [x], which a linear without LoRA may find already
 * written: Linear.in_bf16) from one read of inp, then one GEMM over the group's weight block
 * (group_weight) where the outputs lie side by side, else one a member. An adapted one's weight
 * holds B's bf16 columns, rounded from the f32 B the optimizer updates by sync_adapters at the
 * forward's start, or here into a block built in scratch: [out,R] values, against the [N,out]
 * read and write of an up-projection. */
static void linear_forward_bf16(Model *m, Linear *const *ls, float *const *outs, int n,
                                const float *inp, int N, float p, const uint64_t *seeds) {
    const Ops *o = m->ops;
    int C = ls[0]->in, R = 0, na = 0, any = 0; /* R: the adapted members' one rank */
    float *u[OPS_LORA_GROUP_MAX], scale = 0;
    const float *A[OPS_LORA_GROUP_MAX];
    uint64_t sd[OPS_LORA_GROUP_MAX];
    uint16_t *xb = NULL, *ob = ls[0]->out_bf16; /* xb: the copy's place, if kept */
    any = ob != NULL;
    for (int i = 0; i < n; i++) {
        any = any || outs[i];
        if (!adapted(m, ls[i])) continue;
        const Lora *lo = ls[i]->lora;
        xb = na ? xb : lo->xb;
        u[na] = lo->u, A[na] = lo->A->value, sd[na++] = seeds[i], scale = lo->scale, R = lo->r;
    }
    int K = C + na * R;            /* the GEMMs' inner size: zeros meet the other members' u */
    uint16_t *in = ls[0]->in_bf16; /* x's columns written by the op before it */
    int ldx = in ? linear_input_ld(m, ls[0]) : K; /* wider where the adapters are off */
    float *scratch = m->scratch + ops_lora_copy_scratch(N, ldx);
    xb = in ? in : xb ? xb : (uint16_t *)m->scratch;
    if (na)
        o->lora_down_bf16(xb, u, A, sd, na, in ? NULL : inp, scale, p, scratch, N, C, R);
    else if (!in)
        o->dequantize_rows_bf16(xb, inp, GGML_F32, 0, N, C, C);
    if (!any) return; /* linear_forward's out NULL: u alone */
    int ldw = weight_ld(m, ls[0]);
    const uint16_t *W = group_weight(m, ls, n, 0, 1, &scratch);
    if (ob || side_by_side(ls, outs, n)) {
        int OC = outs_width(ls, n);
        const float *bias = ob || !ls[0]->b ? NULL : ls[0]->b->value; /* ob: the next op's */
        o->matmul_forward_bf16(ob ? NULL : outs[0], ob, OC, xb, ldx, W, ldw, bias, scratch, N, K,
                               OC);
        return;
    }
    for (int i = 0, row = 0; i < n; row += ls[i++]->out) {
        const Linear *l = ls[i];
        if (outs[i])
            o->matmul_forward_bf16(outs[i], NULL, l->out, xb, ldx, W + (size_t)row * ldw, ldw,
                                   l->b ? l->b->value : NULL, scratch, N, K, l->out);
    }
}

void linear_forward_group(Model *m, Linear *const *ls, float *const *outs, int n, const float *inp,
                          int N, float p, const uint64_t *seeds) {
    int size = ls[0]->group > 1 ? ls[0]->group : 1;
    if (n > size) { /* an undeclared group: in pieces the scratch holds */
        for (int i = 0; i < n; i += size)
            linear_forward_group(m, ls + i, outs + i, n - i < size ? n - i : size, inp, N, p,
                                 seeds + i);
        return;
    }
    Linear *bf[OPS_LORA_GROUP_MAX];
    float *bf_outs[OPS_LORA_GROUP_MAX], *y[OPS_LORA_GROUP_MAX];
    uint64_t bf_seeds[OPS_LORA_GROUP_MAX];
    int nb = 0;
    for (int i = 0; i < n; i++) {
        y[i] = outs[i] || !dora(m, ls[i]) ? outs[i] : ls[i]->lora->pre; /* a replay's: pre alone */
        if (!bf16_gemm(m, ls[i])) {
            linear_forward_f32(m, ls[i], y[i], inp, N, p, seeds[i]);
            continue;
        }
        bf[nb] = ls[i], bf_outs[nb] = y[i], bf_seeds[nb++] = seeds[i];
    }
    if (nb) linear_forward_bf16(m, bf, bf_outs, nb, inp, N, p, bf_seeds);
    /* the bf16 members' outputs in one matrix (linear_forward_bf16's one GEMM): its rows' width */
    int joined = nb && side_by_side(bf, bf_outs, nb) ? outs_width(bf, nb) : 0;
    for (int i = 0; i < n; i++) { /* DoRA's scale, after the GEMMs */
        const Linear *l = ls[i];
        if (!dora(m, l)) continue;
        const Lora *lo = l->lora;
        const float *rest =
            dora_rest(m, l, p) ? dora_rest_forward(m, ls[i], inp, N, p, seeds[i]) : NULL;
        m->ops->dora_forward(outs[i], lo->pre, y[i], joined && bf16_gemm(m, l) ? joined : l->out,
                             lo->mag->value, lo->norm, l->b ? l->b->value : NULL, rest, N, l->out);
    }
}

void linear_forward(Model *m, Linear *l, float *out, const float *inp, int N, float p,
                    uint64_t seed) {
    if (!out && !l->out_bf16 && !adapted(m, l)) return; /* backward reads its input, apart */
    linear_forward_group(m, &l, &out, 1, inp, N, p, &seed);
}

/* Under bf16, the n linears ls of one group (or a single one). Members that all find their
 * dout's bf16 copy written by the op after them (Linear.dout_bf16; none has LoRA then), side by
 * side in one matrix, run one GEMM over it. Otherwise one GEMM runs for the group: dd = [dout_0
 * .. dout_n-1 | du ..] in bf16
 * at the scratch's start, after the adapted members' du, against the group's weight block
 * [W_0 ; .. ; W_n-1 ; A ..] (group_weight), the A rows and du's columns with lora dropout 0 only
 * (the branch's term inside the GEMM, instead of a read and write of dinp of its own). An adapted
 * member's columns come from lora_backward_bf16, which reads dout once for them, du, dB and dA; a
 * member without LoRA's are rounded in the same launch (or copied from dout_bf16, or, where no
 * member is adapted, rounded by a pass of their own). Under lora dropout the members'
 * masked terms come last, in one lora_dinp_bf16 pass over dinp. */
static void linear_backward_bf16(Model *m, Linear *const *ls, float *dinp,
                                 const float *const *douts, int n, const float *inp, int N, float p,
                                 const uint64_t *seeds, int acc) {
    const Ops *o = m->ops;
    int C = ls[0]->in, R = group_rank(m, ls[0]), na = 0, K = 0, split = 1, fuse = p <= 0;
    const float *du[OPS_LORA_GROUP_MAX], *A[OPS_LORA_GROUP_MAX];
    uint64_t sd[OPS_LORA_GROUP_MAX];
    size_t slot = ops_floats64((size_t)N * R);
    for (int i = 0; i < n; i++) {
        split = split && ls[i]->dout_bf16 && ls[i]->dout_bf16 == ls[0]->dout_bf16 + K;
        K += ls[i]->out, na += ls[i]->lora != NULL;
    }
    float *scratch = m->scratch;
    uint16_t *db = ls[0]->din_bf16; /* dinp's place, for the input gradient in bf16 instead */
    if (split) {                    /* [N, K]: the members' copies side by side */
        if (!dinp) return;
        const uint16_t *W = group_weight(m, ls, n, 0, 0, &scratch);
        o->matmul_backward_bf16(db ? NULL : dinp, db, ls[0]->dout_bf16, K, W, weight_ld(m, ls[0]),
                                scratch, N, C, K, acc);
        return;
    }
    int ldd = K + na * R;
    uint16_t *dd = (uint16_t *)(scratch + (size_t)na * slot);
    scratch += (size_t)na * slot + ops_dequantize_bf16_scratch(N, (size_t)ldd);
    OpsLoraBackward lin[OPS_LORA_GROUP_MAX];
    const Lora *first = NULL; /* whose input copy (Lora.xb) and scale the group's share */
    int nl = 0;               /* lin's: the adapted and, in their pass, the others' f32 douts */
    for (int i = 0, col = 0, a = 0; i < n; col += ls[i++]->out) {
        const Linear *l = ls[i];
        const Lora *lo = l->lora;
        if (lo) {
            float *d = m->scratch + (size_t)a * slot;
            lin[nl++] = (OpsLoraBackward){.dout = douts[i],
                                          .u = lo->u,
                                          .B = lo->B->value,
                                          .du = d,
                                          .dA = lo->A->grad,
                                          .dB = lo->B->grad,
                                          .seed = seeds[i],
                                          .OC = l->out,
                                          .dout_col = col,
                                          .du_col = K + a * R};
            first = first ? first : lo;
            du[a] = d, A[a] = lo->A->value, sd[a++] = seeds[i];
        } else if (dinp && !l->dout_bf16 && na) {
            lin[nl++] = (OpsLoraBackward){.dout = douts[i], .OC = l->out, .dout_col = col};
        } else if (dinp) {
            const void *src = l->dout_bf16 ? (const void *)l->dout_bf16 : douts[i];
            o->dequantize_rows_bf16(dd + col, src, l->dout_bf16 ? GGML_BF16 : GGML_F32, 0, N,
                                    l->out, ldd);
        }
    }
    if (na)
        o->lora_backward_bf16(dd, ldd, lin, nl, first->xb ? NULL : inp, first->xb, C + na * R,
                              first->scale, p, scratch, N, C, R);
    if (!dinp) return;
    const uint16_t *W = group_weight(m, ls, n, fuse, 0, &scratch);
    o->matmul_backward_bf16(db ? NULL : dinp, db, dd, ldd, W, weight_ld(m, ls[0]), scratch, N, C,
                            K + (fuse ? na * R : 0), acc);
    if (na && !fuse) o->lora_dinp_bf16(db ? NULL : dinp, db, du, A, sd, na, p, N, C, R, OPS_ADD);
}

static void linear_backward_one(Model *m, Linear *l, float *dinp, const float *dout,
                                const float *inp, int N, float p, uint64_t seed, int acc) {
    if (bf16_gemm(m, l)) /* packed, so frozen: no dW */
        return linear_backward_bf16(m, &l, dinp, &dout, 1, inp, N, p, &seed, acc);
    const Ops *o = m->ops;
    const float *W = dinp ? base_weight(m, l) : l->w->value; /* a packed W has no dW */
    o->matmul_backward(dinp, l->w->grad, dout, inp, W, N, l->in, l->out, acc);
    if (l->lora)
        o->lora_backward(dinp, l->lora->A->grad, l->lora->B->grad, dout, inp, l->lora->u,
                         l->lora->A->value, l->lora->B->value, l->lora->scale, p, seed, m->scratch,
                         N, l->in, l->out, l->lora->r);
}

/* DoRA's backward before the GEMMs': each adapted member's output gradient g becomes mag / norm
 * * g in Model.dora_grad, which d[i] then points at (else d[i] = douts[i]), its magnitude's
 * gradient is summed, and under lora dropout rest[i] points at its grest in Model.dora_grest
 * (else NULL) for dora_rest_backward. */
static void dora_backward(Model *m, Linear *const *ls, const float *const *douts, const float **d,
                          const float **rest, int n, int N, float p) {
    float *gs = m->dora_grad, *gr = m->dora_grest;
    for (int i = 0; i < n; i++) {
        const Lora *lo = ls[i]->lora;
        d[i] = douts[i], rest[i] = NULL;
        if (!dora(m, ls[i])) continue;
        size_t OC = (size_t)ls[i]->out;
        float *grest = dora_rest(m, ls[i], p) ? gr : NULL;
        m->ops->dora_backward(gs, grest, lo->mag->grad, douts[i], (int)OC, lo->pre, lo->mag->value,
                              lo->norm, m->scratch, N, (int)OC);
        d[i] = gs, gs += N * OC;
        if (grest) rest[i] = grest, gr += N * OC;
    }
}

/* The linears' trained biases' gradients, the sums of their outputs' gradients g, before the
 * GEMMs (which compute none) and before DoRA's scale (the GEMMs see mag / norm * g; the bias,
 * added after the scale, sees g): from g's bf16 copy where the op after wrote only that
 * (Linear.dout_bf16: a column block of the group's [N, sum of outs] rows), else from douts. */
static void bias_grads(Model *m, Linear *const *ls, const float *const *douts, int n, int N) {
    for (int i = 0; i < n; i++) {
        const Linear *l = ls[i];
        if (!l->b || !l->b->grad) continue;
        const uint16_t *g16 = l->dout_bf16;
        m->ops->bias_backward(l->b->grad, g16 ? NULL : douts[i], g16,
                              g16 ? outs_width(ls, n) : l->out, m->scratch, N, l->out);
    }
}

void linear_backward(Model *m, Linear *l, float *dinp, const float *dout, const float *inp, int N,
                     float p, uint64_t seed, int acc) {
    linear_backward_group(m, &l, dinp, &dout, 1, inp, N, p, &seed, acc);
}

void linear_backward_group(Model *m, Linear *const *ls, float *dinp, const float *const *douts,
                           int n, const float *inp, int N, float p, const uint64_t *seeds,
                           int acc) {
    int size = ls[0]->group > 1 ? ls[0]->group : 1, bf16 = 1;
    for (int i = 0; i < n; i++) bf16 = bf16 && bf16_gemm(m, ls[i]);
    for (int i = 0; i < n; i += size) { /* in groups the scratch holds */
        int k = n - i < size ? n - i : size;
        const float *d[OPS_LORA_GROUP_MAX], *rest[OPS_LORA_GROUP_MAX];
        bias_grads(m, ls + i, douts + i, k, N);
        dora_backward(m, ls + i, douts + i, d, rest, k, N, p);
        if (bf16)
            linear_backward_bf16(m, ls + i, dinp, d, k, inp, N, p, seeds + i, i ? OPS_ADD : acc);
        for (int j = 0; !bf16 && j < k; j++)
            linear_backward_one(m, ls[i + j], dinp, d[j], inp, N, p, seeds[i + j],
                                i + j ? OPS_ADD : acc);
        for (int j = 0; dinp && j < k; j++)
            if (rest[j]) dora_rest_backward(m, ls[i + j], dinp, rest[j], N, p, seeds[i + j]);
    }
}

void linear_output_bf16(const Model *m, Linear *const *ls, int n, uint16_t *at) {
    ls[0]->out_bf16 = linear_outputs_join(m, ls, n) ? at : NULL;
}

const float *linear_output_bias(const Linear *l) {
    return l->out_bf16 && l->b ? l->b->value : NULL;
}

void linear_input_grad_bf16(const Model *m, Linear *l, uint16_t *at) {
    int rest = has_dora(l) && m->spec.dropout > 0; /* dora_rest_backward adds to the f32 dinp */
    l->din_bf16 = bf16_gemm(m, l) && !l->peers && !rest ? at : NULL;
}

void linear_reads_attention_out(const Model *m, Linear *l, float *saved) {
    linear_input_bf16(m, &l, 1, m->ops->attention_saved_out(m->spec.precision, saved));
}

void model_share_input(Linear *const *ls, int n) {
    for (int i = 0; i < n; i++) {
        ls[i]->group = n < OPS_LORA_GROUP_MAX ? n : OPS_LORA_GROUP_MAX;
        ls[i]->peers = n <= OPS_LORA_GROUP_MAX ? ls : NULL; /* else pieces: stored alone */
    }
}

const float *dropout_grad(Model *m, float *scratch, const float *g, float p, uint64_t seed,
                          size_t n) {
    if (p <= 0) return g;
    m->ops->dropout_backward(scratch, NULL, g, p, seed, n, OPS_SET);
    return scratch;
}

const float *linear_dout(Model *m, const Linear *l, float *scratch, const float *g, float p,
                         uint64_t seed, size_t n) {
    if (!l->dout_bf16) return dropout_grad(m, scratch, g, p, seed, n);
    m->ops->dropout_backward(NULL, l->dout_bf16, g, p, seed, n, OPS_SET);
    return NULL;
}

void layers_backward(Model *m, LayerForward forward, LayerBackward layer, int lowest,
                     int need_input, float *grad, Drop d) {
    int top = m->cfg.num_layers - 1, fresh = m->top_fresh;
    m->top_fresh = 0;
    for (int l = top; l >= lowest; l--) {
        if (model_recomputes(m) && !(l == top && fresh)) forward(m, l, d, 1);
        layer(m, l, grad, l > lowest || need_input, d);
    }
}

int linear_trains(const Linear *l) {
    return l->w->grad || (l->b && l->b->grad) || l->lora;
}

static Drop dropouts(const Model *m, int train) {
    Drop d = {0, 0, 0, 0, 0, 0};
    if (train)
        d = (Drop){m->cfg.hidden_dropout, m->cfg.attention_dropout, m->cfg.classifier_dropout,
                   m->spec.dropout,       m->cfg.embedding_dropout, m->spec.neftune_alpha};
    return d;
}

void model_embedding_noise(const Model *m, float *x, Drop d) {
    if (!(d.neftune > 0)) return;
    int C = m->cfg.hidden_size;
    float bound = d.neftune / sqrtf((float)m->T * (float)C); /* HF's alpha / sqrt(T * C) */
    m->ops->uniform_noise(x, bound, model_site(m->cfg.num_layers, SITE_NEFTUNE),
                          (size_t)m->B * m->T * C);
}

void model_embedding_lora(Model *m, float *out, int n) {
    const Lora *lo = &m->embedding_lora;
    const TokenRows *tr = &m->token_rows;
    int C = m->cfg.hidden_size;
    if (m->adapters_off) return;
    if (lo->A)
        m->ops->embedding_lora_forward(out, lo->u, m->ids, lo->A->value, lo->B->value, lo->scale, n,
                                       C, lo->r);
    if (tr->rows) { /* out += delta[slot]: the trained rows in place of the table's */
        m->ops->embedding_forward(m->scratch, tr->slot, NULL, NULL, tr->delta, NULL, NULL, NULL, 1,
                                  n, C);
        m->ops->axpy(out, m->scratch, 1.0f, (size_t)n * C);
    }
}

void model_embedding_lora_backward(Model *m, const float *dout) {
    const Lora *lo = &m->embedding_lora;
    const TokenRows *tr = &m->token_rows;
    int C = m->cfg.hidden_size;
    if (lo->A && lo->A->grad)
        m->ops->embedding_lora_backward(lo->A->grad, lo->B->grad, dout, lo->u, m->ids, lo->B->value,
                                        lo->scale, m->word_embedding->pad_row, m->scratch,
                                        m->B * m->T, C, lo->r);
    if (tr->rows && tr->rows->grad)
        m->ops->embedding_backward(tr->rows->grad, NULL, NULL, dout, tr->grad_slot, NULL, tr->k,
                                   m->B, m->T, C);
}

int model_embedding_trains(const Model *m) {
    const Lora *lo = &m->embedding_lora;
    const TokenRows *tr = &m->token_rows;
    return (m->word_embedding && m->word_embedding->grad) || (lo->A && lo->A->grad) ||
           (tr->rows && tr->rows->grad);
}

int model_head_branch(const Model *m, HeadBranch *hb) {
    const Lora *lo = m->head ? m->head->lora : NULL;
    const TokenRows *tr = m->head_branch_rows;
    if (m->adapters_off) return 0;
    if (lo) {
        *hb = (HeadBranch){lo->u,       m->head_du, lo->A->value,    lo->B->value, lo->A->grad,
                           lo->B->grad, lo->scale,  m->spec.dropout, lo->r};
        return 1;
    }
    if (!tr) return 0;
    *hb =
        (HeadBranch){tr->u, tr->du, tr->delta, tr->onehot, tr->rows->grad, NULL, 1.0f, 0.0f, tr->k};
    return 1;
}

/* The step's scalars for the batch set last: the pair objectives' ops average over pairs
 * themselves, the others' gradient is of the mean over the labels that count. */
static void set_step(const Model *m) {
    float w = m->step_weight;
    OpsStep s = {m->step_seed, m->objective->pairs ? w : m->n_valid ? w / (float)m->n_valid : 0.0f};
    m->ops->set_step(&s);
}

/* The backend's precision, attention and step switches are process-wide: each entry sets this
 * model's (its attention, checked by model_create, is one the backend runs). */
static void use_switches(const Model *m) {
    m->ops->set_precision(m->spec.precision);
    m->ops->set_attention(m->spec.attention, NULL);
    set_step(m);
}

void model_step(Model *m, uint64_t seed, float loss_weight) {
    m->step_seed = seed, m->step_weight = loss_weight;
    set_step(m);
}

int model_forward(Model *m, int train, float *loss, LfError *err) {
    use_switches(m);
    m->train_mode = train;
    m->dhidden_ready = 0; /* the loss may write it */
    sync_adapters(m);
    sync_norms(m);
    sync_dora(m);
    m->arch->forward(m, dropouts(m, train));
    m->top_fresh = 1;
    if (m->has_labels && m->objective->loss(m, err)) return -1;
    return loss ? model_read_loss(m, loss, NULL, err) : 0;
}

int model_backward(Model *m, LfError *err) {
    if (!m->has_labels) return lf_fail(err, "backward needs a batch with labels");
    use_switches(m);
    if (m->objective->loss_backward && m->objective->loss_backward(m, err)) return -1;
    m->arch->backward(m, dropouts(m, m->train_mode));
    return 0;
}

/* The sum of the first rows losses read back over the labels that count. */
static float mean_loss(const Model *m, size_t rows) {
    double sum = 0;
    for (size_t i = 0; i < rows; i++) sum += m->host_losses[i];
    return m->n_valid ? (float)(sum / m->n_valid) : 0.0f;
}

int model_read_loss(Model *m, float *loss, double *norm, LfError *err) {
    const Objective *o = m->objective;
    /* in floats after the norm's two: the pair readout, or the losses */
    size_t rows = !m->has_labels ? 0
                  : o->pairs     ? readout_pairs(m)
                                 : (size_t)m->B * (o->labels_per_token ? (size_t)m->T : 1);
    size_t first = norm ? 0 : 2;
    if (2 + rows > first)
        m->ops->download(m->host_readout + first, (const float *)m->grad_norm + first,
                         (2 + rows - first) * sizeof(float));
    if (m->ops->status(err) || check_guards(m, err)) return -1;
    if (norm) memcpy(norm, m->host_readout, sizeof *norm);
    float mean = !m->has_labels ? 0.0f
                 : o->pairs     ? pair_readout_loss(m, m->host_readout + 2)
                                : mean_loss(m, rows);
    if (loss) *loss = mean;
    return 0;
}

int model_lm_logits(Model *m, int row0, int n_rows, float *out, LfError *err) {
    const Linear *h = m->head;
    int C = m->cfg.hidden_size, V = h ? h->out : 0;
    size_t N = (size_t)m->max_batch * m->max_len; /* the head scratch's f32 rows (ops.h) */
    int bf16 = m->head_bf16 != NULL, chunk = (int)ops_lm_head_rows(N, OPS_LM_HEAD_CHUNK, bf16);
    if (!h || row0 < 0 || n_rows < 0 || row0 + n_rows > m->B * m->T)
        return lf_fail(err, "model_lm_logits: rows %d..%d of a %d-row batch of a decoder", row0,
                       row0 + n_rows, m->B * m->T);
    use_switches(m);
    /* a bf16 head: its GEMM on the rows rounded to bf16, after the logits (ops.h's layout) */
    uint16_t *hb =
        bf16 ? (uint16_t *)(m->head_scratch + ops_lm_head_logits(N, V, OPS_LM_HEAD_CHUNK, 1))
             : NULL;
    for (int r = 0; r < n_rows; r += chunk) {
        int n = n_rows - r < chunk ? n_rows - r : chunk;
        const float *rows = m->hidden + (size_t)(row0 + r) * C;
        if (bf16) {
            m->ops->dequantize_rows_bf16(hb, rows, GGML_F32, 0, n, C, C);
            m->ops->matmul_forward_bf16(m->head_scratch, NULL, V, hb, C, m->head_bf16, C, NULL,
                                        m->scratch, n, C, V);
        } else {
            m->ops->matmul_forward(m->head_scratch, rows, h->w->value, NULL, n, C, V);
        }
        HeadBranch hb; /* its up-projection in f32 */
        if (model_head_branch(m, &hb))
            m->ops->lora_forward(m->head_scratch, hb.u, rows, hb.A, hb.B, hb.scale, 0.0f, 0,
                                 m->scratch, n, C, V, hb.r);
        m->ops->download(out + (size_t)r * V, m->head_scratch, (size_t)n * V * sizeof(float));
    }
    float cap = m->cfg.score_head ? 0.0f : m->cfg.final_softcap; /* a score head has none */
    for (size_t i = 0; cap > 0 && i < (size_t)n_rows * V; i++) out[i] = soft_cap(out[i], cap);
    return m->ops->status(err);
}

/* ------------------------------------------------------------------------------------ */
/* generation                                                                           */

/* Floats of one layer's keys (or values): every sequence's positions. */
static size_t cache_block(const Model *m) {
    return (size_t)m->cache_seqs * m->cache_len * m->arch->cache_width(m);
}

CacheLayer model_cache_layer(const Model *m, int l) {
    size_t seq = m->decode_seq < 0 ? 0 : (size_t)m->decode_seq * m->cache_len;
    float *k = m->kv_cache + 2 * (size_t)l * cache_block(m) + seq * m->arch->cache_width(m);
    CacheLayer c = {k, k + cache_block(m), m->decode_seq < 0 ? m->seqs : NULL, m->cache_len};
    return c;
}

int model_cache_reset(Model *m, int seqs, int positions, LfError *err) {
    if (!m->arch->decode)
        return lf_fail(err, "generation needs a decoder; %s is not one", arch_name(m->cfg.arch));
    if (positions < 1 || positions > m->cfg.max_positions)
        return lf_fail(err, "a KV cache of %d positions: the model has %d", positions,
                       m->cfg.max_positions);
    if (seqs < 1 || seqs > m->max_batch * m->max_len)
        return lf_fail(err, "a KV cache of %d sequences: the model's steps hold 1 to %d", seqs,
                       m->max_batch * m->max_len);
    sync_dora(m); /* the decode steps' */
    if (m->cache_len >= positions && m->cache_seqs >= seqs) {
        /* zeros: what a decode step's attention reads past its position (cache_keys) stays
         * finite */
        m->ops->zero(m->kv_cache, 2 * m->cfg.num_layers * cache_block(m) * sizeof(float));
        memset(m->cached, 0, (size_t)m->cache_seqs * sizeof *m->cached);
        return 0;
    }
    cache_free(m);
    m->cache_len = positions;
    m->cache_seqs = seqs;
    m->decode_rows = seqs > m->max_len ? seqs : m->max_len;
    size_t n = 2 * m->cfg.num_layers * cache_block(m), rows = (size_t)m->decode_rows;
    size_t ns = m->ops->attention_cached_scratch(m->decode_rows, positions, m->cfg.num_heads,
                                                 model_head_size(&m->cfg));
    m->kv_cache = m->ops->alloc(n * sizeof(float));
    m->cache_scratch = m->ops->alloc(ns * sizeof(float));
    m->positions = m->ops->alloc(rows * sizeof(int32_t));
    m->seqs = m->ops->alloc(rows * sizeof(int32_t));
    m->cached = calloc((size_t)seqs, sizeof *m->cached);
    int rc = m->kv_cache && m->cache_scratch && m->positions && m->seqs && m->cached
                 ? 0
                 : lf_fail(err, "out of memory for a KV cache of %zu floats", n + ns);
    if (rc) cache_free(m);
    return rc;
}

static void decode_ops(Model *m, int n) {
    sync_adapters(m);
    sync_norms(m);
    m->arch->decode(m, n);
}

/* A step's decode: the recording replayed when it is this step's, else recorded (and run) when
 * the step ran op by op last, else run op by op. */
static int decode_graphed(Model *m, int n, LfError *err) {
    const Ops *o = m->ops;
    DecodeStep now = {m, m->kv_cache, m->cache_keys, m->adapters_off, m->decode_seq, n};
    if (!memcmp(&decode_recorded, &now, sizeof now)) {
        int rc = o->graph_replay(OPS_GRAPH_DECODE_SLOT);
        if (rc < 0) return o->status(err) ? -1 : lf_fail(err, "cuda: a graph replay failed");
        if (rc == 0) return 0; /* else the backend dropped it: record again */
    }
    memset(&decode_recorded, 0, sizeof decode_recorded);
    if (memcmp(&decode_warmed, &now, sizeof now)) {
        decode_ops(m, n);
        decode_warmed = now;
        return 0;
    }
    if (o->graph_begin())
        return o->status(err) ? -1 : lf_fail(err, "cuda: a graph capture did not start");
    decode_ops(m, n);
    if (o->graph_end(OPS_GRAPH_DECODE_SLOT))
        return o->status(err) ? -1 : lf_fail(err, "cuda: a graph launch failed");
    decode_recorded = now;
    return 0;
}

/* Runs ids[0..n) at positions pos[], of sequence seq, or (seq -1) of sequences seqs[]; keys the
 * decode attends: through the furthest position, or the whole cache for a graphed step. */
static int decode_tokens(Model *m, const int32_t *ids, const int32_t *pos, int seq,
                         const int32_t *seqs, int n, LfError *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return lf_fail(err, "token id %d is outside the vocabulary (size %d)", ids[i],
                           m->cfg.vocab_size);
    use_switches(m);
    upload_ids(m, ids, n);
    m->ops->upload(m->positions, pos, (size_t)n * sizeof(int32_t));
    if (seq < 0) m->ops->upload(m->seqs, seqs, (size_t)n * sizeof(int32_t));
    m->B = 1;
    m->T = n;
    m->train_mode = m->has_labels = 0;
    m->top_fresh = 0;
    m->decode_seq = seq;
    int graphs = (n == 1 || seq < 0) && m->ops->graph_begin, keys = 0;
    for (int i = 0; i < n; i++) keys = pos[i] + 1 > keys ? pos[i] + 1 : keys;
    m->cache_keys = graphs ? m->cache_len : keys;
    int rc = 0;
    if (graphs && m->decode_graphs)
        rc = decode_graphed(m, n, err);
    else
        decode_ops(m, n);
    return rc || m->ops->status(err) ? -1 : check_guards(m, err);
}

static int cache_check(const Model *m, int seq, LfError *err) {
    if (!m->kv_cache) return lf_fail(err, "model_decode: no KV cache (model_cache_reset first)");
    if (seq < 0 || seq >= m->cache_seqs)
        return lf_fail(err, "sequence %d of a KV cache of %d", seq, m->cache_seqs);
    return 0;
}

int model_decode(Model *m, int seq, const int32_t *ids, int n, LfError *err) {
    if (cache_check(m, seq, err)) return -1;
    int at = m->cached[seq];
    if (n < 1 || n > m->max_len || n > m->cache_len - at)
        return lf_fail(err,
                       "%d more tokens after %d exceed the cache's %d positions or the %d rows "
                       "the model was built for",
                       n, at, m->cache_len, m->max_len);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return lf_fail(err, "out of memory");
    for (int i = 0; i < n; i++) pos[i] = at + i;
    int rc = decode_tokens(m, ids, pos, seq, NULL, n, err);
    free(pos);
    if (!rc) m->cached[seq] += n;
    return rc;
}

int model_decode_step(Model *m, const int32_t *seqs, const int32_t *ids, int n, LfError *err) {
    if (n < 1 || n > m->cache_seqs)
        return lf_fail(err, "a decode step of %d sequences: the cache holds %d", n, m->cache_seqs);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return lf_fail(err, "out of memory");
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        rc = cache_check(m, seqs[i], err);
        for (int j = 0; !rc && j < i; j++)
            if (seqs[j] == seqs[i])
                rc = lf_fail(err, "a decode step runs sequence %d twice", seqs[i]);
        if (!rc && m->cached[seqs[i]] >= m->cache_len)
            rc = lf_fail(err, "sequence %d has used the cache's %d positions", seqs[i],
                         m->cache_len);
        if (!rc) pos[i] = m->cached[seqs[i]];
    }
    rc = rc || decode_tokens(m, ids, pos, -1, seqs, n, err);
    free(pos);
    for (int i = 0; !rc && i < n; i++) m->cached[seqs[i]]++;
    return rc ? -1 : 0;
}

int model_cache_copy(Model *m, int from, int to, LfError *err) {
    if (cache_check(m, from, err) || cache_check(m, to, err)) return -1;
    size_t W = m->arch->cache_width(m), used = (size_t)m->cached[from] * W;
    for (int b = 0; b < 2 * m->cfg.num_layers && from != to; b++) {
        float *block = m->kv_cache + (size_t)b * cache_block(m);
        m->ops->copy(block + (size_t)to * m->cache_len * W, block + (size_t)from * m->cache_len * W,
                     used * sizeof(float));
    }
    m->cached[to] = m->cached[from];
    return m->ops->status(err);
}

/* ------------------------------------------------------------------------------------ */
/* saving                                                                               */

/* W[out,in] += scale * B[out,R] @ A[R,in], on host copies. */
static void merge_lora(float *W, const float *A, const float *Bm, float scale, int out, int in,
                       int R) {
    for (int o = 0; o < out; o++)
        for (int r = 0; r < R; r++) {
            float s = scale * Bm[(size_t)o * R + r];
            const float *a = A + (size_t)r * in;
            float *w = W + (size_t)o * in;
            for (int i = 0; i < in; i++) w[i] += s * a[i];
        }
}

/* The token embedding's adapter merged as PEFT merges it: table[V,C] += scale * AT[V,R] @ B^T
 * (AT: A as loraft holds it; B [C,R]), merge_lora's sum with AT for B and B^T for A. */
static int merge_embedding_lora(const Model *m, float **slot, LfError *err) {
    const Lora *lo = &m->embedding_lora;
    int V = (int)lo->A->shape[0], C = (int)lo->B->shape[0], R = lo->r;
    float *BT = malloc((size_t)C * R * sizeof *BT);
    if (!BT) return lf_fail(err, "out of memory");
    transpose_f32(BT, slot[lo->B - m->params], C, R);
    merge_lora(slot[m->word_embedding - m->params], BT, slot[lo->A - m->params], lo->scale, V, C,
               R);
    free(BT);
    return 0;
}

/* Trained token rows merged as peft merges them: the rows ids of the table W [V,C] replaced. */
static void merge_token_rows(const Model *m, float **slot, const TokenRows *tr, const int *ids,
                             float *W) {
    size_t C = (size_t)tr->rows->shape[1];
    for (int k = 0; k < tr->k; k++)
        memcpy(W + (size_t)ids[k] * C, slot[tr->rows - m->params] + k * C, C * sizeof(float));
}

/* DoRA merged as PEFT merges it: each row of W (already W + s B A) times mag / its norm. */
static void merge_dora(float *W, const float *mag, int out, int in) {
    for (int o = 0; o < out; o++) {
        float *w = W + (size_t)o * in;
        double sum = 0;
        for (int i = 0; i < in; i++) sum += (double)w[i] * w[i];
        float c = mag[o] / (float)sqrt(sum);
        for (int i = 0; i < in; i++) w[i] *= c;
    }
}

/* Packed weights, dequantised on the host into out (quant.c: the same bits as
 * dequantize_rows), one after the other in table order; slot[i] points at params[i]'s. */
static int unpack_to_host(Model *m, float *out, float **slot, LfError *err) {
    uint8_t *bytes = malloc(m->n_packed_bytes + 1);
    if (!bytes) return lf_fail(err, "out of memory for %zu packed bytes", m->n_packed_bytes);
    if (m->n_packed_bytes) m->ops->download(bytes, m->packed, m->n_packed_bytes);
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (!p->packed) continue;
        const uint8_t *src = bytes + ((uint8_t *)p->packed - (uint8_t *)m->packed);
        for (int64_t r = 0; r < p->shape[0]; r++)
            quant_dequantize(p->dtype, src + r * packed_stride(p), out + r * p->shape[1],
                             p->shape[1]);
        slot[i] = out;
        out += p->numel;
    }
    free(bytes);
    return 0;
}

float *model_host_weights(Model *m, int merge, float ***slot, float **head, LfError *err) {
    int untie = merge && model_merge_unties(m);
    if (head) *head = NULL;
    if (untie && !head)
        return lf_fail(err, "internal: a merge that unties the head, no head"), NULL;
    if (untie && m->cfg.arch == ARCH_GPT2) {
        lf_fail(err,
                "the adapter on '%s' cannot be merged: GPT-2's LM head is its token embedding "
                "(loraft's and llama.cpp's GPT-2 have no head of their own), so merging would "
                "move %s too; use the adapter as it is (loraft eval / generate --adapter)",
                m->embedding_lora.A ? m->word_embedding->name : "lm_head",
                m->embedding_lora.A ? "the head" : "the embedding");
        return NULL;
    }
    size_t unpacked = 0; /* f32 values (with the gaps between them), the unpacked, the head */
    for (int i = 0; i < m->n_params; i++) unpacked += m->params[i].packed ? m->params[i].numel : 0;
    size_t head_n = untie ? m->word_embedding->numel : 0;
    float *host = malloc((m->n_values + unpacked + head_n) * sizeof(float));
    *slot = calloc(m->n_params, sizeof **slot);
    int rc = host && *slot ? unpack_to_host(m, host + m->n_values, *slot, err)
                           : lf_fail(err, "out of memory for a host copy of %zu weights", m->n_all);
    if (rc) {
        free(host), free(*slot), *slot = NULL;
        return NULL;
    }
    m->ops->download(host, m->values, m->n_values * sizeof(float));
    for (int i = 0; i < m->n_params; i++)
        if (!m->params[i].packed) (*slot)[i] = host + (m->params[i].value - m->values);
    if (untie) { /* the head: the table as loaded, before either adapter */
        *head = host + m->n_values + unpacked;
        memcpy(*head, (*slot)[m->word_embedding - m->params], head_n * sizeof(float));
    }
    for (int i = 0; merge && i < m->n_loras; i++) {
        const Lora *lo = &m->loras[i];
        float *W = untie && lo->base == m->head ? *head : (*slot)[lo->base->w - m->params];
        merge_lora(W, (*slot)[lo->A - m->params], (*slot)[lo->B - m->params], lo->scale,
                   lo->base->out, lo->base->in, lo->r);
        if (lo->mag) merge_dora(W, (*slot)[lo->mag - m->params], lo->base->out, lo->base->in);
    }
    if (merge && m->embedding_lora.A && merge_embedding_lora(m, *slot, err)) {
        free(host), free(*slot), *slot = NULL;
        return NULL;
    }
    if (merge && m->token_rows.rows)
        merge_token_rows(m, *slot, &m->token_rows, m->spec.token_indices,
                         (*slot)[m->word_embedding - m->params]);
    if (merge && m->head_token_rows.rows)
        merge_token_rows(m, *slot, &m->head_token_rows, m->spec.head_token_indices,
                         untie ? *head : (*slot)[m->head->w - m->params]);
    return host;
}

/* In the checkpoint's layout: Conv1D weights transposed into conv. */
int model_save_weights(Model *m, const char *path, int merge, LfError *err) {
    float **slot, *head;
    float *host = model_host_weights(m, merge, &slot, &head, err);
    size_t n_conv = 0;
    for (int i = 0; i < m->n_params; i++) n_conv += m->params[i].hf_transposed * m->params[i].numel;
    StEntry *entries = host ? calloc(m->n_params + 1, sizeof *entries) : NULL;
    float *conv = host ? malloc((n_conv + 1) * sizeof *conv) : NULL, *next = conv;
    int n = 0, rc = !host ? -1 : !entries || !conv ? lf_fail(err, "out of memory") : 0;
    for (int i = 0; !rc && i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (!p->in_checkpoint) continue;
        StEntry *e = &entries[n++];
        *e = (StEntry){p->name, ST_F32, p->ndim, {p->shape[0], p->shape[1]}, slot[i]};
        if (!p->hf_transposed) continue;
        transpose_f32(next, slot[i], p->shape[0], p->shape[1]);
        *e = (StEntry){p->name, ST_F32, 2, {p->shape[1], p->shape[0]}, next};
        next += p->numel;
    }
    const Param *table = m->word_embedding;
    if (!rc && head)
        entries[n++] =
            (StEntry){"lm_head.weight", ST_F32, 2, {table->shape[0], table->shape[1]}, head};
    static const char *const meta[] = {"format", "pt", NULL};
    if (!rc) rc = safetensors_write(path, entries, n, meta, err);
    free(host);
    free(slot);
    free(conv);
    free(entries);
    return rc;
}
