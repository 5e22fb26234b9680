/* rollout.c: RLOO's and GRPO's batches, sampled by the policy and scored by the reward functions
 * (rollout.h). */
#include "loraft/rollout.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/lm_data.h" /* LM_IGNORE */
#include "loraft/objective.h"
#include "loraft/rng.h"

int rollout_init(Rollout *ro, const RolloutScoring *score, const GenStops *stops,
                 const SampleConfig *sample, int k, int max_new, int32_t pad, int mask_cut,
                 int max_prompts, int max_prompt_len, int slots, LfError *err) {
    *ro = (Rollout){.score = *score,
                    .stops = *stops,
                    .sample = *sample,
                    .k = k,
                    .max_new = max_new,
                    .mask_cut = mask_cut,
                    .max_prompts = max_prompts,
                    .max_len = max_prompt_len + max_new,
                    .slots = slots,
                    .pad = pad};
    int max_len = ro->max_len; /* for the message: rollout_free clears ro */
    size_t rows = (size_t)max_prompts * k * slots, cells = rows * (size_t)max_len;
    ro->ids = malloc(cells * sizeof *ro->ids);
    ro->mask = malloc(cells * sizeof *ro->mask);
    ro->labels = malloc(cells * sizeof *ro->labels);
    ro->reward_labels = malloc(cells * sizeof *ro->reward_labels);
    ro->index = malloc(rows * sizeof *ro->index);
    ro->rewards = malloc(rows * sizeof *ro->rewards);
    ro->per_func = malloc(rows * score->funcs.n * sizeof *ro->per_func);
    ro->scratch = malloc((size_t)max_new * sizeof *ro->scratch);
    if (ro->ids && ro->mask && ro->labels && ro->reward_labels && ro->index && ro->rewards &&
        ro->per_func && ro->scratch)
        return 0;
    rollout_free(ro);
    return lf_fail(err, "out of memory for %zu rollout rows of %d tokens", rows, max_len);
}

void rollout_free(Rollout *ro) {
    free(ro->ids);
    free(ro->mask);
    free(ro->labels);
    free(ro->reward_labels);
    free(ro->index);
    free(ro->rewards);
    free(ro->per_func);
    free(ro->scratch);
    memset(ro, 0, sizeof *ro);
}

/* One slot's buffers. */
typedef struct Slot {
    int32_t *ids, *mask, *labels, *reward_labels;
    int *index;
    float *rewards, *per_func;
} Slot;

static Slot slot_of(const Rollout *ro, int slot) {
    size_t at = rollout_first_row(ro, slot), cell = at * (size_t)ro->max_len;
    return (Slot){ro->ids + cell,
                  ro->mask + cell,
                  ro->labels + cell,
                  ro->reward_labels + cell,
                  ro->index + at,
                  ro->rewards + at,
                  ro->per_func + at * ro->score.funcs.n};
}

/* gen_batch's tokens into each row of the slot's ids (at stride max_len), after its prompt. */
typedef struct Sink {
    int32_t *ids;
    int *len, max_len;
} Sink;

static int sink_emit(void *ctx, int row, int32_t id) {
    Sink *s = ctx;
    s->ids[(size_t)row * s->max_len + s->len[row]++] = id;
    return 0; /* gen_batch stops at max_new */
}

/* Rows b*k .. b*k+k-1: prompt b of the batch and k sampled completions, each with its stop id;
 * len[] their lengths, P[] their prompts'. */
static int sample_rows(Rollout *ro, const Slot *sl, Model *policy, const Batch *prompts,
                       uint64_t seed, int *len, int *P, int *cut, LfError *err) {
    int rows = prompts->B * ro->k;
    GenPrompt gp[OPS_RL_MAX_ROWS];
    GenStats gs[OPS_RL_MAX_ROWS];
    uint64_t seeds[OPS_RL_MAX_ROWS];
    for (int r = 0; r < rows; r++) {
        int b = r / ro->k;
        const int32_t *ids = prompts->ids + (size_t)b * prompts->T,
                      *m = prompts->mask + (size_t)b * prompts->T;
        P[r] = 0;
        while (P[r] < prompts->T && m[P[r]]) P[r]++;
        memcpy(sl->ids + (size_t)r * ro->max_len, ids, (size_t)P[r] * sizeof *ids);
        gp[r] = (GenPrompt){ids, P[r]}; /* the group's rows share it: prefilled once */
        seeds[r] = rng_hash(seed, r), len[r] = P[r];
    }
    Sampler *s;
    Sink sink = {sl->ids, len, ro->max_len};
    if (sampler_create(&s, &ro->sample, policy->cfg.vocab_size, err)) return -1;
    int rc =
        gen_batch(policy, s, seeds, &ro->stops, gp, rows, ro->max_new, sink_emit, &sink, gs, err);
    sampler_free(s);
    for (int r = 0; !rc && r < rows; r++) {
        if (gs[r].stop >= 0) sl->ids[(size_t)r * ro->max_len + len[r]++] = gs[r].stop;
        cut[r] = gs[r].stop < 0;
    }
    return rc;
}

/* Rows at stride max_len of lengths len[] (prompts of P[]) packed at stride T, padded, masked and
 * labelled for both models (a cut completion unlabelled under mask_cut). */
static void pack_rows(const Rollout *ro, const Slot *sl, const int *len, const int *P,
                      const int *cut, int rows, int T) {
    for (int r = 0; r < rows; r++) {
        int32_t *dst = sl->ids + (size_t)r * T;
        memmove(dst, sl->ids + (size_t)r * ro->max_len, (size_t)len[r] * sizeof *dst);
        for (int t = 0; t < T; t++) {
            size_t c = (size_t)r * T + t;
            int in = t < len[r];
            if (!in) dst[t] = ro->pad;
            sl->mask[c] = in;
            sl->labels[c] = in && t >= P[r] && !(ro->mask_cut && cut[r]) ? dst[t] : LM_IGNORE;
            sl->reward_labels[c] = in ? dst[t] : LM_IGNORE;
        }
        sl->index[r] = r;
    }
}

/* Function f's rewards: each row's score by the reward model, into column f of per_func. */
static int score_model(const Rollout *ro, const Slot *sl, int f, int rows, int T, LfError *err) {
    Model *rm = ro->score.reward;
    int n = ro->score.funcs.n;
    if (model_set_batch(rm, sl->ids, NULL, sl->mask, NULL, rows, T, err) ||
        model_forward(rm, 0, NULL, err))
        return -1;
    for (int r = 0; r < rows; r++) {
        int t = reward_last_token(sl->reward_labels + (size_t)r * T, T, rm->cfg.pad_token_id);
        float *x = &sl->per_func[(size_t)r * n + f];
        if (model_lm_logits(rm, r * T + t, 1, x, err)) return -1;
        if (!isfinite(*x))
            return lf_fail(err,
                           "the reward model scored completion %d %g: its weights are not "
                           "finite",
                           r, (double)*x);
    }
    return 0;
}

/* The reward command's request for the rows (TRL's reward function's arguments): prompts (each
 * record's "prompt"), completions, completion_ids, and every other field of the records as a
 * column (null where a record lacks it). */
static char *command_request(const Rollout *ro, const Slot *sl, const Batch *prompts,
                             char *const *records, char *const *texts, const int *len, const int *P,
                             int T, LfError *err) {
    int rows = prompts->B * ro->k;
    cJSON *req = cJSON_CreateObject(), *recs[OPS_RL_MAX_ROWS] = {NULL};
    cJSON *completions = cJSON_AddArrayToObject(req, "completions");
    cJSON *ids = cJSON_AddArrayToObject(req, "completion_ids");
    char *text = NULL;
    int ok = req && completions && ids;
    for (int b = 0; ok && b < prompts->B; b++) {
        recs[b] = cJSON_Parse(records[prompts->index[b]]);
        ok = recs[b] != NULL;
    }
    for (int r = 0; ok && r < rows; r++) {
        const int32_t *c = sl->ids + (size_t)r * T + P[r];
        cJSON *row = cJSON_CreateArray();
        for (int t = 0; row && t < len[r] - P[r]; t++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber(c[t]));
        ok = row && cJSON_AddItemToArray(ids, row) &&
             cJSON_AddItemToArray(completions, cJSON_CreateString(texts[r]));
    }
    /* the columns, in the first record's order */
    for (const cJSON *field = ok ? recs[0]->child : NULL; ok && field; field = field->next) {
        int is_prompt = !strcmp(field->string, "prompt");
        cJSON *col = cJSON_AddArrayToObject(req, is_prompt ? "prompts" : field->string);
        for (int r = 0; col && r < rows; r++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(recs[r / ro->k], field->string);
            cJSON_AddItemToArray(col, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
        }
        ok = col != NULL;
    }
    if (ok) text = cJSON_PrintUnformatted(req);
    for (int b = 0; b < prompts->B; b++) cJSON_Delete(recs[b]);
    cJSON_Delete(req);
    if (!text) lf_fail(err, "out of memory for the reward command's request");
    return text;
}

/* Function f's rewards by the reward command, into column f of per_func. */
static int score_command(const Rollout *ro, const Slot *sl, int f, const Batch *prompts,
                         char *const *records, char *const *texts, const int *len, const int *P,
                         int T, LfError *err) {
    int rows = prompts->B * ro->k, n = ro->score.funcs.n;
    float got[OPS_RL_MAX_ROWS];
    if (!records) return lf_fail(err, "the reward command needs the prompts' records");
    char *req = command_request(ro, sl, prompts, records, texts, len, P, T, err);
    if (!req) return -1;
    int rc = reward_command_score(ro->score.command, req, rows, got, err);
    free(req);
    for (int r = 0; !rc && r < rows; r++) sl->per_func[(size_t)r * n + f] = got[r];
    return rc;
}

/* Every function's rewards of the rows (packed at stride T), into per_func, and their sums into
 * the slot's rewards; texts[] the rows' completions decoded, where a function reads them. */
static int score_rows(const Rollout *ro, const Slot *sl, const Batch *prompts, char *const *records,
                      const int *len, const int *P, int T, char **texts, LfError *err) {
    const RewardFuncs *fs = &ro->score.funcs;
    int rows = prompts->B * ro->k, rc = 0;
    int text = reward_funcs_has(fs, REWARD_COMMAND) || reward_funcs_has(fs, REWARD_THINK_FORMAT);
    for (int r = 0; !rc && text && r < rows; r++) {
        size_t n;
        rc = bpe_decode(ro->score.tokenizer, sl->ids + (size_t)r * T + P[r],
                        (size_t)(len[r] - P[r]), 1, &texts[r], &n, err);
    }
    for (int f = 0; !rc && f < fs->n; f++) {
        if (fs->kind[f] == REWARD_MODEL)
            rc = score_model(ro, sl, f, rows, T, err);
        else if (fs->kind[f] == REWARD_COMMAND)
            rc = score_command(ro, sl, f, prompts, records, texts, len, P, T, err);
        else
            for (int r = 0; r < rows; r++)
                sl->per_func[(size_t)r * fs->n + f] = reward_builtin(
                    fs, f, sl->ids + (size_t)r * T + P[r], len[r] - P[r], texts[r], ro->scratch);
    }
    if (!rc) reward_combine(fs, sl->per_func, rows, ro->k, sl->rewards);
    return rc;
}

/* The batch's figures for the log: each function's rewards and their weighted sums. */
static void batch_stats(const Rollout *ro, const Slot *sl, int rows, RolloutBatch *st) {
    const RewardFuncs *fs = &ro->score.funcs;
    for (int r = 0; r < rows; r++) {
        const float *x = sl->per_func + (size_t)r * fs->n;
        double w = reward_weighted(fs, x);
        if (!isnan(w)) st->scored++, st->reward += w, st->reward_sq += w * w;
        for (int f = 0; f < fs->n; f++)
            if (!isnan(x[f]))
                st->func_sum[f] += x[f], st->func_sq[f] += (double)x[f] * x[f], st->func_n[f]++;
    }
}

void rollout_batch_add(RolloutBatch *sum, const RolloutBatch *b) {
    sum->rows += b->rows, sum->scored += b->scored;
    sum->reward += b->reward, sum->reward_sq += b->reward_sq;
    sum->completion_tokens += b->completion_tokens, sum->clipped += b->clipped;
    for (int f = 0; f < REWARD_MAX_FUNCS; f++)
        sum->func_sum[f] += b->func_sum[f], sum->func_sq[f] += b->func_sq[f],
            sum->func_n[f] += b->func_n[f];
}

int rollout_batch(Rollout *ro, int slot, Model *policy, const Batch *prompts, char *const *records,
                  uint64_t seed, Batch *out, RolloutBatch *st, LfError *err) {
    int rows = prompts->B * ro->k, T = 0, clipped = 0;
    int len[OPS_RL_MAX_ROWS], P[OPS_RL_MAX_ROWS], cut[OPS_RL_MAX_ROWS];
    char *texts[OPS_RL_MAX_ROWS] = {NULL};
    long tokens = 0;
    if (prompts->B > ro->max_prompts)
        return lf_fail(err, "a batch of %d prompts: the rollout holds %d", prompts->B,
                       ro->max_prompts);
    if (slot < 0 || slot >= ro->slots)
        return lf_fail(err, "rollout slot %d: the rollout has %d", slot, ro->slots);
    Slot sl = slot_of(ro, slot);
    if (sample_rows(ro, &sl, policy, prompts, seed, len, P, cut, err)) return -1;
    for (int r = 0; r < rows; r++) {
        tokens += len[r] - P[r], clipped += cut[r];
        if (len[r] > T) T = len[r];
    }
    pack_rows(ro, &sl, len, P, cut, rows, T);
    int rc = score_rows(ro, &sl, prompts, records, len, P, T, texts, err);
    for (int r = 0; r < rows; r++) free(texts[r]);
    if (rc) return -1;
    *out = (Batch){
        .B = rows, .T = T, .ids = sl.ids, .mask = sl.mask, .labels = sl.labels, .index = sl.index};
    for (int r = 0; r < rows; r++) out->n_tokens += len[r];
    if (!st) return 0;
    *st = (RolloutBatch){.rows = rows, .completion_tokens = tokens, .clipped = clipped};
    batch_stats(ro, &sl, rows, st);
    return 0;
}
