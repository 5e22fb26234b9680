/* trainer.c: the fine-tuning loop (see trainer.h). Host-side orchestration only: every
 * tensor operation goes through the model and the op table. The data and the evaluation
 * follow model.task: labelled texts and accuracy / F1 for classification, a packed corpus
 * and perplexity for causal-lm (lm_data.h), instruction / answer rows with the loss on the
 * answer for sft (sft_data.h: the causal-LM objective over other labels) plus greedy answers to
 * a few validation prompts at each evaluation, preference pairs and reward accuracy for dpo and
 * reward (pref_data.h), prompts continued by the policy and scored by a reward model for rloo
 * (rollout.h). */
#include "loraft/trainer.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loraft/checkpoint.h"
#include "loraft/data.h"
#include "loraft/data_parallel.h"
#include "loraft/fileio.h"
#include "loraft/generate.h"
#include "loraft/lm_data.h"
#include "loraft/metrics.h"
#include "loraft/model.h"
#include "loraft/objective.h"
#include "loraft/quant.h"
#include "loraft/optimizer.h"
#include "loraft/pref_data.h"
#include "loraft/progress.h"
#include "loraft/rng.h"
#include "loraft/rollout.h"
#include "loraft/rundir.h"
#include "loraft/sft_data.h"
#include "loraft/text.h"

/* A mean cross-entropy above this is reported as diverging (chance level is ln K, under
 * 9 for 4096 classes); documented in docs/CONFIG.md. */
#define LOSS_WARN 1e4

/* The most totals a step or an evaluation other than a classifier's sums over the devices. */
enum { EVAL_TOTALS = 6 };

/* One split's batches, whatever the task: labelled examples through a Batcher, corpus
 * blocks / rows through an LmLoader (labels per token), or preference pairs (RLOO's prompts)
 * through a PrefLoader (the pair feed). */
typedef struct Feed {
    int lm, pairs;
    Dataset ds;
    TokenizedSet ts; /* classification */
    Batcher b;
    LmSet set; /* causal-lm, sft */
    LmLoader l;
    PrefSet pset; /* dpo, reward, rloo, grpo */
    PrefLoader pl;
    float *ref; /* dpo: [rows] the reference policy's log-prob of each row, NaN until computed */
} Feed;

static void feed_start(Feed *f, uint64_t seed, int epoch, int shuffle, int bucket) {
    if (f->pairs)
        pref_loader_start_epoch(&f->pl, seed, epoch, shuffle);
    else if (f->lm)
        lm_loader_start_epoch(&f->l, seed, epoch, shuffle, bucket);
    else
        batcher_start_epoch(&f->b, seed, epoch, shuffle, bucket);
}

static int feed_next(Feed *f, Batch *out) {
    if (f->pairs) return pref_loader_next(&f->pl, out);
    if (!f->lm) return batcher_next(&f->b, out);
    LmBatch lb;
    if (!lm_loader_next(&f->l, &lb)) return 0;
    *out = (Batch){lb.B,
                   lb.T,
                   (int32_t *)lb.ids,
                   NULL,
                   (int32_t *)lb.mask,
                   lb.labels,
                   (int *)lb.index,
                   (int)lb.n_tokens};
    return 1;
}

static int feed_num_batches(const Feed *f) {
    if (f->pairs) return pref_loader_num_batches(&f->pl);
    return f->lm ? lm_loader_num_batches(&f->l) : batcher_num_batches(&f->b);
}

static int feed_max_len(const Feed *f) {
    if (f->pairs) return f->pset.rows.max_len;
    return f->lm ? f->set.rows.max_len : f->ts.max_len;
}

static int feed_rows(const Feed *f) {
    if (f->pairs) return f->pset.rows.n;
    return f->lm ? f->set.rows.n : f->ts.n;
}

static void feed_free(Feed *f) {
    if (f->pairs) {
        pref_loader_free(&f->pl);
        pref_set_free(&f->pset);
        free(f->ref);
    } else if (f->lm) {
        lm_loader_free(&f->l);
        lm_set_free(&f->set);
    } else {
        batcher_free(&f->b);
        tokenized_set_free(&f->ts);
        dataset_free(&f->ds);
    }
}

/* RLOO and GRPO: the batches of an optimizer step (its window), sampled and scored together at
 * the step's start (TRL's generation batch), then trained on `passes` steps in a row
 * (train.num_iterations); for a later pass each token (RLOO: each row) is weighed by its ratio to
 * the sampling policy, whose per-token losses the first pass leaves (old), as GRPO's leaves the
 * reference's (ref: the adapters-off forward is run once a generation). RLOO's KL penalty is in
 * its rewards: each row's log-probs, the sampler's and the reference's, are taken as it is
 * sampled (logps, ref_logps), so that the advantages span the generation. */
typedef struct Generation {
    Batch *batches; /* [window]: rollout slots 0 .. n - 1 */
    int n, next;    /* batches in it, the next to train */
    int pass, left; /* passes done over it, still to come */
    float *rewards; /* [window * max rows]: its batches' in turn, rows of them */
    int rows;
    long tokens; /* the completion tokens it trains on */
    float *old;  /* num_iterations > 1: [window * old_stride], old_stride a batch's cells */
    float *ref;  /* grpo's with a KL penalty: the reference's per-token losses, the same way */
    size_t old_stride;
    float *logps, *ref_logps; /* rloo with a KL penalty: [window * max rows] each, in turn */
} Generation;

/* grpo's entropy bonus (TRL's entropy_coef, use_adaptive_entropy): the coefficient, and this
 * step's sums of the entropies where the bonus acts and of their tokens. */
typedef struct EntropyControl {
    double coef, sum, n;
} EntropyControl;

typedef struct Run {
    const TrainConfig *cfg;
    DpRank *dp; /* this process's rank of model.devices; rank 0 logs and saves */
    const Ops *ops;
    FILE *out;
    ModelConfig mcfg;
    TextTokenizer tok;
    Feed train_f, val_f;
    Task task;
    int causal_lm;     /* model.task causal-lm or sft: the causal-LM objective */
    int sft;           /* model.task sft: instruction / answer rows */
    SftFormat sft_fmt; /* sft: how examples become rows, where answers stop */
    int pairs;         /* model.task dpo or reward: batches of preference pairs */
    int rl;            /* model.task rloo or grpo: batches of prompts, rolled out (rollout.h) */
    Model model;
    RewardFuncs funcs;      /* rloo, grpo: what scores the completions */
    Model reward;           /* rloo, grpo: function model's reward model */
    RewardCommand command;  /* rloo, grpo: function command's program */
    Rollout rollout;        /* rloo, grpo: a slot per batch of a step, and the evaluation's */
    Generation gen;         /* rloo, grpo: the step's batches, sampled together */
    RolloutBatch rolled;    /* rloo, grpo: the completions sampled since the last log line */
    RlooStats trained;      /* rloo, grpo: the sums of the batches trained since then */
    EntropyControl entropy; /* grpo: the entropy bonus's coefficient */
    AdamW opt;
    RunLog log;
    RunDir dir;
    int *preds, *labels; /* [validation examples] */
    float *ref_batch;    /* dpo: [model rows] the reference log-probs of the current batch */
    float *logits;       /* [eval batch * classes], host */
    /* totals summed over the devices (a step's loss sum, batches and tokens; an evaluation's
     * sums and counts, a classifier's predictions): [n_totals] on the host, and in backend
     * memory under model.devices > 1 */
    double *totals, *totals_dev;
    int n_totals;
    int has_train, has_val, has_model, has_reward, has_opt, has_log, joined;
    int saved;  /* OUT/last holds a checkpoint */
    int warned; /* the diverging-loss warning was printed for training */
} Run;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 1234567 -> "1,234,567", as PEFT prints counts. */
static const char *with_commas(size_t n, char *buf) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

static const char *tokenizer_dir(const TrainConfig *c) {
    return c->tokenizer[0] ? c->tokenizer : c->model;
}

static void spec_from_config(const TrainConfig *c, TrainSpec *s, LfError *err, int *rc) {
    train_spec_defaults(s);
    *rc = strategy_parse(c->strategy, &s->strategy, err) ||
          base_dtype_parse(c->base_dtype, &s->base_dtype, err) ||
          precision_parse(c->precision, &s->precision, err) ||
          attention_parse(c->attention, &s->attention, err) ||
          lora_bias_parse(c->bias, &s->bias, err) ||
          lora_init_parse(c->init_lora_weights, &s->init, err);
    s->r = c->r;
    s->alpha = c->alpha;
    s->dropout = c->dropout;
    s->use_rslora = c->use_rslora;
    s->use_dora = c->use_dora;
    s->gradient_checkpointing = c->gradient_checkpointing;
    s->neftune_alpha = c->neftune_noise_alpha;
    if (c->n_targets == 1 && !strcasecmp(c->target_modules[0], LORA_ALL_LINEAR))
        strcpy(s->target_regex, LORA_ALL_LINEAR); /* PEFT's string form */
    else
        for (int i = 0; i < c->n_targets; i++)
            memcpy(s->targets[s->n_targets++], c->target_modules[i], sizeof s->targets[i]);
    for (int i = 0; i < c->n_exclude; i++)
        memcpy(s->exclude[s->n_exclude++], c->exclude_modules[i], sizeof s->exclude[i]);
    s->n_modules_to_save = c->n_modules_to_save;
    for (int i = 0; i < c->n_modules_to_save; i++)
        memcpy(s->modules_to_save[i], c->modules_to_save[i], sizeof s->modules_to_save[i]);
    s->n_rank_pattern = c->n_rank_pattern;
    memcpy(s->rank_pattern, c->rank_pattern, sizeof s->rank_pattern);
    s->n_alpha_pattern = c->n_alpha_pattern;
    memcpy(s->alpha_pattern, c->alpha_pattern, sizeof s->alpha_pattern);
    s->n_layers = c->n_layers;
    memcpy(s->layers, c->layers_to_transform, sizeof s->layers);
    s->n_layers_pattern = c->n_layers_pattern;
    memcpy(s->layers_pattern, c->layers_pattern, sizeof s->layers_pattern);
    s->n_token_indices = c->n_token_indices;
    memcpy(s->token_indices, c->trainable_token_indices, sizeof s->token_indices);
    s->n_head_token_indices = c->n_head_token_indices;
    memcpy(s->head_token_indices, c->lm_head_token_indices, sizeof s->head_token_indices);
}

/* The label set: the config's names or count override the checkpoint's. */
static int apply_labels(const TrainConfig *c, ModelConfig *m, LfError *err) {
    if (c->n_labels) {
        if (c->num_labels && c->num_labels != c->n_labels)
            return lf_fail(err, "model.num_labels %d disagrees with the %d names in model.labels",
                           c->num_labels, c->n_labels);
        m->num_labels = c->n_labels;
        for (int i = 0; i < c->n_labels; i++)
            memcpy(m->labels[i], c->labels[i], sizeof m->labels[i]);
    } else if (c->num_labels && c->num_labels != m->num_labels) {
        m->num_labels = c->num_labels;
        for (int i = 0; i < m->num_labels; i++)
            snprintf(m->labels[i], sizeof m->labels[i], "LABEL_%d", i);
    }
    return 0;
}

/* Labelled examples (classification). */
static int load_split(Run *r, Feed *f, const char *path, int limit, int batch_size, LfError *err) {
    const TrainConfig *c = r->cfg;
    const char *names[MAX_LABELS];
    for (int i = 0; i < r->mcfg.num_labels; i++) names[i] = r->mcfg.labels[i];
    DatasetSpec spec = {path,  c->format, c->text_column, c->label_column, r->mcfg.num_labels,
                        names, limit};
    if (r->tok.kind != TEXT_WORDPIECE)
        return lf_fail(err, "model.task classification needs a WordPiece (BERT) tokenizer");
    if (dataset_load(&f->ds, &spec, err)) return -1;
    double t0 = now_seconds();
    TokenizedSet *ts = &f->ts;
    if (tokenized_set_build(ts, &f->ds, r->tok.wordpiece, c->max_length, c->truncate_left, err))
        return -1;
    long tokens = (long)ts->offsets[ts->n];
    fprintf(r->out, "data: %s: %d examples, %ld tokens (mean %.0f, max %d) tokenized in %.2f s\n",
            path, f->ds.n, tokens, (double)tokens / (f->ds.n ? f->ds.n : 1), ts->max_len,
            now_seconds() - t0);
    int32_t pad = tokenizer_special(r->tok.wordpiece, TOK_PAD);
    return batcher_init(&f->b, ts, batch_size, pad, err);
}

/* A corpus (causal-lm): training packs it into blocks of max_length, evaluation scores each
 * text alone; a held-out chapter splits one corpus into the two. */
static int load_corpus(Run *r, Feed *f, const char *path, int train, int batch_size, LfError *err) {
    const TrainConfig *c = r->cfg;
    LmSource src = {.path = path,
                    .format = c->format,
                    .text_column = c->text_column,
                    .unit = !strcmp(c->text_unit, "line")        ? LM_UNIT_LINE
                            : !strcmp(c->text_unit, "paragraph") ? LM_UNIT_PARAGRAPH
                                                                 : LM_UNIT_FILE,
                    .holdout = {c->holdout_chapter ? c->holdout_file : NULL, c->holdout_chapter},
                    .part = !c->holdout_chapter ? LM_PART_ALL
                            : train             ? LM_PART_TRAIN
                                                : LM_PART_HELDOUT};
    LmTexts texts;
    LmSpecials sp;
    double t0 = now_seconds();
    f->lm = 1;
    if (lm_texts_load(&texts, &src, err)) return -1;
    int rc = lm_specials(&sp, &r->tok, err);
    if (!rc && r->mcfg.eos_token_id >= 0) sp.eos = r->mcfg.eos_token_id;
    if (!rc)
        rc = train ? lm_pack(&f->set, &texts, &r->tok, &sp, c->max_length, err)
                   : lm_rows(&f->set, &texts, &r->tok, &sp, c->max_length, err);
    lm_texts_free(&texts);
    if (rc) return -1;
    fprintf(r->out,
            "data: %s%s: %d texts, %lld tokens in %d %s of up to %d (%lld dropped), %.2f s\n", path,
            c->holdout_chapter ? (train ? " less the held-out chapter" : ", held-out chapter") : "",
            f->set.n_texts, (long long)f->set.n_tokens, f->set.rows.n, train ? "blocks" : "rows",
            f->set.rows.max_len, (long long)f->set.n_dropped, now_seconds() - t0);
    return lm_loader_init(&f->l, &f->set, batch_size, sp.eos, err);
}

/* Preference pairs (dpo, reward): a validation_file, or the last holdout_examples records of
 * train_file held out. The pair feed: batch_size pairs per batch, 2 rows each; for rloo
 * batch_size prompts. */
static int load_pairs(Run *r, Feed *f, int train, int batch_size, LfError *err) {
    const TrainConfig *c = r->cfg;
    int split = !c->validation_file[0];
    ChatTemplate chat;
    LmSpecials sp;
    if (c->chat_template[0] && chat_template_by_name(c->chat_template, &chat, err))
        return lf_wrap(err, "data.chat_template");
    if (c->chat_template[0] && r->tok.kind == TEXT_BPE) /* its BOS / EOS text, where rendered */
        chat_template_set_vocab_specials(&chat, r->tok.bpe);
    if (lm_specials(&sp, &r->tok, err)) return -1;
    if (r->mcfg.eos_token_id >= 0) sp.eos = r->mcfg.eos_token_id;
    PrefSpec spec = {.path = train || split ? c->train_file : c->validation_file,
                     .kind = r->rl ? PREF_PROMPTS : PREF_PAIRS,
                     .max_length = r->rl ? c->max_prompt_length + 1 : c->max_length,
                     .max_prompt_length = c->max_prompt_length,
                     .limit = train ? c->train_limit : c->validation_limit,
                     .holdout = split ? c->holdout_examples : 0,
                     .heldout = split && !train,
                     .chat = c->chat_template[0] ? &chat : NULL,
                     .sp = &sp,
                     .keep_records = r->rl && reward_funcs_has(&r->funcs, REWARD_COMMAND)};
    double t0 = now_seconds();
    f->pairs = 1;
    if (pref_set_load(&f->pset, &spec, &r->tok, err)) return -1;
    const TokenizedSet *ts = &f->pset.rows;
    const char *item = r->rl ? "prompts" : "pairs";
    fprintf(r->out, "data: %s%s: %d %s, %lld tokens (max %d, %d %s truncated), %.2f s\n", spec.path,
            split && c->holdout_examples ? (train ? " less the held-out pairs" : ", held-out pairs")
                                         : "",
            f->pset.n_items, item, (long long)ts->offsets[ts->n], ts->max_len, f->pset.n_truncated,
            item, now_seconds() - t0);
    if (r->task == TASK_DPO) {
        if (!(f->ref = malloc((size_t)ts->n * sizeof *f->ref)))
            return lf_fail(err, "out of memory");
        for (int i = 0; i < ts->n; i++) f->ref[i] = NAN;
    }
    return pref_loader_init(&f->pl, &f->pset, batch_size, sp.eos, r->task == TASK_DPO, err);
}

/* ---- sft: its feed and its answers ---- */

/* The chat template (data.chat_template, else the model's) or data.prompt_template. */
static int sft_open(Run *r, LfError *err) {
    const TrainConfig *c = r->cfg;
    ChatTemplate chat = {0};
    if (!c->prompt_template[0] &&
        chat_template_for_model(tokenizer_dir(c), c->chat_template[0] ? c->chat_template : NULL,
                                &chat, err))
        return lf_wrap(err, "%s (set data.chat_template or data.prompt_template)",
                       tokenizer_dir(c));
    return sft_format_init(&r->sft_fmt, &chat, c->prompt_template, &r->tok, r->mcfg.eos_token_id,
                           err);
}

/* Instruction / answer records: one row each (packed for training with data.packing); the
 * validation set is data.validation_file, else the last data.holdout_examples records. */
static int load_sft(Run *r, Feed *f, int train, int batch_size, LfError *err) {
    const TrainConfig *c = r->cfg;
    int held = !c->validation_file[0] && c->holdout_examples > 0;
    SftSource src = {
        .path = train || held ? c->train_file : c->validation_file,
        .columns = {c->instruction_column, c->input_column, c->output_column, c->messages_column},
        .holdout = c->holdout_examples,
        .part = !held   ? LM_PART_ALL
                : train ? LM_PART_TRAIN
                        : LM_PART_HELDOUT,
        .limit = train ? c->train_limit : c->validation_limit};
    double t0 = now_seconds();
    const LmSet *s = &f->set;
    f->lm = 1;
    if (sft_load(&f->set, &src, &r->tok, &r->sft_fmt, c->max_length, train && c->packing, err))
        return -1;
    fprintf(r->out,
            "data: %s%s: %d examples (%d without an answer within max_length skipped), %lld "
            "tokens in %d rows of up to %d, %lld answer tokens, %.2f s\n",
            src.path, held ? (train ? " less the held-out examples" : ", held-out examples") : "",
            s->n_texts, s->n_skipped, (long long)s->n_tokens, s->rows.n, s->rows.max_len,
            (long long)s->n_predicted, now_seconds() - t0);
    return lm_loader_init(&f->l, s, batch_size, r->sft_fmt.eos >= 0 ? r->sft_fmt.eos : 0, err);
}

/* Example i's answer logged and printed with its prompt and reference answer. */
static int log_answer(Run *r, int step, int i, const char *answer, LfError *err) {
    const LmSet *s = &r->val_f.set;
    int P, len = (int)(s->rows.offsets[i + 1] - s->rows.offsets[i]), rc;
    const int32_t *ids = sft_row_prompt(s, i, &P);
    char *prompt = NULL, *reference = NULL;
    size_t np, nr;
    rc = bpe_decode(r->tok.bpe, ids, P, 0, &prompt, &np, err) ||
         bpe_decode(r->tok.bpe, ids + P, len - P, 1, &reference, &nr, err);
    cJSON *o = rc ? NULL : cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "event", "answer");
        cJSON_AddNumberToObject(o, "step", step);
        cJSON_AddNumberToObject(o, "example", i);
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddStringToObject(o, "reference", reference);
        cJSON_AddStringToObject(o, "answer", answer);
        char *quoted = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "answer"));
        fprintf(r->out, "  answer %d: %s\n", i + 1, quoted ? quoted : answer);
        free(quoted);
        rc = r->has_log ? runlog_write_json(&r->log, o, err) : 0;
        cJSON_Delete(o);
    }
    free(prompt);
    free(reference);
    return rc;
}

/* Greedy answers to the first train.eval_answers validation prompts, a batch's rows at a time
 * side by side (gen_texts): printed, and logged with the prompt and the reference. */
static int log_answers(Run *r, int step, LfError *err) {
    const LmSet *s = &r->val_f.set;
    int n = r->cfg->eval_answers < s->rows.n ? r->cfg->eval_answers : s->rows.n, rc = 0;
    int group = r->model.max_batch;
    GenPrompt *p = malloc((size_t)group * sizeof *p);
    char **answers = calloc((size_t)group, sizeof *answers);
    if (!p || !answers) rc = lf_fail(err, "out of memory");
    for (int i0 = 0; !rc && i0 < n; i0 += group) {
        int k = n - i0 < group ? n - i0 : group;
        for (int j = 0; !rc && j < k; j++) {
            p[j].ids = sft_row_prompt(s, i0 + j, &p[j].n);
            if (p[j].n < 1)
                rc = lf_fail(err, "validation example %d has no prompt to answer", i0 + j + 1);
        }
        SampleConfig greedy = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
        rc = rc || gen_texts(&r->model, &greedy, r->tok.bpe, &r->sft_fmt.stops, p, k,
                             r->cfg->max_new_tokens, answers, NULL, err);
        for (int j = 0; !rc && j < k; j++) rc = log_answer(r, step, i0 + j, answers[j], err);
        for (int j = 0; j < k; j++) free(answers[j]), answers[j] = NULL;
    }
    free(p);
    free(answers);
    return rc;
}

static int load_feed(Run *r, Feed *f, int train, int batch_size, LfError *err) {
    const TrainConfig *c = r->cfg;
    const char *path = train ? c->train_file : c->validation_file;
    if (r->pairs || r->rl) return load_pairs(r, f, train, batch_size, err);
    if (r->sft) return load_sft(r, f, train, batch_size, err);
    if (r->causal_lm) {
        if (!train && c->holdout_chapter) path = c->train_file;
        return load_corpus(r, f, path, train, batch_size, err);
    }
    return load_split(r, f, path, train ? c->train_limit : c->validation_limit, batch_size, err);
}

/* The split's feed, its batches padded as data.pad_to_multiple_of says. */
static int load_data(Run *r, Feed *f, int train, int batch_size, LfError *err) {
    if (load_feed(r, f, train, batch_size, err)) return -1;
    int multiple = r->cfg->pad_to_multiple_of;
    if (f->pairs)
        f->pl.pad_multiple = multiple;
    else if (f->lm)
        f->l.b.pad_multiple = multiple;
    else
        f->b.pad_multiple = multiple;
    return 0;
}

static void run_close(Run *r) {
    rundir_close(&r->dir);
    if (r->has_opt) adamw_free(&r->opt, &r->model);
    if (r->totals_dev) r->ops->free(r->totals_dev);
    if (r->has_model) model_free(&r->model);
    if (r->has_reward) model_free(&r->reward);
    reward_command_stop(&r->command);
    rollout_free(&r->rollout);
    free(r->gen.batches);
    free(r->gen.rewards);
    free(r->gen.old);
    free(r->gen.ref);
    free(r->gen.logps);
    if (r->joined) r->ops->group_leave();
    if (r->has_log) runlog_close(&r->log);
    if (r->has_train) feed_free(&r->train_f);
    feed_free(&r->val_f);
    text_tokenizer_close(&r->tok);
    free(r->preds);
    free(r->labels);
    free(r->logits);
    free(r->ref_batch);
    free(r->totals);
}

/* Everything a run needs, sized once, on dp's device. adapter_dir (eval only) replaces the LoRA
 * spec. */
/* The type of an adapted weight kept in under 6 bits a value (Q4_0, Q4_1, Q5_0, NF4) whose
 * PiSSA or OLoRA split is quantised back to it, else NULL: the residual is rounded a second time
 * (SmolLM2's Q4_1 file starts 0.24 above its base's loss; docs/BENCHMARKS.md). */
static const char *split_requantised(const Model *m) {
    for (int i = 0; init_splits(m->spec.init) && i < m->n_loras; i++) {
        const Param *w = m->loras[i].base->w;
        if (w->packed && 8 * quant_block_bytes(w->dtype) < 6 * quant_block_elems(w->dtype))
            return quant_type_name(w->dtype);
    }
    return NULL;
}

/* RLOO and GRPO, reward function model: the reward model (model.reward_model, with
 * model.reward_adapter) built for a batch's rows of up to max_len tokens. */
static int open_reward_model(Run *r, int max_len, LfError *err) {
    const TrainConfig *c = r->cfg;
    Model *m = &r->model, *rm = &r->reward;
    const char *adapter = c->reward_adapter[0] ? c->reward_adapter : NULL;
    if (model_open(rm, c->reward_model, adapter, BASE_F32, m->spec.precision, r->ops, m->max_batch,
                   max_len, err))
        return lf_wrap(err, "model.reward_model");
    r->has_reward = 1;
    if (rm->spec.task != TASK_REWARD)
        return lf_fail(err,
                       "model.reward_model %s%s%s is not a reward model (a PEFT SEQ_CLS adapter "
                       "on a decoder, or a merged LlamaForSequenceClassification)",
                       c->reward_model, adapter ? " with " : "", adapter ? adapter : "");
    if (rm->cfg.vocab_size != m->cfg.vocab_size)
        return lf_fail(err,
                       "model.reward_model has a vocabulary of %d tokens, the policy %d: the "
                       "reward model reads the policy's token ids and needs its tokenizer",
                       rm->cfg.vocab_size, m->cfg.vocab_size);
    return 0;
}

/* RLOO and GRPO: the reward functions' models and programs, and the rollout that samples the
 * batches of up to max_prompts prompts, rows of up to max_len tokens: a slot for each batch of a
 * step and one for evaluation. */
static int rl_open(Run *r, int max_prompts, int max_len, LfError *err) {
    const TrainConfig *c = r->cfg;
    Model *m = &r->model;
    ChatTemplate chat;
    if (r->tok.kind != TEXT_BPE)
        return lf_fail(err, "model.task %s samples from a decoder: %s has no BPE tokenizer",
                       c->task, tokenizer_dir(c));
    if (c->chat_template[0] && chat_template_by_name(c->chat_template, &chat, err))
        return lf_wrap(err, "data.chat_template");
    int model = reward_funcs_has(&r->funcs, REWARD_MODEL);
    if (model && open_reward_model(r, max_len, err)) return -1;
    if (!model && c->reward_model[0])
        fprintf(r->out, "note: model.reward_model is not used: train.reward_funcs has no model\n");
    if (reward_funcs_has(&r->funcs, REWARD_COMMAND) &&
        reward_command_start(&r->command, c->reward_command, err))
        return lf_wrap(err, "train.reward_command");
    RolloutScoring score = {r->funcs, model ? &r->reward : NULL,
                            reward_funcs_has(&r->funcs, REWARD_COMMAND) ? &r->command : NULL,
                            r->tok.bpe};
    GenStops stops = gen_stops(c->chat_template[0] ? &chat : NULL, r->tok.bpe);
    int32_t pad = m->cfg.eos_token_id > 0 ? m->cfg.eos_token_id : 0; /* masked: any id */
    int mask_cut = r->task == TASK_GRPO && c->mask_truncated_completions;
    SampleConfig sample = {c->temperature, c->top_k, c->top_p, c->min_p, c->repetition_penalty, 0};
    Generation *g = &r->gen;
    g->old_stride = (size_t)m->max_batch * m->max_len;
    g->batches = calloc((size_t)c->grad_accum, sizeof *g->batches);
    g->rewards = malloc((size_t)c->grad_accum * m->max_batch * sizeof *g->rewards);
    int keep_old = c->num_iterations > 1, grpo = r->task == TASK_GRPO;
    int keep_ref = keep_old && grpo && r->model.spec.grpo.beta > 0;
    int row_logps = !grpo && r->model.spec.rloo.beta > 0;
    size_t rows = (size_t)c->grad_accum * m->max_batch;
    if (keep_old) g->old = malloc((size_t)c->grad_accum * g->old_stride * sizeof *g->old);
    if (keep_ref) g->ref = malloc((size_t)c->grad_accum * g->old_stride * sizeof *g->ref);
    if (row_logps) g->logps = malloc(2 * rows * sizeof *g->logps), g->ref_logps = g->logps + rows;
    if (!g->batches || !g->rewards || (keep_old && !g->old) || (keep_ref && !g->ref) ||
        (row_logps && !g->logps))
        return lf_fail(err, "out of memory for a generation of %d batches", c->grad_accum);
    return rollout_init(&r->rollout, &score, &stops, &sample, c->num_generations,
                        c->max_completion_length, pad, mask_cut, max_prompts,
                        max_len - c->max_completion_length, c->grad_accum + 1, err);
}

static int run_open(Run *r, const TrainConfig *c, DpRank *dp, int train, const char *adapter_dir,
                    FILE *out, LfError *err) {
    memset(r, 0, sizeof *r);
    r->cfg = c;
    r->dp = dp;
    r->out = out;
    r->dir.lock_fd = -1;
    r->sft = !strcmp(c->task, "sft");
    r->task = !strcmp(c->task, "causal-lm") || r->sft ? TASK_CAUSAL_LM
              : !strcmp(c->task, "dpo")               ? TASK_DPO
              : !strcmp(c->task, "reward")            ? TASK_REWARD
              : !strcmp(c->task, "rloo")              ? TASK_RLOO
              : !strcmp(c->task, "grpo")              ? TASK_GRPO
                                                      : TASK_CLASSIFICATION;
    r->causal_lm = r->task == TASK_CAUSAL_LM;
    r->pairs = r->task == TASK_DPO || r->task == TASK_REWARD;
    r->rl = r->task == TASK_RLOO || r->task == TASK_GRPO;
    if (r->rl && train_config_reward_funcs(c, &r->funcs, err)) return -1;
    r->has_val = c->validation_file[0] != 0 || (r->causal_lm && !r->sft && c->holdout_chapter) ||
                 ((r->pairs || r->sft || r->rl) && c->holdout_examples);
    if (!train && !r->has_val)
        return lf_fail(err, "data.validation_file is empty: there is nothing to evaluate");
    if (r->causal_lm && strcmp(c->metric_for_best, "eval_loss"))
        return lf_fail(err,
                       "train.metric_for_best '%s' is a classification metric: causal-lm "
                       "picks by eval_loss",
                       c->metric_for_best);
    if ((r->task == TASK_DPO || r->rl) && strcmp(c->strategy, "lora") &&
        strcmp(c->strategy, "tokens"))
        return lf_fail(err, "model.task %s needs lora.strategy lora or tokens: %s", c->task,
                       r->task == TASK_GRPO ? "loraft's RL trains adapters"
                                            : "its reference policy is the model with the "
                                              "adapters switched off");
    if (r->task == TASK_REWARD && strcmp(c->strategy, "lora"))
        return lf_fail(err, "model.task reward needs lora.strategy lora: a reward model is saved "
                            "as a PEFT SEQ_CLS adapter (the score head in modules_to_save)");
    if (r->pairs && !strcmp(c->metric_for_best, "f1"))
        return lf_fail(err, "train.metric_for_best f1: %s picks by eval_loss or accuracy", c->task);
    if (r->rl != !strcmp(c->metric_for_best, "reward") && r->has_val)
        return lf_fail(err,
                       r->rl ? "model.task %s picks its best checkpoint by the held-out "
                               "reward: set train.metric_for_best reward"
                             : "train.metric_for_best reward is RLOO's and GRPO's held-out "
                               "reward; model.task %s picks by eval_loss or accuracy",
                       c->task);
    /* the devices' processes share the cores, for the host's work (tokenizing) */
    int threads = c->threads > 0 ? c->threads : dp->ranks > 1 ? omp_get_num_procs() / dp->ranks : 0;
    if (threads > 0 || dp->ranks > 1) {
        openblas_set_num_threads(threads > 1 ? threads : 1);
        omp_set_num_threads(threads > 1 ? threads : 1);
    }
    const Ops *ops = ops_by_name(c->device, err);
    if (!ops || dp_join(dp, ops, err)) return -1;
    r->ops = ops;
    r->joined = dp->ranks > 1;
    if (model_config_load(&r->mcfg, c->model, err) || apply_labels(c, &r->mcfg, err)) return -1;
    if (text_tokenizer_open(&r->tok, tokenizer_dir(c), err)) return -1;
    if (r->sft && sft_open(r, err)) return -1;
    int bs = c->batch_size, ebs = c->eval_batch_size ? c->eval_batch_size : 2 * c->batch_size;
    int rows = r->pairs ? 2 : r->rl ? c->num_generations : 1; /* model rows per batch item */
    r->has_train = train;
    if (train && load_data(r, &r->train_f, 1, bs, err)) return -1;
    if (r->has_val && load_data(r, &r->val_f, 0, ebs, err)) return -1;
    if (!r->has_val) fprintf(out, "data: no validation_file: no evaluation, no best checkpoint\n");

    TrainSpec spec;
    int rc;
    spec_from_config(c, &spec, err, &rc);
    if (rc) return -1;
    spec.task = r->task;
    if (adapter_dir && adapter_read_config(&spec, NULL, 0, adapter_dir, err)) return -1;
    if (strcmp(objective_for(arch_adapter_task(r->mcfg.arch, spec.task))->task_type,
               objective_for(r->task)->task_type))
        return lf_fail(err, "--adapter %s was trained for another task than model.task %s",
                       adapter_dir, c->task);
    spec.task = r->task; /* a CAUSAL_LM adapter evaluates as dpo too */
    spec.dpo = (DpoSpec){c->dpo_beta, !strcmp(c->dpo_loss, "ipo") ? DPO_IPO : DPO_SIGMOID,
                         c->dpo_label_smoothing};
    float eps_high = c->epsilon_high < 0 ? c->epsilon : c->epsilon_high;
    spec.rloo = (RlooSpec){.beta = c->rloo_beta,
                           .generations = c->num_generations,
                           .normalize = c->normalize_advantages,
                           .iterations = c->num_iterations,
                           .eps_low = c->epsilon,
                           .eps_high = eps_high,
                           .clip = c->n_reward_clip_range == 2,
                           .clip_lo = c->reward_clip_range[0],
                           .clip_hi = c->reward_clip_range[1]};
    GrpoScale scale = r->funcs.normalize_then_sum ? GRPO_SCALE_GENERATION /* GDPO's sums */
                                                  : grpo_scale_named(c->scale_rewards);
    spec.grpo = (GrpoSpec){.beta = c->grpo_beta,
                           .generations = c->num_generations,
                           .loss = grpo_loss_named(c->grpo_loss_type), /* checked by the config */
                           .scale = scale,
                           .max_completion = c->max_completion_length,
                           .iterations = c->num_iterations,
                           .eps_low = c->epsilon,
                           .eps_high = eps_high,
                           .level = !strcmp(c->importance_sampling_level, "sequence")
                                        ? OPS_GRPO_SEQUENCE_MEAN
                                        : OPS_GRPO_TOKEN,
                           .delta = c->delta,
                           .sapo_pos = c->sapo_temperature_pos,
                           .sapo_neg = c->sapo_temperature_neg,
                           .kl_corrected = c->use_bias_correction_kl,
                           .vespo_k = {c->vespo_k[0], c->vespo_k[1]},
                           .vespo_lambda = {c->vespo_lambda[0], c->vespo_lambda[1]},
                           .off_policy = c->off_policy_mask_threshold,
                           .entropy_quantile = (float)(1.0 - c->top_entropy_quantile),
                           /* adaptive control applies none before its first step */
                           .entropy_coef = c->use_adaptive_entropy ? 0.0f : c->entropy_coef,
                           .entropy_bonus = c->entropy_coef != 0 || c->use_adaptive_entropy};
    r->entropy = (EntropyControl){c->entropy_coef, 0, 0};
    if (r->rl) spec.temperature = c->temperature;
    int max_len = r->has_val ? feed_max_len(&r->val_f) : 2;
    if (train && feed_max_len(&r->train_f) > max_len) max_len = feed_max_len(&r->train_f);
    if (r->rl) max_len += c->max_completion_length; /* prompt + completion */
    char missing[2048];
    if (model_create(&r->model, &r->mcfg, &spec, ops, c->model, c->seed,
                     rows * (train ? (bs > ebs ? bs : ebs) : ebs), max_len, missing, sizeof missing,
                     err))
        return -1;
    r->has_model = 1;
    /* head and full checkpoints are model directories: refused now, not at the first save */
    if (train && !strategy_is_adapter(spec.strategy) &&
        model_config_savable(&r->mcfg, c->model, err))
        return lf_wrap(err, "strategy %s saves the model as an HF directory",
                       strategy_name(spec.strategy));
    if (adapter_dir && adapter_load_weights(&r->model, adapter_dir, err)) return -1;
    if (missing[0]) fprintf(out, "model: newly initialised (not in the checkpoint): %s\n", missing);
    size_t trainable = model_trainable_count(&r->model), all = model_all_count(&r->model);
    fprintf(
        out,
        "model: %s %s, %d layers, hidden %d, on %s; strategy %s; base %s, precision %s, attention "
        "%s, %.1f MiB of weights, %.1f MiB of activations%s\n",
        arch_name(r->mcfg.arch), c->model, r->mcfg.num_layers, r->mcfg.hidden_size, ops->name,
        strategy_name(spec.strategy), base_dtype_name(spec.base_dtype),
        precision_name(r->model.spec.precision), attention_name(r->model.spec.attention),
        model_weight_bytes(&r->model) / 1048576.0, model_activation_bytes(&r->model) / 1048576.0,
        spec.gradient_checkpointing ? " (gradient checkpointing)" : "");
    const char *requantised = train ? split_requantised(&r->model) : NULL;
    if (requantised)
        fprintf(out,
                "note: lora.init_lora_weights %s quantises the rest of each adapted weight back to "
                "%s, rounding it a second time (SmolLM2's Q4_1 file: 0.24 in loss before any "
                "training); model.base_dtype bf16 or q8_0 keeps it within 0.005\n",
                lora_init_name(r->model.spec.init), requantised);
    char a[40], b[40];
    if (train)
        fprintf(out, "trainable params: %s || all params: %s || trainable%%: %.4f\n",
                with_commas(trainable, a), with_commas(all, b),
                100.0 * (double)trainable / (double)all);
    if (r->task == TASK_DPO && !(r->ref_batch = malloc((size_t)r->model.max_batch * sizeof(float))))
        return lf_fail(err, "out of memory");
    if (r->rl && rl_open(r, train ? bs > ebs ? bs : ebs : ebs, max_len, err)) return -1;
    int classes = !r->causal_lm && !r->pairs,
        n_val = classes && r->has_val ? feed_rows(&r->val_f) : 0;
    r->n_totals = n_val + 1 > EVAL_TOTALS ? n_val + 1 : EVAL_TOTALS;
    if (!(r->totals = calloc((size_t)r->n_totals, sizeof *r->totals)))
        return lf_fail(err, "out of memory");
    if (dp->ranks > 1 && !(r->totals_dev = ops->alloc((size_t)r->n_totals * sizeof(double))))
        return lf_fail(err, "out of device memory");
    if (!classes) return 0;
    r->preds = malloc((n_val + 1) * sizeof *r->preds);
    r->labels = malloc((n_val + 1) * sizeof *r->labels);
    r->logits = malloc((size_t)ebs * r->mcfg.num_labels * sizeof *r->logits);
    if (!r->preds || !r->labels || !r->logits) return lf_fail(err, "out of memory");
    return 0;
}

/* The index of x's largest of K values; -1 when one is NaN or infinite. */
static int argmax_finite(const float *x, int K) {
    int best = 0;
    for (int j = 0; j < K; j++) {
        if (!isfinite(x[j])) return -1;
        if (x[j] > x[best]) best = j;
    }
    return best;
}

/* v[0..n) (n <= Run.n_totals) summed over the devices in place, in doubles: counts stay exact.
 * One device: as they are. */
static int sum_over_devices(Run *r, double *v, int n, LfError *err) {
    if (r->dp->ranks == 1) return 0;
    const Ops *o = r->ops;
    o->upload(r->totals_dev, v, (size_t)n * sizeof *v);
    o->group_sum_f64(r->totals_dev, (size_t)n);
    o->download(v, r->totals_dev, (size_t)n * sizeof *v);
    return o->status(err);
}

/* An evaluation's batches are dealt to the devices in turn: batch k is device k % ranks's. Each
 * sums what its batches give, and the sums are summed over the devices at the end. */
static int eval_batch_mine(const Run *r, int k) {
    return k % r->dp->ranks == r->dp->rank;
}

/* Causal-lm: the mean loss over every predicted token of the validation rows, and its
 * exp; a non-finite batch loss counts as non-finite. */
static int evaluate_lm(Run *r, ClassMetrics *res, int *nonfinite, LfError *err) {
    Model *m = &r->model;
    double t[3] = {0, 0, 0}; /* loss sum, predicted tokens, non-finite batches */
    long tokens = 0;
    int k = 0;
    Batch b;
    Progress p;
    feed_start(&r->val_f, 0, 0, 0, 0);
    progress_start(&p, r->out, "eval", feed_num_batches(&r->val_f));
    while (feed_next(&r->val_f, &b)) {
        float loss;
        if (!eval_batch_mine(r, k++)) continue;
        if (model_set_batch(m, b.ids, NULL, b.mask, b.labels, b.B, b.T, err) ||
            model_forward(m, 0, &loss, err))
            return -1;
        t[0] += (double)loss * m->n_valid;
        t[1] += m->n_valid;
        t[2] += !isfinite(loss);
        tokens += b.n_tokens;
        progress_update(&p, k, t[0] / (t[1] ? t[1] : 1), tokens);
    }
    progress_finish(&p);
    if (sum_over_devices(r, t, 3, err)) return -1;
    *nonfinite = (int)t[2];
    *res = (ClassMetrics){.loss = t[0] / (t[1] ? t[1] : 1), .n = (int)t[1]};
    return 0;
}

/* DPO: gives the model the reference policy's log-probs of the batch's rows (the batch is set).
 * A row's is computed at its first use, by the same model with its adapters switched off in eval
 * mode, and kept for the run (keep_reference): with LoRA that is the base model whatever the
 * steps. Neither way waits for the device. */
static int reference_logps(Run *r, Feed *f, const Batch *b, LfError *err) {
    Model *m = &r->model;
    int missing = 0;
    for (int i = 0; i < b->B; i++) missing |= isnan(f->ref[b->index[i]]);
    if (missing) return reference_forward(m, err);
    for (int i = 0; i < b->B; i++) r->ref_batch[i] = f->ref[b->index[i]];
    dpo_set_reference(m, r->ref_batch);
    return 0;
}

/* DPO, after the batch's loss was read: keeps the reference log-probs it used. */
static void keep_reference(Run *r, Feed *f, const Batch *b) {
    if (r->task != TASK_DPO) return;
    for (int i = 0; i < b->B; i++) f->ref[b->index[i]] = r->model.ref_scores[i];
}

/* One batch of the feed set in the model, and for dpo its reference log-probs. */
static int set_batch(Run *r, Feed *f, const Batch *b, LfError *err) {
    Model *m = &r->model;
    if (model_set_batch(m, b->ids, b->types, b->mask, b->labels, b->B, b->T, err)) return -1;
    return r->task == TASK_DPO ? reference_logps(r, f, b, err) : 0;
}

/* RLOO, GRPO: a new generation, the feed's next window of prompt batches (*k counts them)
 * continued and scored, each in its rollout slot, the draws seeded by the run's seed, the step
 * and the batch; `left` passes to come. 0 when the epoch's prompts are spent. */
static int generate(Run *r, int step, int *k, int left, LfError *err) {
    Generation *g = &r->gen;
    Batch prompts;
    *g = (Generation){.batches = g->batches,
                      .rewards = g->rewards,
                      .old = g->old,
                      .ref = g->ref,
                      .old_stride = g->old_stride,
                      .logps = g->logps,
                      .ref_logps = g->ref_logps,
                      .left = left};
    while (g->n < r->cfg->grad_accum && feed_next(&r->train_f, &prompts)) {
        uint64_t seed =
            rng_hash(rng_hash(r->cfg->seed, 0x5A3B), (uint64_t)step * 4096 + (uint64_t)g->n + 1);
        RolloutBatch st;
        Batch *b = &g->batches[g->n];
        if (rollout_batch(&r->rollout, g->n, &r->model, &prompts, r->train_f.pset.records, seed, b,
                          &st, err))
            return -1;
        if (g->logps &&
            (model_set_batch(&r->model, b->ids, NULL, b->mask, b->labels, b->B, b->T, err) ||
             rl_row_logps(&r->model, g->logps + g->rows, g->ref_logps + g->rows, err)))
            return -1;
        for (size_t i = 0; i < (size_t)b->B * b->T; i++) g->tokens += b->labels[i] != LM_IGNORE;
        memcpy(g->rewards + g->rows, rollout_rewards(&r->rollout, g->n), b->B * sizeof(float));
        g->rows += b->B;
        rollout_batch_add(&r->rolled, &st);
        g->n++, (*k)++;
    }
    return g->n > 0;
}

/* RLOO, GRPO: the generation's next batch to train, *slot; where its passes are done, a new
 * generation (of `passes`, or of resume_left passes where a resume came in mid-generation). 0
 * when the epoch's prompts are spent. */
static int rl_next(Run *r, int step, int *k, int passes, int *resume_left, int *slot,
                   LfError *err) {
    Generation *g = &r->gen;
    if (g->next == g->n) {
        if (g->n) g->pass++, g->left--;
        g->next = 0;
        if (g->left < 1) {
            int rc = generate(r, step, k, *resume_left ? *resume_left : passes, err);
            *resume_left = 0;
            if (rc < 1) return rc;
        }
    }
    *slot = g->next++;
    return 1;
}

/* After each optimizer step, Skywork-OR1's adaptive entropy control (TRL's): the coefficient up
 * by its delta where the step's mean entropy over the tokens the bonus acts on is at most the
 * target, else down, within its bounds; the next step applies it only where that entropy is at
 * most the target (none before a first step: run_open's 0, TRL's infinite start). */
static void entropy_control(Run *r) {
    const TrainConfig *c = r->cfg;
    EntropyControl *e = &r->entropy;
    if (!c->use_adaptive_entropy) return;
    int low = e->sum / (e->n > 1 ? e->n : 1) <= c->entropy_target;
    e->coef = low ? fmin(e->coef + c->entropy_coef_delta, c->entropy_coef_max)
                  : fmax(e->coef - c->entropy_coef_delta, c->entropy_coef_min);
    e->sum = e->n = 0;
    r->model.spec.grpo.entropy_coef = low ? (float)e->coef : 0.0f;
}

/* RLOO, GRPO: the generation's batch in slot set in the model with its rewards, for a later
 * pass the first pass's per-token losses, and with GRPO's KL penalty the reference forward (a
 * later pass: its losses, which the first pass kept). */
static int set_rl_batch(Run *r, int slot, LfError *err) {
    Model *m = &r->model;
    const Generation *g = &r->gen;
    const Batch *b = &g->batches[slot];
    GrpoGeneration gen = {g->rewards, g->logps,  g->ref_logps,      g->rows,
                          0,          g->tokens, r->cfg->grad_accum};
    for (int i = 0; i < slot; i++) gen.first += g->batches[i].B;
    size_t at = slot * g->old_stride;
    if (model_set_batch(m, b->ids, NULL, b->mask, b->labels, b->B, b->T, err) ||
        grpo_set_rewards(m, rollout_rewards(&r->rollout, slot), &gen, err) ||
        (g->pass > 0 && g->old && grpo_set_old(m, g->old + at, err)))
        return -1;
    if (r->task == TASK_RLOO) return 0; /* its KL is in the rewards */
    if (g->pass > 0 && g->ref) return grpo_set_reference(m, g->ref + at, err);
    return m->spec.grpo.beta > 0 ? reference_forward(m, err) : 0;
}

/* RLOO, GRPO, after the batch's loss was read: its figures for the log and, on a generation's
 * first pass with more to come, its per-token losses: the sampling policy's and (GRPO's KL
 * penalty) the reference's. */
static void keep_rl(Run *r, int slot) {
    Model *m = &r->model;
    const RlooStats *s = &m->rloo_stats;
    RlooStats *t = &r->trained;
    t->rows += s->rows, t->kl += s->kl, t->zero_std += s->zero_std, t->tokens += s->tokens;
    t->clipped_low += s->clipped_low, t->clipped_high += s->clipped_high;
    t->entropy += s->entropy;
    r->entropy.sum += s->kept_entropy, r->entropy.n += s->kept;
    const Generation *g = &r->gen;
    size_t at = slot * g->old_stride, bytes = (size_t)m->B * m->T * sizeof(float);
    if (g->pass > 0 || g->left < 2) return;
    if (g->old) m->ops->download(g->old + at, m->losses, bytes);
    if (g->ref) m->ops->download(g->ref + at, m->ref_losses, bytes);
}

/* The mean and sample std (Bessel's; 0 for one value) of n values of sum and sum of squares. */
static void sample_moments(double sum, double sq, int n, double *mean, double *std) {
    *mean = n ? sum / n : 0;
    double var = n > 1 ? (sq - n * *mean * *mean) / (n - 1) : 0;
    *std = var > 0 ? sqrt(var) : 0;
}

/* Each reward function's mean and std (TRL's rewards/NAME/mean, /std) over the completions it
 * scored, into the log entry and, with several functions, the line; the share of completions
 * none scored where some were not. */
static void log_funcs(Run *r, const RolloutBatch *t, cJSON *o) {
    const RewardFuncs *f = &r->funcs;
    for (int i = 0; i < f->n; i++) {
        double mean, std;
        char key[64];
        sample_moments(t->func_sum[i], t->func_sq[i], t->func_n[i], &mean, &std);
        if (f->n > 1) fprintf(r->out, "%s%s ", i ? ", " : " (", reward_name(f->kind[i]));
        if (f->n > 1) fprintf(r->out, t->func_n[i] ? "%.4f" : "none", mean);
        if (!t->func_n[i]) continue;
        snprintf(key, sizeof key, "rewards/%s/mean", reward_name(f->kind[i]));
        cJSON_AddNumberToObject(o, key, mean);
        snprintf(key, sizeof key, "rewards/%s/std", reward_name(f->kind[i]));
        cJSON_AddNumberToObject(o, key, std);
    }
    if (f->n > 1) fprintf(r->out, ")");
    if (t->scored == t->rows) return;
    fprintf(r->out, ", %d of %d unscored", t->rows - t->scored, t->rows);
    cJSON_AddNumberToObject(o, "frac_unscored", (double)(t->rows - t->scored) / t->rows);
}

/* RLOO, GRPO: the completions sampled and the batches trained since the last log line, printed
 * and added to the log entry o: the rewards and lengths (where a generation came since), the KL
 * per completion token where it has one (beta > 0: RLOO's the sampler's log-prob less the
 * reference's, GRPO's k3), the share of rows whose rewards' std was 0 (TRL's
 * frac_reward_zero_std: no advantage, nothing learnt) and, with num_iterations > 1, the shares of
 * tokens (at sequence level, RLOO's too, of rows) clipped (TRL's clip_ratio; cispo's capped,
 * cispo_clip_ratio, at any num_iterations). */
static void log_rollouts(Run *r, int step, cJSON *o) {
    const RolloutBatch *t = &r->rolled;
    const RlooStats *s = &r->trained;
    const GrpoSpec *gs = &r->model.spec.grpo;
    const RlooSpec *rs = &r->model.spec.rloo;
    int grpo = r->task == TASK_GRPO, sequence = !grpo || gs->level != OPS_GRPO_TOKEN;
    double n = t->rows ? t->rows : 1, trained = s->rows ? s->rows : 1, mean, std;
    double kl = s->kl / trained, len = t->completion_tokens / n;
    sample_moments(t->reward, t->reward_sq, t->scored, &mean, &std);
    double clipped_of = sequence ? s->rows : s->tokens; /* TRL's: rows at sequence level */
    if (clipped_of < 1) clipped_of = 1;
    double low = s->clipped_low / clipped_of, high = s->clipped_high / clipped_of;
    char text[128] = "";
    int has_kl = grpo ? gs->beta > 0 : rs->beta > 0;
    int cispo = grpo && gs->loss == GRPO_CISPO;                 /* its cap acts at any ratio */
    int soft = gs->loss == GRPO_SAPO || gs->loss == GRPO_VESPO; /* they clip nothing */
    int clips = grpo ? gs->iterations > 1 && !soft && !cispo : rs->iterations > 1;
    double entropy = s->entropy / (s->tokens > 1 ? s->tokens : 1); /* a completion token's */
    int at = has_kl ? snprintf(text, sizeof text, ", kl %.4f", kl) : 0;
    const char *what = sequence ? "completions" : "tokens";
    if (clips)
        at += snprintf(text + at, sizeof text - (size_t)at, ", %s clipped %.4f low, %.4f high",
                       what, low, high);
    if (cispo) at += snprintf(text + at, sizeof text - (size_t)at, ", %s capped %.4f", what, high);
    snprintf(text + at, sizeof text - (size_t)at, ", entropy %.4f", entropy);
    if (t->rows) {
        fprintf(r->out, "step %d: reward %.4f (std %.4f)", step, mean, std);
        log_funcs(r, t, o);
        fprintf(r->out, "%s, completions of %.1f tokens (%d of %d cut at max_completion_length)\n",
                text, len, t->clipped, t->rows);
    } else
        fprintf(r->out, "step %d: the last generation again%s\n", step, text);
    if (t->rows) {
        cJSON_AddNumberToObject(o, "reward", mean);
        cJSON_AddNumberToObject(o, "reward_std", std);
        cJSON_AddNumberToObject(o, "completion_length", len);
        cJSON_AddNumberToObject(o, "clipped_ratio", t->clipped / n);
    }
    if (has_kl) cJSON_AddNumberToObject(o, "kl", kl);
    cJSON_AddNumberToObject(o, "entropy", entropy);
    if (gs->entropy_bonus && grpo) cJSON_AddNumberToObject(o, "entropy_coef", r->entropy.coef);
    cJSON_AddNumberToObject(o, "frac_reward_zero_std", s->zero_std / trained);
    if (cispo) cJSON_AddNumberToObject(o, "cispo_clip_ratio", high);
    if (clips) {
        cJSON_AddNumberToObject(o, "clip_ratio/low_mean", low);
        cJSON_AddNumberToObject(o, "clip_ratio/high_mean", high);
        cJSON_AddNumberToObject(o, "clip_ratio/region_mean", low + high);
    }
    r->rolled = (RolloutBatch){0};
    r->trained = (RlooStats){0};
}

/* Preference pairs: the mean loss over pairs, the share of pairs ranked right and the mean
 * rewards. */
static int evaluate_pairs(Run *r, ClassMetrics *res, int *nonfinite, LfError *err) {
    Model *m = &r->model;
    /* loss sum, pairs ranked right, chosen and rejected reward sums, pairs, non-finite batches */
    double t[EVAL_TOTALS] = {0, 0, 0, 0, 0, 0};
    long tokens = 0;
    int k = 0;
    Batch b;
    Progress p;
    feed_start(&r->val_f, 0, 0, 0, 0);
    progress_start(&p, r->out, "eval", feed_num_batches(&r->val_f));
    while (feed_next(&r->val_f, &b)) {
        float loss;
        if (!eval_batch_mine(r, k++)) continue;
        if (set_batch(r, &r->val_f, &b, err) || model_forward(m, 0, &loss, err)) return -1;
        keep_reference(r, &r->val_f, &b);
        const PairStats *ps = &m->pair_stats;
        t[0] += (double)loss * ps->pairs;
        t[1] += ps->correct;
        t[2] += ps->chosen;
        t[3] += ps->rejected;
        t[4] += ps->pairs;
        t[5] += !isfinite(loss);
        tokens += b.n_tokens;
        progress_update(&p, k, t[0] / t[4], tokens);
    }
    progress_finish(&p);
    if (sum_over_devices(r, t, EVAL_TOTALS, err)) return -1;
    double n = t[4] ? t[4] : 1;
    *nonfinite = (int)t[5];
    *res = (ClassMetrics){.loss = t[0] / n,
                          .accuracy = t[1] / n,
                          .n = (int)t[4],
                          .chosen_reward = t[2] / n,
                          .rejected_reward = t[3] / n};
    return 0;
}

/* RLOO, GRPO: the held-out prompts continued as in training (num_generations each, sampled by a
 * seed of the evaluation's own, the same at every evaluation) and scored by the reward functions:
 * the mean reward (of the completions some function scored) and completion length. */
static int evaluate_rl(Run *r, ClassMetrics *res, LfError *err) {
    double t[4] = {0, 0, 0, 0}; /* reward sum, completion tokens, rows, rows scored */
    int k = 0;
    Batch prompts, b;
    Progress p;
    feed_start(&r->val_f, 0, 0, 0, 0);
    progress_start(&p, r->out, "eval", feed_num_batches(&r->val_f));
    while (feed_next(&r->val_f, &prompts)) {
        RolloutBatch st;
        uint64_t seed = rng_hash(rng_hash(r->cfg->seed, 0xE7A1), (uint64_t)k);
        if (!eval_batch_mine(r, k++)) continue;
        int slot = r->rollout.slots - 1; /* the evaluation's: a generation may be under way */
        if (rollout_batch(&r->rollout, slot, &r->model, &prompts, r->val_f.pset.records, seed, &b,
                          &st, err))
            return -1;
        t[0] += st.reward, t[1] += (double)st.completion_tokens, t[2] += st.rows, t[3] += st.scored;
        progress_update(&p, k, NAN, (long)t[1]); /* no loss: the reward is the figure */
    }
    progress_finish(&p);
    if (sum_over_devices(r, t, 4, err)) return -1;
    *res = (ClassMetrics){.n = (int)t[2],
                          .reward = t[3] ? t[0] / t[3] : 0,
                          .completion_length = t[1] / (t[2] ? t[2] : 1)};
    return 0;
}

/* Loss, accuracy and F1 on the validation set, in file order; *nonfinite counts the
 * examples with a NaN or infinite logit. */
static int evaluate(Run *r, ClassMetrics *res, int *nonfinite, LfError *err) {
    if (r->causal_lm) return evaluate_lm(r, res, nonfinite, err);
    if (r->pairs) return evaluate_pairs(r, res, nonfinite, err);
    if (r->rl) {
        *nonfinite = 0; /* a reward model's NaN is the rollout's error */
        return evaluate_rl(r, res, err);
    }
    Model *m = &r->model;
    int K = r->mcfg.num_labels, n = 0, k = 0, mine = 0;
    /* t[0] the loss sum, t[1 + i] example i's predicted class + 2 on its device (1: a NaN or
     * infinite logit), 0 on the others */
    double *t = r->totals;
    memset(t, 0, (size_t)r->n_totals * sizeof *t);
    long tokens = 0;
    Batch b;
    Progress p;
    feed_start(&r->val_f, 0, 0, 0, 0);
    progress_start(&p, r->out, "eval", feed_num_batches(&r->val_f));
    for (; feed_next(&r->val_f, &b); n += b.B) {
        float loss;
        for (int i = 0; i < b.B; i++) r->labels[n + i] = b.labels[i];
        if (!eval_batch_mine(r, k++)) continue;
        if (model_set_batch(m, b.ids, b.types, b.mask, b.labels, b.B, b.T, err) ||
            model_forward(m, 0, &loss, err))
            return -1;
        m->ops->download(r->logits, m->logits, (size_t)b.B * K * sizeof(float));
        for (int i = 0; i < b.B; i++)
            t[1 + n + i] = argmax_finite(r->logits + (size_t)i * K, K) + 2;
        t[0] += (double)loss * m->n_valid;
        mine += b.B;
        tokens += b.n_tokens;
        progress_update(&p, k, t[0] / mine, tokens);
    }
    progress_finish(&p);
    if (sum_over_devices(r, t, 1 + n, err)) return -1;
    *nonfinite = 0;
    for (int i = 0; i < n; i++) {
        r->preds[i] = (int)t[1 + i] - 2;
        *nonfinite += r->preds[i] < 0;
    }
    metrics_classification(r->preds, r->labels, n, K, t[0] / (n ? n : 1), res);
    return 0;
}

static int log_eval(Run *r, const char *when, int step, double epoch, const ClassMetrics *mt,
                    LfError *err) {
    const char *acc = r->task == TASK_DPO ? "reward_accuracy" : "accuracy";
    double margin = mt->chosen_reward - mt->rejected_reward;
    if (r->causal_lm)
        fprintf(r->out, "%s: eval_loss %.4f  perplexity %.3f  (%d tokens predicted)\n", when,
                mt->loss, exp(mt->loss), mt->n);
    else if (r->rl)
        fprintf(r->out, "%s: eval_reward %.4f  completion_length %.1f  (%d completions)\n", when,
                mt->reward, mt->completion_length, mt->n);
    else if (r->pairs)
        fprintf(r->out,
                "%s: eval_loss %.4f  %s %.4f  margin %.4f  chosen %.4f  rejected %.4f  (%d "
                "pairs)\n",
                when, mt->loss, acc, mt->accuracy, margin, mt->chosen_reward, mt->rejected_reward,
                mt->n);
    else
        fprintf(r->out, "%s: eval_loss %.4f  accuracy %.4f  f1 %.4f  (%d examples)\n", when,
                mt->loss, mt->accuracy, mt->f1, mt->n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "eval");
    cJSON_AddNumberToObject(o, "step", step);
    cJSON_AddNumberToObject(o, "epoch", epoch);
    cJSON_AddNumberToObject(o, "eval_loss", mt->loss);
    if (r->causal_lm) {
        cJSON_AddNumberToObject(o, "perplexity", exp(mt->loss));
    } else if (r->rl) {
        cJSON_AddNumberToObject(o, "eval_reward", mt->reward);
        cJSON_AddNumberToObject(o, "eval_completion_length", mt->completion_length);
    } else if (r->pairs) {
        cJSON_AddNumberToObject(o, acc, mt->accuracy);
        cJSON_AddNumberToObject(o, "margin", margin);
        cJSON_AddNumberToObject(o, "chosen_reward", mt->chosen_reward);
        cJSON_AddNumberToObject(o, "rejected_reward", mt->rejected_reward);
    } else {
        cJSON_AddNumberToObject(o, "accuracy", mt->accuracy);
        cJSON_AddNumberToObject(o, "f1", mt->f1);
    }
    int rc = r->has_log ? runlog_write_json(&r->log, o, err) : 0;
    cJSON_Delete(o);
    return rc;
}

/* Prints a warning when loss is finite but above LOSS_WARN; returns whether it did. */
static int warn_loss(const Run *r, const char *what, double loss) {
    if (!(loss > LOSS_WARN)) return 0;
    fprintf(r->out,
            "warning: %s %.4g is above %g: the weights are diverging (is "
            "train.learning_rate too high?)\n",
            what, loss, LOSS_WARN);
    return 1;
}

/* Evaluates, prints and logs. A NaN or infinite loss or logit is an error. */
static int eval_point(Run *r, const char *when, int step, double epoch, ClassMetrics *mt,
                      LfError *err) {
    int nonfinite;
    if (evaluate(r, mt, &nonfinite, err) || log_eval(r, when, step, epoch, mt, err)) return -1;
    if (nonfinite || !isfinite(mt->loss))
        return lf_fail(err,
                       "%s: eval_loss is %g and %d of %d examples have NaN or infinite logits: "
                       "the weights are not finite",
                       when, mt->loss, nonfinite, mt->n);
    warn_loss(r, "eval_loss", mt->loss);
    return r->sft && r->dp->rank == 0 ? log_answers(r, step, err) : 0;
}

/* Ends err's message with where the last good checkpoint is; returns -1. */
static int stopped(const Run *r, LfError *err) {
    size_t n = strlen(err->msg);
    if (r->saved)
        snprintf(err->msg + n, sizeof err->msg - n,
                 "; stopped. The last good checkpoint is %s/last", r->cfg->output_dir);
    else
        snprintf(err->msg + n, sizeof err->msg - n, "; stopped before any checkpoint was saved");
    return -1;
}

/* Writes the adapter (LoRA) or the model plus the training state as a new checkpoint and
 * points OUT/last (and so OUT/best) at it. Until an evaluation picks one, a checkpoint is
 * its own best. */
static int save_checkpoint(Run *r, TrainState *ts, int improved, LfError *err) {
    char name[64], tmp[4400];
    if (rundir_begin(&r->dir, ts->global_step, name, sizeof name, tmp, sizeof tmp, err)) return -1;
    if (improved || !ts->evaluated)
        snprintf(ts->best_checkpoint, sizeof ts->best_checkpoint, RUNDIR_CHECKPOINTS "/%s", name);
    int rc = strategy_is_adapter(r->model.spec.strategy)
                 ? adapter_save(&r->model, tmp, r->cfg->model, err)
                 : model_dir_save(&r->model, tmp, tokenizer_dir(r->cfg), 0, err);
    if (!rc) rc = train_state_save(&r->model, &r->opt, ts, tmp, err);
    if (!rc) rc = rundir_commit(&r->dir, name, ts->best_checkpoint, ts->evaluated, err);
    r->saved |= !rc;
    return rc;
}

static double metric_value(const TrainConfig *c, const ClassMetrics *m) {
    if (!strcmp(c->metric_for_best, "accuracy")) return m->accuracy;
    if (!strcmp(c->metric_for_best, "f1")) return m->f1;
    if (!strcmp(c->metric_for_best, "reward")) return m->reward;
    return m->loss;
}

static int better(const TrainConfig *c, double value, double best) {
    return !strcmp(c->metric_for_best, "eval_loss") ? value < best : value > best;
}

/* Evaluation and checkpointing at the end of an epoch or every N steps. A new best is
 * saved even when save is not set. */
static int checkpoint_point(Run *r, TrainState *ts, int eval, int save, double epoch_f,
                            LfError *err) {
    ClassMetrics mt;
    char when[64];
    snprintf(when, sizeof when, "epoch %.2f step %d", epoch_f, ts->global_step);
    int improved = 0;
    if (eval) {
        if (eval_point(r, when, ts->global_step, epoch_f, &mt, err)) return stopped(r, err);
        double v = metric_value(r->cfg, &mt);
        improved = !ts->evaluated || better(r->cfg, v, ts->best_metric);
        if (improved) {
            ts->evaluated = 1;
            ts->best_metric = v;
            snprintf(ts->metric, sizeof ts->metric, "%s", r->cfg->metric_for_best);
        }
    }
    if (r->dp->rank > 0) return 0; /* device 0 writes the run directory */
    if ((save || improved) && save_checkpoint(r, ts, improved, err)) return -1;
    if (improved)
        fprintf(r->out, "%s: new best %s %.4f, saved to %s/best\n", when, r->cfg->metric_for_best,
                ts->best_metric, r->cfg->output_dir);
    return 0;
}

static int log_step(Run *r, int step, double epoch, double loss, float lr, double norm,
                    double tok_s, LfError *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "train");
    cJSON_AddNumberToObject(o, "step", step);
    cJSON_AddNumberToObject(o, "epoch", epoch);
    cJSON_AddNumberToObject(o, "loss", loss);
    cJSON_AddNumberToObject(o, "learning_rate", lr);
    cJSON_AddNumberToObject(o, "grad_norm", norm);
    cJSON_AddNumberToObject(o, "tokens_per_s", tok_s);
    if (r->rl) log_rollouts(r, step, o);
    int rc = runlog_write_json(&r->log, o, err);
    cJSON_Delete(o);
    return rc;
}

static int same_shape(TrainShape a, TrainShape b) {
    return a.B == b.B && a.T == b.T && a.padded == b.padded && a.head_rows == b.head_rows &&
           a.key == b.key;
}

static int forward_backward(Model *m, LfError *err) {
    return model_forward(m, 1, NULL, err) || model_backward(m, err) ? -1 : 0;
}

/* Forward and backward recorded into slot, and run. */
static int record(TrainStep *s, Model *m, TrainShape shape, int slot, LfError *err) {
    const Ops *o = m->ops;
    s->slot[slot] = (TrainShape){0}; /* whatever it held is gone, recorded or not */
    if (o->graph_begin())
        return o->status(err) ? -1 : lf_fail(err, "cuda: a graph capture did not start");
    int rc = forward_backward(m, err);
    if (o->graph_end(rc ? -1 : slot)) /* -1: the recording is dropped */
        return rc ? -1 : o->status(err) ? -1 : lf_fail(err, "cuda: a graph launch failed");
    if (!rc) s->slot[slot] = shape;
    return rc;
}

/* The micro-batch's slot replayed, or recorded (into the next slot in turn), or op by op. */
static int graph_step(TrainStep *s, Model *m, TrainShape shape, int repeat, LfError *err) {
    const Ops *o = m->ops;
    for (int i = 0; i < OPS_GRAPH_TRAIN_SLOTS; i++) {
        if (!same_shape(s->slot[i], shape)) continue;
        int rc = o->graph_replay(i);
        if (rc < 0) return o->status(err) ? -1 : lf_fail(err, "cuda: a graph replay failed");
        if (rc == 0) return 0;
        memset(s->slot, 0, sizeof s->slot); /* the backend dropped them: a first sight again */
        return forward_backward(m, err);
    }
    int first = s->graphs == GRAPHS_ON && m->spec.attention != ATTENTION_CUDNN;
    if (!repeat && !first) return forward_backward(m, err);
    int slot = s->next;
    s->next = (s->next + 1) % OPS_GRAPH_TRAIN_SLOTS;
    return record(s, m, shape, slot, err);
}

int train_micro_step(TrainStep *s, Model *m, uint64_t seed, float loss_weight, AdamW *opt, float lr,
                     float max_norm, LfError *err) {
    const Objective *obj = m->objective;
    TrainShape shape = {m->B, m->T, m->padded, m->n_head_rows,
                        obj->graph_key ? obj->graph_key(m) : 0};
    int repeat = same_shape(shape, s->last);
    s->last = shape;
    model_step(m, seed, loss_weight);
    int graphs = m->ops->graph_begin && s->graphs != GRAPHS_OFF;
    int rc = graphs ? graph_step(s, m, shape, repeat, err) : forward_backward(m, err);
    if (!rc && opt) adamw_update(opt, m, lr, max_norm);
    return rc;
}

/* An evaluation ran other shapes since the last micro-batch (and under model.attention cudnn may
 * have planned others, dropping the recordings): the next micro-batch is no repeat. */
static void forget_shape(TrainStep *s) {
    s->last.B = 0;
}

/* An optimizer step takes `window` batches in a row (gradient_accumulation_steps x devices), the
 * devices each every ranks-th of them: batch i of the window is device i % ranks's, and trains
 * with the dropout seed and loss weight (1 / window) one device would give it. RLOO and GRPO
 * take a generation's batches instead, `passes` steps on each generation. */
static int train(Run *r, TrainState ts, int resumed, LfError *err) {
    const TrainConfig *c = r->cfg;
    Model *m = &r->model;
    int rank = r->dp->rank, ranks = r->dp->ranks, lead = rank == 0;
    Schedule sched;
    if (schedule_parse(c->lr_scheduler, &sched, err)) return -1;
    int nb = feed_num_batches(&r->train_f), window = c->grad_accum * ranks;
    int passes = r->rl ? c->num_iterations : 1;
    int steps_per_epoch = (nb + window - 1) / window * passes;
    int total = c->max_steps > 0 ? c->max_steps : c->epochs * steps_per_epoch;
    int warmup = c->warmup_steps > 0 ? c->warmup_steps : (int)ceil(c->warmup_ratio * total);
    char devices[32] = "";
    if (ranks > 1) snprintf(devices, sizeof devices, " x %d devices", ranks);
    fprintf(r->out,
            "training: %d optimizer steps (%d per epoch, batch %d%s x %d accumulation), warmup "
            "%d, lr %g %s\n",
            total, steps_per_epoch, c->batch_size, devices, c->grad_accum, warmup, c->lr,
            c->lr_scheduler);
    int evals = r->has_val && strcmp(c->eval_strategy, "no");
    if (!resumed && evals && c->eval_before_training) {
        ClassMetrics mt;
        if (eval_point(r, "before training", 0, 0, &mt, err)) return -1;
    }
    int eval_epoch = evals && !strcmp(c->eval_strategy, "epoch"),
        save_epoch = !strcmp(c->save_strategy, "epoch");
    int eval_steps = evals && !strcmp(c->eval_strategy, "steps") ? c->eval_steps : 0;
    int save_steps = !strcmp(c->save_strategy, "steps") ? c->save_steps : 0;
    uint64_t dropout_stream = rng_hash(c->seed, 0xD20F);
    TrainStep st = {.graphs = (TrainGraphs)c->cuda_graphs};
    OpsGraphCounts g0 = {0}, g1 = {0};
    if (m->ops->graph_counts) m->ops->graph_counts(&g0);
    double t_start = now_seconds(), log_loss = 0;
    int log_n = 0;
    for (int epoch = ts.epoch; ts.global_step < total; epoch++) {
        feed_start(&r->train_f, c->seed, epoch, 1, c->bucket_by_length);
        int done = ts.global_step - epoch * steps_per_epoch; /* resume mid-epoch */
        int skip = done / passes * window, resume_left = done % passes ? passes - done % passes : 0;
        r->gen.n = r->gen.next = r->gen.left = 0; /* a resume inside a generation samples anew */
        char label[64];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1,
                 (total + steps_per_epoch - 1) / steps_per_epoch);
        Progress p;
        progress_start(&p, r->out, label, nb);
        double t0 = now_seconds(), epoch_loss = 0, epoch_batches = 0;
        long tokens = 0;
        int micro = 0, k = 0, slot = 0;
        double sums[3] = {0, 0, 0}; /* this step's loss sum, batches and tokens on this device */
        Batch b;
        while (k < skip && feed_next(&r->train_f, &b)) k++;
        model_zero_grad(m);
        while (ts.global_step < total) {
            int got = r->rl ? rl_next(r, ts.global_step, &k, passes, &resume_left, &slot, err)
                            : feed_next(&r->train_f, &b);
            if (got < 0) return -1;
            if (!got) break;
            if (r->rl)
                b = r->gen.batches[slot];
            else
                k++;
            uint64_t seed =
                rng_hash(dropout_stream, (uint64_t)ts.global_step * 4096 + (uint64_t)micro);
            int mine = micro++ % ranks == rank;
            int step_end = r->rl ? r->gen.next == r->gen.n : micro == window || k == nb;
            float lr = schedule_lr(sched, c->lr, ts.global_step, total, warmup), loss;
            double norm = 0;
            AdamW *opt = step_end ? &r->opt : NULL;
            if (mine) {
                if (r->rl && slot == 0 && r->gen.pass == 0)
                    forget_shape(&st); /* generation ran other shapes */
                if ((r->rl ? set_rl_batch(r, slot, err) : set_batch(r, &r->train_f, &b, err)) ||
                    train_micro_step(&st, m, seed, 1.0f / (float)window, opt, lr, c->max_grad_norm,
                                     err))
                    return -1;
                /* The one wait per batch: its loss and, at a step's end, the gradient norm, in
                 * one copy. A non-finite norm left the weights as they were (a non-finite loss
                 * makes one, unless no gradient depends on it), and nothing is saved after the
                 * stop. */
                if (model_read_loss(m, &loss, step_end ? &norm : NULL, err)) return -1;
                keep_reference(r, &r->train_f, &b);
                if (r->rl) keep_rl(r, slot);
                sums[0] += loss, sums[1] += 1, sums[2] += b.n_tokens;
            } else if (opt) { /* the step's last batch is another device's: the step all the same */
                adamw_update(opt, m, lr, c->max_grad_norm);
                if (model_read_loss(m, NULL, &norm, err)) return -1;
            }
            if (!step_end) continue;
            if (sum_over_devices(r, sums, 3, err)) return -1;
            if (!isfinite(sums[0]))
                return lf_fail(err, "loss is %s at step %d (epoch %d)",
                               isnan(sums[0]) ? "NaN" : "infinite", ts.global_step, epoch + 1),
                       stopped(r, err);
            if (!isfinite(norm))
                return lf_fail(err, "gradient norm is not finite at step %d", ts.global_step),
                       stopped(r, err);
            r->warned = r->warned || warn_loss(r, "train loss", sums[0] / sums[1]);
            epoch_loss += sums[0], epoch_batches += sums[1];
            log_loss += sums[0], log_n += (int)sums[1];
            tokens += (long)sums[2];
            sums[0] = sums[1] = sums[2] = 0;
            micro = 0;
            model_zero_grad(m);
            if (r->rl) entropy_control(r);
            ts.global_step++;
            double epoch_f = epoch + (double)k / nb;
            if (lead && c->logging_steps && ts.global_step % c->logging_steps == 0) {
                if (log_step(r, ts.global_step, epoch_f, log_loss / log_n, lr, norm,
                             tokens / (now_seconds() - t0), err))
                    return -1;
                log_loss = 0, log_n = 0;
            }
            progress_update(&p, k, epoch_loss / epoch_batches, tokens);
            int ev = eval_steps && ts.global_step % eval_steps == 0;
            int sv = save_steps && ts.global_step % save_steps == 0;
            if ((ev || sv) && checkpoint_point(r, &ts, ev, sv, epoch_f, err)) return -1;
            if (ev) forget_shape(&st);
        }
        progress_finish(&p);
        /* max_steps may end an epoch early, or before its last generation's last pass: resume
         * inside it */
        int complete = k >= nb && !(r->rl && (r->gen.next < r->gen.n || r->gen.left > 1));
        ts.epoch = complete ? epoch + 1 : epoch;
        fprintf(r->out, "epoch %d: train loss %.4f, %.0f tokens/s, %.1f s\n", epoch + 1,
                epoch_loss / (epoch_batches > 0 ? epoch_batches : 1), tokens / (now_seconds() - t0),
                now_seconds() - t0);
        if ((eval_epoch || save_epoch) &&
            checkpoint_point(r, &ts, eval_epoch, save_epoch,
                             complete ? epoch + 1 : epoch + (double)k / nb, err))
            return -1;
        if (eval_epoch) forget_shape(&st);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(r->out, "done: %d steps in %.1f s, peak memory %.0f MiB", ts.global_step,
            now_seconds() - t_start, ru.ru_maxrss / 1024.0);
    if (m->ops->graph_counts && st.graphs != GRAPHS_OFF) {
        m->ops->graph_counts(&g1);
        fprintf(r->out, "; CUDA graphs: %ld recordings, %ld replays",
                (g1.launches - g1.replayed) - (g0.launches - g0.replayed),
                g1.replayed - g0.replayed);
    }
    if (ts.evaluated)
        fprintf(r->out, "; best %s %.4f in %s/best", c->metric_for_best, ts.best_metric,
                c->output_dir);
    if (r->saved)
        fprintf(r->out, "; last checkpoint in %s/last\n", c->output_dir);
    else
        fprintf(r->out, "; no checkpoint saved\n");
    return 0;
}

/* Reads --resume's state (checked like any input) before anything is written. */
static int load_resume(Run *r, const char *resume, TrainState *ts, LfError *err) {
    const char *want = r->cfg->metric_for_best;
    if (train_state_load(&r->model, &r->opt, ts, resume, err)) return lf_wrap(err, "--resume");
    if (ts->evaluated && strcmp(ts->metric, want))
        return lf_fail(err,
                       "--resume %s: its best checkpoint was chosen by %s, but this run's "
                       "train.metric_for_best is %s, which does not compare with it; resume with "
                       "--set train.metric_for_best=%s or start a new run",
                       resume, ts->metric, want, ts->metric);
    fprintf(r->out, "resumed from %s at step %d (epoch %d)\n", resume, ts->global_step, ts->epoch);
    return 0;
}

/* Locks and prepares OUT, then writes the effective config and opens the log. A state
 * resumed from another run directory keeps no best: its best is not in OUT. */
static int open_output(Run *r, const RunOptions *o, TrainState *ts, LfError *err) {
    const TrainConfig *c = r->cfg;
    RunDirMode mode = o->resume ? RUNDIR_RESUME : o->overwrite ? RUNDIR_OVERWRITE : RUNDIR_FRESH;
    char path[4200];
    if (rundir_open(&r->dir, c->output_dir, mode, err)) return -1;
    if (o->resume && ts->best_checkpoint[0] && !rundir_holds(&r->dir, o->resume)) {
        fprintf(r->out, "note: %s is not a checkpoint of %s: the best checkpoint is chosen anew\n",
                o->resume, c->output_dir);
        ts->evaluated = 0;
        ts->best_checkpoint[0] = 0;
    }
    snprintf(path, sizeof path, "%s/last", c->output_dir);
    r->saved = o->resume && !access(path, F_OK);
    if (ts->evaluated && rundir_link_best(&r->dir, err)) return -1;
    snprintf(path, sizeof path, "%s/train_config.json", c->output_dir);
    if (train_config_save(c, path, err)) return -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->output_dir);
    if (runlog_open(&r->log, path, err)) return -1;
    r->has_log = 1;
    return 0;
}

typedef struct RunJob {
    const TrainConfig *cfg;
    const RunOptions *opt;
} RunJob;

/* The run as one of model.devices (DpMain): each device loads the model and the data and
 * resumes the state; device 0 alone writes the run directory. */
static int run_on_device(DpRank *dp, FILE *out, void *arg, LfError *err) {
    const RunJob *job = arg;
    const TrainConfig *cfg = job->cfg;
    const RunOptions *opt = job->opt;
    Run r;
    TrainState ts = {0};
    int rc = run_open(&r, cfg, dp, 1, NULL, out, err);
    if (!rc)
        rc = adamw_create(&r.opt, &r.model, cfg->adam_beta1, cfg->adam_beta2, cfg->adam_eps,
                          cfg->weight_decay, cfg->loraplus_lr_ratio, err);
    r.has_opt = !rc;
    r.opt.group = dp->ranks > 1;
    if (!rc && opt->resume) rc = load_resume(&r, opt->resume, &ts, err);
    if (!rc && dp->rank == 0) rc = open_output(&r, opt, &ts, err);
    if (!rc) rc = train(&r, ts, opt->resume != NULL, err);
    run_close(&r);
    return rc;
}

/* fn on each of model.devices, a process each, or in this process on the one. */
static int on_devices(const TrainConfig *cfg, DpMain fn, void *job, FILE *out, LfError *err) {
    if (cfg->devices > 1) return dp_run(cfg->devices, fn, job, out, err);
    DpRank one = dp_single();
    return fn(&one, out, job, err);
}

int trainer_run(const TrainConfig *cfg, const RunOptions *opt, FILE *out, LfError *err) {
    RunJob job = {cfg, opt};
    return on_devices(cfg, run_on_device, &job, out, err);
}

typedef struct EvalJob {
    const TrainConfig *cfg;
    const char *adapter_dir;
} EvalJob;

/* The evaluation as one of model.devices: each device evaluates its share of the batches. */
static int evaluate_on_device(DpRank *dp, FILE *out, void *arg, LfError *err) {
    const EvalJob *job = arg;
    Run r;
    ClassMetrics mt;
    int rc = run_open(&r, job->cfg, dp, 0, job->adapter_dir, out, err);
    if (!rc) rc = eval_point(&r, "eval", 0, 0, &mt, err);
    run_close(&r);
    return rc;
}

int trainer_evaluate(const TrainConfig *cfg, const char *adapter_dir, FILE *out, LfError *err) {
    EvalJob job = {cfg, adapter_dir};
    return on_devices(cfg, evaluate_on_device, &job, out, err);
}
