/* checkpoint.c: adapters, model directories and training state (see checkpoint.h). */
#include "loraft/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <sys/stat.h>
#include <unistd.h>

#include "loraft/fileio.h"
#include "loraft/objective.h"
#include "loraft/rundir.h"
#include "loraft/safetensors.h"
#include "loraft/tokenizer.h"

#define PEFT_PREFIX "base_model.model."

/* ---- helpers ---- */

static int json_save(cJSON *root, const char *dir, const char *name, LfError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = cJSON_Print(root);
    if (!text) return lf_fail(err, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print leaves room for the NUL only: write it as "\n" */
    int rc = file_write_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

static cJSON *json_load(const char *dir, const char *name, LfError *err) {
    char path[4200], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (file_read_all(path, &text, &len, err)) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        lf_fail(err, "%s: not a JSON object", path);
        return NULL;
    }
    return root;
}

/* path's key as a finite number (an integer when whole). */
static int json_num(const cJSON *c, const char *key, const char *path, int whole, double *out,
                    LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!j) return lf_fail(err, "%s: key '%s' is missing", path, key);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) ||
        (whole && j->valuedouble != floor(j->valuedouble)))
        return lf_fail(err, "%s: key '%s' must be %s", path, key,
                       whole ? "an integer" : "a finite number");
    *out = j->valuedouble;
    return 0;
}

static int out_of_range(const char *path, const char *key, double v, const char *range,
                        LfError *err) {
    return lf_fail(err, "%s: key '%s' = %.17g is out of range (%s)", path, key, v, range);
}

/* A step or epoch count: an integer in 0..INT_MAX. */
static int json_count(const cJSON *c, const char *key, const char *path, int *out, LfError *err) {
    double v = 0; /* set by json_num; gcc -O3 cannot see that */
    if (json_num(c, key, path, 1, &v, err)) return -1;
    if (v < 0 || v > INT_MAX) return out_of_range(path, key, v, "0..2147483647", err);
    *out = (int)v;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int dir_remove(const char *path, LfError *err) {
    struct stat sb;
    if (lstat(path, &sb)) return 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS))
        return lf_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int dir_commit(const char *tmp, const char *final_dir, LfError *err) {
    /* One exchange, so final_dir is never missing; a plain rename when it does not exist. */
    if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, final_dir, RENAME_EXCHANGE))
        return dir_remove(tmp, err);
    if (errno == ENOENT && !rename(tmp, final_dir)) return 0;
    return lf_fail(err, "%s: cannot replace with %s: %s", final_dir, tmp, strerror(errno));
}

/* The tensors an adapter holds: LoRA A/B and the trained modules_to_save. */
static int in_adapter(const Param *p) {
    return p->grad && (p->is_lora || p->in_checkpoint);
}

/* ---- PEFT adapters ---- */

/* n strings stored every stride bytes from first. */
static cJSON *string_array(const char *first, int n, size_t stride) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(first + i * stride));
    return a;
}

/* PEFT's rank_pattern or alpha_pattern: {key: value}. */
static cJSON *pattern_object(const LoraPattern *p, int n) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) cJSON_AddNumberToObject(o, p[i].key, float_shortest(p[i].value));
    return o;
}

/* PEFT's fan_in_fan_out: the adapted layers store their weight [in,out] (GPT-2's Conv1D). */
static int fan_in_fan_out(const Model *m) {
    return m->n_loras > 0 && m->loras[0].base->w->hf_transposed;
}

/* A multimodal checkpoint's target_modules: PEFT matches a plain name in the vision tower too
 * (SigLIP's q_proj, k_proj, v_proj), so they are written as the regular expression PEFT
 * full-matches against module names, which only the language model's modules match:
 * LM_TARGETS_HEAD name|name... LM_TARGETS_TAIL, each name's dots escaped. */
#define LM_TARGETS_HEAD ".*language_model.*\\.("
#define LM_TARGETS_TAIL ")"
static cJSON *language_model_targets(const TrainSpec *s) {
    char *re = malloc((size_t)s->n_targets * 2 * sizeof s->targets[0] + 64);
    if (!re) return NULL;
    size_t n = strlen(strcpy(re, LM_TARGETS_HEAD));
    for (int t = 0; t < s->n_targets; t++) {
        if (t) re[n++] = '|';
        for (const char *c = s->targets[t]; *c; c++) {
            if (*c == '.') re[n++] = '\\';
            re[n++] = *c;
        }
    }
    strcpy(re + n, LM_TARGETS_TAIL);
    cJSON *j = cJSON_CreateString(re);
    free(re);
    return j;
}

/* target_modules: a string (PEFT's regular expression, or all-linear), a multimodal checkpoint's
 * regular expression, or the list. */
static cJSON *targets_json(const Model *m) {
    const TrainSpec *s = &m->spec;
    if (s->target_regex[0]) return cJSON_CreateString(s->target_regex);
    if (m->cfg.multimodal) return language_model_targets(s);
    return string_array(s->targets[0], s->n_targets, sizeof s->targets[0]);
}

/* exclude_modules: the regular expression, the list, or null for none. */
static cJSON *exclude_json(const TrainSpec *s) {
    if (s->exclude_regex[0]) return cJSON_CreateString(s->exclude_regex);
    if (s->n_exclude) return string_array(s->exclude[0], s->n_exclude, sizeof s->exclude[0]);
    return cJSON_CreateNull();
}

/* trainable_token_indices: the embedding's list, or with rows of the head's own {embedding's
 * name: list, "lm_head": list} (peft matches the names as suffixes), or null for none. */
/* The token embedding's module, its weight's name less ".weight" ("model.embed_tokens"). */
static void embedding_module(const Model *m, char *out, size_t cap) {
    snprintf(out, cap, "%s", m->word_embedding->name);
    char *dot = strrchr(out, '.');
    if (dot) *dot = 0;
}

static cJSON *token_indices_json(const Model *m) {
    const TrainSpec *s = &m->spec;
    if (!s->n_head_token_indices)
        return s->n_token_indices ? cJSON_CreateIntArray(s->token_indices, s->n_token_indices)
                                  : cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    char module[sizeof m->word_embedding->name];
    embedding_module(m, module, sizeof module);
    const char *last = strrchr(module, '.') ? strrchr(module, '.') + 1 : module; /* embed_tokens */
    if (s->n_token_indices)
        cJSON_AddItemToObject(o, last, cJSON_CreateIntArray(s->token_indices, s->n_token_indices));
    cJSON_AddItemToObject(o, "lm_head",
                          cJSON_CreateIntArray(s->head_token_indices, s->n_head_token_indices));
    return o;
}

/* peft's TrainableTokens adapter (strategy tokens): its one list of ids, and the modules it
 * replaces by full name (the head beside the embedding where an untied head trains the same
 * rows; a tied one follows the embedding's in peft). */
static cJSON *tokens_config_json(const Model *m, const char *base_model) {
    const TrainSpec *s = &m->spec;
    cJSON *c = cJSON_CreateObject(), *targets = cJSON_CreateArray();
    char module[sizeof m->word_embedding->name];
    embedding_module(m, module, sizeof module);
    if (s->n_token_indices) cJSON_AddItemToArray(targets, cJSON_CreateString(module));
    if (s->n_head_token_indices) cJSON_AddItemToArray(targets, cJSON_CreateString("lm_head"));
    int n = s->n_token_indices ? s->n_token_indices : s->n_head_token_indices;
    cJSON_AddStringToObject(c, "peft_type", "TRAINABLE_TOKENS");
    cJSON_AddNullToObject(c, "task_type");
    cJSON_AddStringToObject(c, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddItemToObject(
        c, "token_indices",
        cJSON_CreateIntArray(s->n_token_indices ? s->token_indices : s->head_token_indices, n));
    cJSON_AddItemToObject(c, "target_modules", targets);
    cJSON_AddBoolToObject(c, "init_weights", 1);
    cJSON_AddBoolToObject(c, "inference_mode", 1);
    return c;
}

static cJSON *adapter_config_json(const Model *m, const char *base_model) {
    const TrainSpec *s = &m->spec;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddStringToObject(c, "task_type", m->objective->task_type);
    cJSON_AddStringToObject(c, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddNumberToObject(c, "r", s->r);
    cJSON_AddNumberToObject(c, "lora_alpha", float_shortest(s->alpha));
    cJSON_AddNumberToObject(c, "lora_dropout", float_shortest(s->dropout));
    cJSON_AddBoolToObject(c, "use_rslora", s->use_rslora);
    cJSON_AddStringToObject(c, "bias", lora_bias_name(s->bias));
    cJSON_AddBoolToObject(c, "fan_in_fan_out", fan_in_fan_out(m));
    cJSON_AddBoolToObject(c, "inference_mode", 1);
    if (s->init == LORA_INIT_DEFAULT)
        cJSON_AddBoolToObject(c, "init_lora_weights", 1);
    else
        cJSON_AddStringToObject(c, "init_lora_weights", lora_init_name(s->init));
    cJSON_AddBoolToObject(c, "use_dora", s->use_dora);
    cJSON_AddItemToObject(c, "target_modules", targets_json(m));
    cJSON_AddItemToObject(c, "exclude_modules", exclude_json(s));
    cJSON_AddItemToObject(
        c, "modules_to_save",
        string_array(s->modules_to_save[0], s->n_modules_to_save, sizeof s->modules_to_save[0]));
    cJSON_AddItemToObject(c, "rank_pattern", pattern_object(s->rank_pattern, s->n_rank_pattern));
    cJSON_AddItemToObject(c, "alpha_pattern", pattern_object(s->alpha_pattern, s->n_alpha_pattern));
    cJSON_AddItemToObject(c, "layers_to_transform",
                          s->n_layers ? cJSON_CreateIntArray(s->layers, s->n_layers)
                                      : cJSON_CreateNull());
    cJSON_AddItemToObject(c, "trainable_token_indices", token_indices_json(m));
    cJSON_AddItemToObject(
        c, "layers_pattern",
        s->n_layers_pattern
            ? string_array(s->layers_pattern[0], s->n_layers_pattern, sizeof s->layers_pattern[0])
            : cJSON_CreateNull());
    return c;
}

/* prefix + p's name + suffix: in a PEFT adapter its place in the checkpoint class's module tree
 * (model_tree_name: a multimodal Gemma 3's under model.language_model; an adapted linear's bias
 * under its LoRA layer's base_layer), else p's own. */
static void entry_name(const Model *m, const Param *p, const char *prefix, const char *suffix,
                       char *out, size_t cap) {
    char buf[sizeof p->name + 32];
    int peft = !strcmp(prefix, PEFT_PREFIX);
    const char *name = peft ? model_tree_name(&m->cfg, p->name, 0, buf, sizeof buf) : p->name;
    if (peft && model_adapted_bias(m, p)) /* "....q_proj.bias" */
        snprintf(out, cap, "%s%.*sbase_layer.bias%s", prefix, (int)strlen(name) - 4, name, suffix);
    else
        snprintf(out, cap, "%s%s%s", prefix, name, suffix);
}

/* Downloads the selected parameters into one host block, in their checkpoint layout (a
 * Conv1D's weight [in,out]), and describes them as entries named prefix + name (+ suffix).
 * Returns the number of entries, -1 when out of memory. */
static int gather(Model *m, int (*pick)(const Param *), const char *prefix, const char *suffix,
                  float *host, StEntry *entries, char (*names)[200], int n, const float *src_base,
                  int use_grad_layout) {
    size_t off = 0;
    for (int i = 0; i < m->n_params && n >= 0; i++) {
        Param *p = &m->params[i];
        if (!pick(p)) continue;
        const float *src = use_grad_layout ? src_base + (p->grad - m->grads) : p->value;
        int t = p->hf_transposed;
        float *ours = t ? malloc(p->numel * sizeof *ours) : host + off;
        if (!ours) return -1;
        m->ops->download(ours, src, p->numel * sizeof(float));
        if (t) {
            transpose_f32(host + off, ours, p->shape[0], p->shape[1]);
            free(ours);
        }
        entry_name(m, p, prefix, suffix, names[n], 200);
        entries[n] = (StEntry){names[n], ST_F32, p->ndim, {p->shape[t], p->shape[!t]}, host + off};
        off += p->numel;
        n++;
    }
    return n;
}

/* The name under which peft's TrainableTokens writes a tied head's rows, the embedding's again
 * (its layer on the head shares them): into name, returning 1, where the model has them. */
static int tied_rows_copy(const Model *m, char *name, size_t cap) {
    if (m->spec.strategy != STRATEGY_TOKENS || m->head_branch_rows != &m->token_rows) return 0;
    snprintf(name, cap, PEFT_PREFIX "lm_head.trainable_tokens_delta");
    return 1;
}

int adapter_save(Model *m, const char *dir, const char *base_model, LfError *err) {
    if (!strategy_is_adapter(m->spec.strategy))
        return lf_fail(err, "%s: only LoRA and token-row runs produce an adapter (strategy is %s)",
                       dir, strategy_name(m->spec.strategy));
    if (dir_create(dir, err)) return -1;
    float *host = malloc((m->n_grads + 1) * sizeof(float));
    StEntry *entries = calloc(m->n_params + 1, sizeof *entries);
    char(*names)[200] = calloc(m->n_params + 1, sizeof *names);
    int rc = -1;
    if (host && entries && names) {
        int n = gather(m, in_adapter, PEFT_PREFIX, "", host, entries, names, 0, NULL, 0);
        char rows[200];
        if (n > 0 && tied_rows_copy(m, names[n], sizeof names[n])) { /* the embedding's again */
            entry_name(m, m->token_rows.rows, PEFT_PREFIX, "", rows, sizeof rows);
            for (int i = 0; i < n; i++)
                if (!strcmp(entries[i].name, rows)) {
                    entries[n] = entries[i], entries[n].name = names[n];
                    n++;
                    break;
                }
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        static const char *const meta[] = {"format", "pt", NULL};
        rc = n < 0 ? lf_fail(err, "out of memory") : safetensors_write(path, entries, n, meta, err);
        if (!rc) {
            cJSON *c = m->spec.strategy == STRATEGY_TOKENS ? tokens_config_json(m, base_model)
                                                           : adapter_config_json(m, base_model);
            rc = json_save(c, dir, "adapter_config.json", err);
            cJSON_Delete(c);
        }
    } else {
        lf_fail(err, "out of memory");
    }
    free(host);
    free(entries);
    free(names);
    return rc;
}

static int read_strings(const cJSON *arr, char *out, size_t stride, int max, int *n,
                        const char *key, const char *dir, LfError *err) {
    *n = 0;
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr))
        return lf_fail(err, "%s/adapter_config.json: %s must be a list", dir, key);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || *n == max || strlen(it->valuestring) >= stride)
            return lf_fail(err, "%s/adapter_config.json: bad entry in %s", dir, key);
        strcpy(out + (size_t)(*n)++ * stride, it->valuestring);
    }
    return 0;
}

/* PEFT's target_modules or exclude_modules: a list of names (stride bytes apart, at most max),
 * or a string: a regular expression (or all-linear) of at most cap - 1 characters into regex. */
static int read_modules(const cJSON *c, const char *key, char *names, size_t stride, int max,
                        int *n, char *regex, size_t cap, const char *dir, LfError *err) {
    const cJSON *j = cJSON_GetObjectItem(c, key);
    if (!cJSON_IsString(j)) return read_strings(j, names, stride, max, n, key, dir, err);
    const char *re = j->valuestring;
    if (strlen(re) >= cap)
        return lf_fail(err,
                       "%s/adapter_config.json: %s: a regular expression of more than %zu "
                       "characters",
                       dir, key, cap - 1);
    if (strcasecmp(re, LORA_ALL_LINEAR) && lora_pattern_check(re, err))
        return lf_wrap(err, "%s/adapter_config.json: %s", dir, key);
    strcpy(regex, re);
    return 0;
}

/* r, lora_alpha, lora_dropout, use_rslora, use_dora: PEFT's types, the ranges train config
 * allows. */
static int read_lora_numbers(const cJSON *c, const char *path, TrainSpec *spec, LfError *err) {
    double r = 0, alpha = 0, drop = 0; /* set by json_num; gcc -O3 cannot see that */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "use_rslora");
    const cJSON *dora = cJSON_GetObjectItemCaseSensitive(c, "use_dora");
    if (json_num(c, "r", path, 1, &r, err) || json_num(c, "lora_alpha", path, 0, &alpha, err) ||
        (cJSON_GetObjectItemCaseSensitive(c, "lora_dropout") &&
         json_num(c, "lora_dropout", path, 0, &drop, err)))
        return -1;
    char range[32];
    snprintf(range, sizeof range, "1..%d", LORA_MAX_R);
    if (r < 1 || r > LORA_MAX_R) return out_of_range(path, "r", r, range, err);
    if (!(alpha > 0 && alpha <= FLT_MAX))
        return out_of_range(path, "lora_alpha", alpha, "> 0 and a float", err);
    if (!(drop >= 0 && drop < 1)) return out_of_range(path, "lora_dropout", drop, "[0, 1)", err);
    if (rs && !cJSON_IsBool(rs))
        return lf_fail(err, "%s: key 'use_rslora' must be true or false", path);
    if (dora && !cJSON_IsBool(dora))
        return lf_fail(err, "%s: key 'use_dora' must be true or false", path);
    spec->r = (int)r;
    spec->alpha = (float)alpha;
    spec->dropout = (float)drop;
    spec->use_rslora = cJSON_IsTrue(rs);
    spec->use_dora = cJSON_IsTrue(dora);
    return 0;
}

/* rank_pattern (ranks, whole) or alpha_pattern: an object of regular expressions and values in
 * the range r or lora_alpha allow; null or missing: none. */
static int read_pattern(const cJSON *c, const char *key, const char *path, int ranks,
                        LoraPattern *out, int *n, LfError *err) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, key), *v;
    *n = 0;
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return lf_fail(err, "%s: key '%s' must be an object", path, key);
    cJSON_ArrayForEach(v, o) {
        double x = 0; /* set by json_num */
        if (*n == LORA_MAX_PATTERNS)
            return lf_fail(err, "%s: %s: more than %d keys", path, key, LORA_MAX_PATTERNS);
        if (strlen(v->string) >= sizeof out->key)
            return lf_fail(err, "%s: %s key \"%.64s...\": longer than %zu characters", path, key,
                           v->string, sizeof out->key - 1);
        if (lora_pattern_check(v->string, err))
            return lf_wrap(err, "%s: %s key \"%.64s\"", path, key, v->string);
        if (json_num(o, v->string, path, ranks, &x, err)) return lf_wrap(err, "%s", key);
        char ranks_range[32];
        snprintf(ranks_range, sizeof ranks_range, "1..%d", LORA_MAX_R);
        if (ranks ? x < 1 || x > LORA_MAX_R : !(x > 0 && x <= FLT_MAX))
            return out_of_range(path, v->string, x, ranks ? ranks_range : "> 0 and a float", err);
        snprintf(out[*n].key, sizeof out->key, "%s", v->string);
        out[(*n)++].value = (float)x;
    }
    return 0;
}

/* layers_to_transform (an index or a list of them) and layers_pattern (a name or a list). */
static int read_layers(const cJSON *c, const char *path, TrainSpec *spec, LfError *err) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "layers_to_transform"), *v;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(c, "layers_pattern");
    int one = cJSON_IsNumber(l);
    spec->n_layers = spec->n_layers_pattern = 0;
    if (l && !cJSON_IsNull(l) && !one && !cJSON_IsArray(l))
        return lf_fail(err, "%s: key 'layers_to_transform' must be an integer or a list", path);
    for (v = one ? l : l ? l->child : NULL; v; v = one ? NULL : v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble > INT_MAX || spec->n_layers == LORA_MAX_LAYERS)
            return lf_fail(err,
                           "%s: layers_to_transform: layer indices are integers >= 0, at "
                           "most %d of them",
                           path, LORA_MAX_LAYERS);
        spec->layers[spec->n_layers++] = (int)v->valuedouble;
    }
    int str = cJSON_IsString(names);
    if (names && !cJSON_IsNull(names) && !str && !cJSON_IsArray(names))
        return lf_fail(err, "%s: key 'layers_pattern' must be a string or a list", path);
    for (v = str ? names : names ? names->child : NULL; v; v = str ? NULL : v->next) {
        int n = spec->n_layers_pattern;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof spec->layers_pattern[0] ||
            n == LORA_MAX_LAYER_NAMES)
            return lf_fail(err, "%s: layers_pattern: at most %d names of < %zu characters", path,
                           LORA_MAX_LAYER_NAMES, sizeof spec->layers_pattern[0]);
        if (!v->valuestring[0]) continue; /* PEFT: an empty name is no name */
        if (lora_pattern_check(v->valuestring, err))
            return lf_wrap(err, "%s: layers_pattern", path);
        strcpy(spec->layers_pattern[spec->n_layers_pattern++], v->valuestring);
    }
    if (spec->n_layers_pattern && !spec->n_layers)
        return lf_fail(err, "%s: layers_pattern needs layers_to_transform", path);
    return 0;
}

/* PEFT's init_lora_weights: any start of A and B loads as trained, but those that also rewrite
 * the base weight, which peft redoes on every load from the base model: PiSSA's and OLoRA's
 * ("pissa", "olora", done here too: model.c split_weight), and the others (PiSSA's randomised
 * SVD, CorDA's W - s B A; LoftQ's and LoRA-GA's), refused, naming the way out. */
static int read_init(const cJSON *c, const char *path, TrainSpec *spec, LfError *err) {
    static const char *const rewrites[] = {"pissa", "olora", "corda", "loftq", "lora_ga"};
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(c, "init_lora_weights");
    if (!cJSON_IsString(init)) return 0;
    if (!strcmp(init->valuestring, "pissa")) return spec->init = LORA_INIT_PISSA, 0;
    if (!strcmp(init->valuestring, "olora")) return spec->init = LORA_INIT_OLORA, 0;
    for (size_t i = 0; i < sizeof rewrites / sizeof *rewrites; i++)
        if (!strncasecmp(init->valuestring, rewrites[i], strlen(rewrites[i])))
            return lf_fail(
                err,
                "%s: init_lora_weights \"%s\" rewrites the base model's weights when "
                "peft loads the adapter, which loraft does not do: convert it to a plain "
                "LoRA adapter in peft first (save_pretrained with "
                "path_initial_model_for_weight_conversion), or merge it there",
                path, init->valuestring);
    return 0;
}

/* One list of token ids (v, the value of key) into ids[*n]. */
static int read_token_list(const cJSON *v, const char *path, const char *key, int *ids, int *n,
                           LfError *err) {
    int i = 0;
    if (!cJSON_IsArray(v)) return lf_fail(err, "%s: %s must be a list of token ids", path, key);
    if (cJSON_GetArraySize(v) > LORA_MAX_TOKENS)
        return lf_fail(err, "%s: %s lists %d tokens, at most %d", path, key, cJSON_GetArraySize(v),
                       LORA_MAX_TOKENS);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        double id = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(id >= 0 && id <= INT_MAX && id == floor(id)))
            return lf_fail(err, "%s: %s[%d] is not a token id", path, key, i);
        ids[i] = (int)id;
    }
    *n = i;
    return 0;
}

/* Whether module names the LM head as peft's suffix match would find it. */
static int names_lm_head(const char *module) {
    size_t n = strlen(module);
    return n >= 7 && !strcmp(module + n - 7, "lm_head") && (n == 7 || module[n - 8] == '.');
}

int adapter_token_indices(const cJSON *config, const char *path, TrainSpec *spec, LfError *err) {
    const char *key = "trainable_token_indices";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return lf_fail(err, "%s: %s must be a list of token ids, or {module: list}", path, key);
    if (!cJSON_IsObject(v))
        return read_token_list(v, path, key, spec->token_indices, &spec->n_token_indices, err);
    int embedding = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (names_lm_head(e->string)) {
            if (spec->n_head_token_indices)
                return lf_fail(err, "%s: %s names lm_head twice", path, key);
            if (read_token_list(e, path, key, spec->head_token_indices, &spec->n_head_token_indices,
                                err))
                return -1;
            continue;
        }
        if (embedding++)
            return lf_fail(err,
                           "%s: %s names two modules besides lm_head ('%s', '%s'): loraft trains "
                           "rows of the token embedding and of the LM head",
                           path, key, spec->token_module, e->string);
        if (strlen(e->string) >= sizeof spec->token_module)
            return lf_fail(err, "%s: %s: module name '%.40s...' too long", path, key, e->string);
        snprintf(spec->token_module, sizeof spec->token_module, "%s", e->string);
        if (read_token_list(e, path, key, spec->token_indices, &spec->n_token_indices, err))
            return -1;
    }
    return 0;
}

/* peft's options that change what an adapter computes and that loraft does not run: refused,
 * named, where set (not missing, null, false or empty), rather than loaded as another function.
 * ensure_weight_tying is the model's to judge (TrainSpec.ensure_weight_tying). */
static int read_unsupported(const cJSON *c, const char *path, TrainSpec *spec, LfError *err) {
    static const struct {
        const char *key, *what;
    } keys[] = {
        {"alora_invocation_tokens", "Activated LoRA (the adapter on after its invocation tokens)"},
        {"use_qalora", "QALoRA (A over pooled groups of the input)"},
        {"layer_replication", "layers of the base model replicated"},
        {"lora_bias", "a bias on lora_B"},
        {"target_parameters", "LoRA on parameters rather than modules"},
        {"use_bdlora", "block-diagonal LoRA"},
        {"arrow_config", "Arrow's routing among adapters"},
        {"kasa_config", "KaSA"},
        {"monteclora_config", "MonteCLoRA"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[i].key);
        int empty = (cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child;
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v) && !empty)
            return lf_fail(err,
                           "%s: %s is set: %s, which loraft does not compute (the adapter would "
                           "load as another function)",
                           path, keys[i].key, keys[i].what);
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "ensure_weight_tying");
    if (tie && !cJSON_IsBool(tie) && !cJSON_IsNull(tie))
        return lf_fail(err, "%s: key 'ensure_weight_tying' must be true or false", path);
    spec->ensure_weight_tying = cJSON_IsTrue(tie);
    return 0;
}

int adapter_tokens_config(const cJSON *c, const char *path, TrainSpec *spec, LfError *err) {
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(c, "target_modules"), *t;
    int ids[LORA_MAX_TOKENS], n, embedding = 0, head = 0;
    spec->strategy = STRATEGY_TOKENS, spec->task = TASK_CAUSAL_LM;
    if (read_token_list(cJSON_GetObjectItemCaseSensitive(c, "token_indices"), path, "token_indices",
                        ids, &n, err))
        return -1;
    int list = cJSON_IsArray(targets); /* else one name, or null: the embedding */
    for (t = list ? targets->child : targets; t && !cJSON_IsNull(t); t = list ? t->next : NULL) {
        if (!cJSON_IsString(t))
            return lf_fail(err, "%s: target_modules must be a module name or a list of them", path);
        if (names_lm_head(t->valuestring)) {
            head = 1;
            continue;
        }
        if (embedding++ || strlen(t->valuestring) >= sizeof spec->token_module)
            return lf_fail(err,
                           "%s: target_modules: loraft trains token rows of the embedding and "
                           "of lm_head ('%.60s' besides)",
                           path, t->valuestring);
        snprintf(spec->token_module, sizeof spec->token_module, "%s", t->valuestring);
    }
    if (embedding || !head) memcpy(spec->token_indices, ids, n * sizeof *ids);
    if (embedding || !head) spec->n_token_indices = n;
    if (head) memcpy(spec->head_token_indices, ids, n * sizeof *ids);
    if (head) spec->n_head_token_indices = n;
    return 0;
}

int adapter_read_config(TrainSpec *spec, char *base_model, size_t cap, const char *dir,
                        LfError *err) {
    cJSON *c = json_load(dir, "adapter_config.json", err);
    if (!c) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    BaseDtype base_dtype = spec->base_dtype; /* how the base is stored and computes is not */
    Precision precision = spec->precision;   /* the adapter's */
    train_spec_defaults(spec);
    spec->strategy = STRATEGY_LORA;
    spec->base_dtype = base_dtype;
    spec->precision = precision;
    const cJSON *type = cJSON_GetObjectItem(c, "peft_type"), *bias = cJSON_GetObjectItem(c, "bias"),
                *base = cJSON_GetObjectItem(c, "base_model_name_or_path"),
                *task = cJSON_GetObjectItem(c, "task_type");
    int rc = 0;
    if (cJSON_IsString(task) && !strcmp(task->valuestring, "CAUSAL_LM"))
        spec->task = TASK_CAUSAL_LM;
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "TRAINABLE_TOKENS"))
        rc = adapter_tokens_config(c, path, spec, err);
    else if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA"))
        rc = lf_fail(err, "%s: peft_type must be \"LORA\" or \"TRAINABLE_TOKENS\"", path);
    else if (task && !cJSON_IsNull(task) &&
             (!cJSON_IsString(task) ||
              (strcmp(task->valuestring, "SEQ_CLS") && strcmp(task->valuestring, "CAUSAL_LM"))))
        rc = lf_fail(err, "%s: task_type must be \"SEQ_CLS\" or \"CAUSAL_LM\"", path);
    else if (bias && !cJSON_IsNull(bias) &&
             (!cJSON_IsString(bias) || lora_bias_parse(bias->valuestring, &spec->bias, err)))
        rc = lf_fail(err, "%s: bias must be \"none\", \"all\" or \"lora_only\"", path);
    else if (cJSON_GetObjectItem(c, "fan_in_fan_out") &&
             !cJSON_IsBool(cJSON_GetObjectItem(c, "fan_in_fan_out")))
        rc = lf_fail(err, "%s: key 'fan_in_fan_out' must be true or false", path);
    int lora = spec->strategy == STRATEGY_LORA;
    if (!rc && lora)
        rc = read_unsupported(c, path, spec, err) || read_init(c, path, spec, err) ||
             read_lora_numbers(c, path, spec, err) || adapter_token_indices(c, path, spec, err);
    if (!rc && lora)
        rc = read_pattern(c, "rank_pattern", path, 1, spec->rank_pattern, &spec->n_rank_pattern,
                          err) ||
             read_pattern(c, "alpha_pattern", path, 0, spec->alpha_pattern, &spec->n_alpha_pattern,
                          err) ||
             read_layers(c, path, spec, err);
    if (!rc && lora)
        rc = read_modules(c, "target_modules", spec->targets[0], sizeof spec->targets[0],
                          LORA_MAX_TARGETS, &spec->n_targets, spec->target_regex,
                          sizeof spec->target_regex, dir, err) ||
             read_modules(c, "exclude_modules", spec->exclude[0], sizeof spec->exclude[0],
                          LORA_MAX_EXCLUDE, &spec->n_exclude, spec->exclude_regex,
                          sizeof spec->exclude_regex, dir, err);
    if (!rc && lora)
        rc = read_strings(cJSON_GetObjectItem(c, "modules_to_save"), spec->modules_to_save[0],
                          sizeof spec->modules_to_save[0], LORA_MAX_SAVE, &spec->n_modules_to_save,
                          "modules_to_save", dir, err);
    if (!rc && spec->n_layers && cJSON_IsString(cJSON_GetObjectItem(c, "target_modules")))
        rc = lf_fail(err,
                     "%s: layers_to_transform cannot be used when target_modules is a "
                     "regular expression",
                     path);
    if (!rc && base_model && cap)
        snprintf(base_model, cap, "%s", cJSON_IsString(base) ? base->valuestring : "");
    cJSON_Delete(c);
    return rc;
}

/* Reads the tensors named prefix + p->name for every picked parameter into the model (a
 * Conv1D's weight from its checkpoint layout [in,out]). */
static int scatter(Model *m, const char *path, int (*pick)(const Param *), const char *prefix,
                   float *dst_base, int use_grad_layout, LfError *err) {
    SafeTensors st;
    if (safetensors_open(&st, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_params && !rc; i++) {
        Param *p = &m->params[i];
        if (!pick(p)) continue;
        char name[260];
        entry_name(m, p, prefix, "", name, sizeof name);
        int64_t shape[2] = {p->shape[p->hf_transposed], p->shape[!p->hf_transposed]};
        float *host = malloc((1 + p->hf_transposed) * p->numel * sizeof *host);
        float *ours = host ? host + p->numel : NULL; /* the transposed copy, for a Conv1D */
        if (!host) rc = lf_fail(err, "out of memory");
        if (!rc) rc = safetensors_read_f32(&st, name, p->ndim, shape, host, err);
        if (!rc && p->hf_transposed) transpose_f32(ours, host, shape[0], shape[1]);
        float *dst = use_grad_layout ? dst_base + (p->grad - m->grads) : p->value;
        if (!rc) m->ops->upload(dst, p->hf_transposed ? ours : host, p->numel * sizeof *host);
        free(host);
    }
    safetensors_close(&st);
    return rc;
}

/* A multimodal checkpoint's adapter may hold only the language model's tensors (and the head's):
 * loraft computes no vision tower, so LoRA on it (PEFT's plain target names adapt SigLIP's q_proj,
 * k_proj, v_proj too) is refused, naming the first such tensor. */
static int check_language_model_only(const Model *m, const char *path, LfError *err) {
    static const char *const places[] = {PEFT_PREFIX "model.language_model.",
                                         PEFT_PREFIX "lm_head."};
    SafeTensors st;
    if (!m->cfg.multimodal) return 0;
    if (safetensors_open(&st, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < st.n_tensors && !rc; i++) {
        const char *name = st.tensors[i].name;
        if (strncmp(name, places[0], strlen(places[0])) &&
            strncmp(name, places[1], strlen(places[1])))
            rc = lf_fail(err,
                         "%s: tensor '%s' is not on the language model: loraft trains and runs "
                         "Gemma 3's language model only (adapt it alone: target_modules as the "
                         "regular expression " LM_TARGETS_HEAD "q_proj|v_proj" LM_TARGETS_TAIL ")",
                         path, name);
    }
    safetensors_close(&st);
    return rc;
}

/* peft saves an adapted embedding's or LM head's weight beside its adapter (save_embedding_layers,
 * on by default there for embed_tokens and lm_head targets: "...embed_tokens.base_layer.weight")
 * and loads it over the model's. Returns 1 where tensor i of st is such a copy of the weight
 * loraft holds (within 1 % of its largest value: it may be stored in bf16 or quantised), 0 where
 * it is another tensor, -1 where it differs: loraft does not replace the base model's weights. */
static int is_own_copy(Model *m, const SafeTensors *st, int i, LfError *err) {
    const Param *w = NULL;
    char module[200], buf[200], name[260];
    const char *tensor = st->tensors[i].name;
    for (int k = 0; k < 2 && !w; k++) {
        const Param *p = k ? (m->head && m->head->lora ? m->head->w : NULL)
                           : (m->embedding_lora.A ? m->word_embedding : NULL);
        if (!p) continue;
        snprintf(module, sizeof module, "%s", k ? "lm_head.weight" : p->name);
        *strrchr(module, '.') = 0; /* "...embed_tokens.weight" -> its module */
        snprintf(name, sizeof name, PEFT_PREFIX "%s.base_layer.weight",
                 model_tree_name(&m->cfg, module, 0, buf, sizeof buf));
        if (!strcmp(name, tensor)) w = p;
    }
    if (!w) return 0;
    float **slot, *file = malloc(w->numel * sizeof *file);
    float *host = file ? model_host_weights(m, 0, &slot, NULL, err) : NULL;
    int rc = !file ? lf_fail(err, "out of memory") : !host ? -1 : 0;
    if (!rc) rc = safetensors_read_f32(st, tensor, w->ndim, w->shape, file, err);
    double most = 0, worst = 0;
    for (size_t k = 0; !rc && k < w->numel; k++) {
        float ours = slot[w - m->params][k];
        most = fmax(most, fabsf(ours)), worst = fmax(worst, fabsf(ours - file[k]));
    }
    if (!rc && worst > 1e-2 * most)
        rc = lf_fail(err,
                     "tensor '%s' replaces the model's %s with another (up to %.3g apart), which "
                     "loraft does not load: train the adapter on that model",
                     tensor, w == m->word_embedding ? "token embedding" : "LM head", worst);
    free(file), free(host);
    if (host) free(slot);
    return rc ? -1 : 1;
}

/* Every tensor of an adapter file must be one the model reads (scatter): one that its config's
 * targets leave out would otherwise be dropped unseen. */
static int check_no_strays(Model *m, const char *path, LfError *err) {
    SafeTensors st;
    if (safetensors_open(&st, path, err)) return -1;
    char(*names)[260] = calloc((size_t)m->n_params + 1, sizeof *names); /* the adapter's, once */
    int rc = names ? 0 : lf_fail(err, "out of memory"), n = 0;
    for (int j = 0; j < m->n_params && !rc; j++)
        if (in_adapter(&m->params[j]))
            entry_name(m, &m->params[j], PEFT_PREFIX, "", names[n++], sizeof *names);
    for (int i = 0; i < st.n_tensors && !rc; i++) {
        int found = 0;
        for (int j = 0; j < n && !found; j++) found = !strcmp(names[j], st.tensors[i].name);
        char copy[80];
        if (!found)
            found = tied_rows_copy(m, copy, sizeof copy) && !strcmp(copy, st.tensors[i].name);
        if (!found) found = is_own_copy(m, &st, i, err);
        if (found < 0)
            rc = lf_wrap(err, "%s", path);
        else if (!found)
            rc = lf_fail(err,
                         "%s: tensor '%s' is not an adapter of this model (its config's "
                         "target_modules, layers_to_transform, exclude_modules and modules_to_save "
                         "leave that module out)",
                         path, st.tensors[i].name);
    }
    free(names);
    safetensors_close(&st);
    return rc;
}

int adapter_load_weights(Model *m, const char *dir, LfError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    return check_language_model_only(m, path, err) || check_no_strays(m, path, err) ||
                   scatter(m, path, in_adapter, PEFT_PREFIX, NULL, 0, err)
               ? -1
               : 0;
}

/* ---- model directories ---- */

int model_open(Model *m, const char *model_dir, const char *adapter_dir, BaseDtype base_dtype,
               Precision precision, const Ops *ops, int max_batch, int max_len, LfError *err) {
    ModelConfig cfg;
    TrainSpec spec;
    if (model_config_load(&cfg, model_dir, err)) return -1;
    train_spec_defaults(&spec);
    spec.strategy = STRATEGY_NONE; /* or the adapter's LoRA */
    spec.task = cfg.score_head ? TASK_REWARD : arch_task(cfg.arch);
    spec.base_dtype = base_dtype;
    spec.precision = precision;
    if (adapter_dir && adapter_read_config(&spec, NULL, 0, adapter_dir, err)) return -1;
    spec.task = arch_adapter_task(cfg.arch, spec.task);
    if (max_len <= 0) max_len = cfg.max_positions;
    if (model_create(m, &cfg, &spec, ops, model_dir, 0, max_batch, max_len, NULL, 0, err))
        return -1;
    if (adapter_dir && adapter_load_weights(m, adapter_dir, err)) return model_free(m), -1;
    return 0;
}

/* A GGUF model holds its tokenizer in its metadata, which loraft does not write out as a
 * tokenizer.json: the Hugging Face tokenizer files are taken from the folder of the .gguf
 * file, and without a tokenizer.json there the save stops before writing anything. */
static int gguf_tokenizer_dir(const char *gguf, char *dir, size_t cap, LfError *err) {
    const char *slash = strrchr(gguf, '/');
    int n = !slash ? 1 : slash == gguf ? 1 : (int)(slash - gguf);
    if ((size_t)snprintf(dir, cap, "%.*s", n, slash ? gguf : ".") >= cap)
        return lf_fail(err, "%s: path too long", gguf);
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (stat(path, &sb))
        return lf_fail(err,
                       "%s: a model directory made from a GGUF file needs the model's Hugging Face "
                       "tokenizer, which loraft cannot write from GGUF metadata: put its "
                       "tokenizer.json (and tokenizer_config.json) beside the .gguf file, in %s",
                       gguf, dir);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

int model_dir_save(Model *m, const char *dir, const char *tokenizer_dir, int merge, LfError *err) {
    char path[4200], gguf_dir[4096];
    if (tokenizer_dir && ends_with(tokenizer_dir, ".gguf")) {
        if (gguf_tokenizer_dir(tokenizer_dir, gguf_dir, sizeof gguf_dir, err)) return -1;
        tokenizer_dir = gguf_dir;
    }
    ModelConfig cfg = m->cfg; /* as the merge writes it */
    cfg.tie_word_embeddings = cfg.tie_word_embeddings && !(merge && model_merge_unties(m));
    if (dir_create(dir, err)) return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (model_config_save(&cfg, path, err)) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (model_save_weights(m, path, merge, err)) return -1;
    return tokenizer_dir ? tokenizer_copy_files(tokenizer_dir, dir, err) : 0;
}

/* ---- training state ---- */

static int trains(const Param *p) {
    return p->grad != NULL;
}

int train_state_save(Model *m, const AdamW *opt, const TrainState *ts, const char *dir,
                     LfError *err) {
    if (dir_create(dir, err)) return -1;
    int n = m->n_params;
    float *host = malloc((3 * m->n_grads + 1) * sizeof(float));
    StEntry *entries = calloc(3 * n, sizeof *entries);
    char(*names)[200] = calloc(3 * n, sizeof *names);
    int rc = -1;
    if (host && entries && names) {
        int k = gather(m, trains, "param.", "", host, entries, names, 0, NULL, 0);
        k = gather(m, trains, "adam_m.", "", host + m->n_grads, entries, names, k, opt->m, 1);
        k = gather(m, trains, "adam_v.", "", host + 2 * m->n_grads, entries, names, k, opt->v, 1);
        char path[4200];
        snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
        rc = k < 0 ? lf_fail(err, "out of memory") : safetensors_write(path, entries, k, NULL, err);
    } else {
        lf_fail(err, "out of memory");
    }
    free(host);
    free(entries);
    free(names);
    if (rc) return -1;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "global_step", ts->global_step);
    cJSON_AddNumberToObject(c, "epoch", ts->epoch);
    cJSON_AddNumberToObject(c, "adam_step", opt->step);
    if (ts->evaluated)
        cJSON_AddNumberToObject(c, "best_metric", ts->best_metric);
    else
        cJSON_AddNullToObject(c, "best_metric");
    cJSON_AddStringToObject(c, "metric_for_best", ts->metric);
    cJSON_AddStringToObject(c, "best_checkpoint", ts->best_checkpoint);
    cJSON_AddStringToObject(c, "strategy", strategy_name(m->spec.strategy));
    cJSON_AddNumberToObject(c, "trainable_values", (double)m->n_grads);
    rc = json_save(c, dir, "trainer_state.json", err);
    cJSON_Delete(c);
    return rc;
}

/* Whether name is one of CHECKPOINT_METRICS. */
static int metric_known(const char *name) {
    size_t n = strlen(name);
    for (const char *p = CHECKPOINT_METRICS; n && *p; p += strcspn(p, "|"), p += *p == '|')
        if (!strncmp(p, name, n) && (p[n] == '|' || !p[n])) return 1;
    return 0;
}

/* best_metric (a number, or null before any evaluation), metric_for_best, best_checkpoint. */
static int read_best(const cJSON *c, const char *path, TrainState *ts, LfError *err) {
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(c, "best_metric");
    const cJSON *metric = cJSON_GetObjectItemCaseSensitive(c, "metric_for_best");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(c, "best_checkpoint");
    ts->evaluated = best && !cJSON_IsNull(best);
    if (ts->evaluated && json_num(c, "best_metric", path, 0, &ts->best_metric, err)) return -1;
    if (!cJSON_IsString(metric) || strlen(metric->valuestring) >= sizeof ts->metric ||
        (ts->evaluated && !metric_known(metric->valuestring)))
        return lf_fail(err, "%s: key 'metric_for_best' must be one of " CHECKPOINT_METRICS, path);
    if (!cJSON_IsString(dir) || !rundir_valid_checkpoint_ref(dir->valuestring))
        return lf_fail(
            err, "%s: key 'best_checkpoint' must be \"\" or \"" RUNDIR_CHECKPOINTS "/NAME\"", path);
    strcpy(ts->metric, metric->valuestring);
    strcpy(ts->best_checkpoint, dir->valuestring);
    return 0;
}

/* trainer_state.json: every key typed and in range, and from a run like this one. */
static int read_trainer_state(Model *m, AdamW *opt, TrainState *ts, const char *dir, LfError *err) {
    cJSON *c = json_load(dir, "trainer_state.json", err);
    if (!c) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    const cJSON *strat = cJSON_GetObjectItemCaseSensitive(c, "strategy");
    double nvals = 0;
    int rc = json_count(c, "global_step", path, &ts->global_step, err) ||
                     json_count(c, "epoch", path, &ts->epoch, err) ||
                     json_count(c, "adam_step", path, &opt->step, err) ||
                     read_best(c, path, ts, err) ||
                     json_num(c, "trainable_values", path, 1, &nvals, err)
                 ? -1
                 : 0;
    if (!rc && !cJSON_IsString(strat))
        rc = lf_fail(err, "%s: key 'strategy' must be a string", path);
    else if (!rc && (strcmp(strat->valuestring, strategy_name(m->spec.strategy)) ||
                     nvals != (double)m->n_grads))
        rc = lf_fail(
            err,
            "%s: the state is from a %s run with %.0f trainable values; this run is %s with %zu",
            dir, strat->valuestring, nvals, strategy_name(m->spec.strategy), m->n_grads);
    cJSON_Delete(c);
    return rc;
}

int train_state_load(Model *m, AdamW *opt, TrainState *ts, const char *dir, LfError *err) {
    if (read_trainer_state(m, opt, ts, dir, err)) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    if (scatter(m, path, trains, "param.", NULL, 0, err)) return -1;
    if (scatter(m, path, trains, "adam_m.", opt->m, 1, err)) return -1;
    return scatter(m, path, trains, "adam_v.", opt->v, 1, err);
}
