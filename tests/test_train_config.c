/* test_train_config.c: TrainConfig defaults, loading, error messages, overrides, save ->
 * load round trip, the shipped configs/ files, and that docs/CONFIG.md is up to date.
 * Expected defaults are the values the spec and HF Trainer/PEFT document, not read back
 * from the table under test. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loraft/train_config.h"

static char dir[] = "/tmp/loraft-cfg-XXXXXX";

/* Writes text to dir/name and returns the path (static buffer, one at a time). */
static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return path;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a config; returns the error message ("" on success). */
static const char *load_text(TrainConfig *c, const char *text) {
    static LfError err;
    err.msg[0] = 0;
    if (train_config_load(c, write_file("cfg.json", text), &err) == 0) return "";
    return err.msg;
}

#define CHECK_HAS(msg, part)                                                                       \
    do {                                                                                           \
        const char *m_ = (msg);                                                                    \
        CHECK(strstr(m_, part) != NULL);                                                           \
        if (!strstr(m_, part)) fprintf(stderr, "  message: %s\n  wanted: %s\n", m_, part);         \
    } while (0)

#define CHECK_LOADS(c, text)                                                                       \
    do {                                                                                           \
        const char *m_ = load_text(c, text);                                                       \
        CHECK(m_[0] == 0);                                                                         \
        if (m_[0]) fprintf(stderr, "  message: %s\n", m_);                                         \
    } while (0)

static void test_defaults(void) {
    TrainConfig c;
    train_config_defaults(&c);
    CHECK(!strcmp(c.model, "") && !strcmp(c.tokenizer, "") && !strcmp(c.device, "auto"));
    CHECK(!strcmp(c.base_dtype, "f32") && !strcmp(c.precision, "auto"));
    CHECK(c.num_labels == 0 && c.n_labels == 0);
    CHECK(!strcmp(c.format, "auto") && !strcmp(c.text_column, "text"));
    CHECK(!strcmp(c.label_column, "label") && c.max_length == 512 && c.truncate_left == 0);
    CHECK(c.train_limit == 0 && c.validation_limit == 0 && c.bucket_by_length == 0);
    CHECK(!strcmp(c.strategy, "lora") && c.r == 8 && c.alpha == 8.0f && c.dropout == 0.0f);
    CHECK(c.n_targets == 0 && c.use_rslora == 0 && !strcmp(c.bias, "none"));
    CHECK(c.n_modules_to_save == 0 && c.n_rank_pattern == 0 && c.n_alpha_pattern == 0);
    CHECK(c.n_layers == 0 && c.n_layers_pattern == 0);
    CHECK(c.lr == 5e-5f && c.batch_size == 8 && c.eval_batch_size == 0 && c.epochs == 3);
    CHECK(c.max_steps == 0 && c.weight_decay == 0.0f && c.warmup_ratio == 0.0f);
    CHECK(c.warmup_steps == 0 && !strcmp(c.lr_scheduler, "linear"));
    CHECK(c.max_grad_norm == 1.0f && c.grad_accum == 1);
    CHECK(c.adam_beta1 == 0.9f && c.adam_beta2 == 0.999f && c.adam_eps == 1e-8f);
    CHECK(c.seed == 42 && !strcmp(c.output_dir, ""));
    CHECK(!strcmp(c.eval_strategy, "epoch") && !strcmp(c.save_strategy, "epoch"));
    CHECK(!strcmp(c.metric_for_best, "eval_loss") && c.eval_before_training == 1);
    CHECK(c.logging_steps == 10 && c.threads == 0);
}

static const char *full_config =
    "{\n"
    "  \"model\": {\"model\": \"models/distilbert-base-uncased\", \"device\": \"cpu\",\n"
    "            \"labels\": [\"neg\", \"pos\"], \"num_labels\": 2},\n"
    "  \"data\": {\"train_file\": \"d/train.jsonl\", \"validation_file\": \"d/val.jsonl\",\n"
    "           \"format\": \"jsonl\", \"text_column\": \"review\", \"max_length\": 256,\n"
    "           \"truncation_side\": \"left\", \"train_limit\": 100, \"bucket_by_length\": 4},\n"
    "  \"lora\": {\"r\": 4, \"alpha\": 32, \"dropout\": 0.01, \"use_rslora\": true,\n"
    "           \"target_modules\": [\"q_lin\", \"v_lin\"], \"modules_to_save\": "
    "[\"pre_classifier\"],\n"
    "           \"rank_pattern\": {\"q_lin\": 16, \"layer\\\\.[0-2]\\\\..*v_lin\": 2},\n"
    "           \"alpha_pattern\": {\"v_lin\": 0.5}, \"layers_to_transform\": [0, 2, 4],\n"
    "           \"layers_pattern\": [\"layer\"]},\n"
    "  \"train\": {\"learning_rate\": 1e-3, \"batch_size\": 4, \"num_epochs\": 10,\n"
    "            \"weight_decay\": 0.01, \"warmup_steps\": 5, \"lr_scheduler\": \"cosine\",\n"
    "            \"gradient_accumulation_steps\": 2, \"seed\": 9007199254740992,\n"
    "            \"output_dir\": \"runs/x\", \"eval_strategy\": \"steps\", \"eval_steps\": 50,\n"
    "            \"metric_for_best\": \"f1\", \"eval_before_training\": false, \"threads\": 2}\n"
    "}\n";

static void test_full_file(void) {
    TrainConfig c;
    CHECK_LOADS(&c, full_config);
    CHECK(!strcmp(c.model, "models/distilbert-base-uncased") && !strcmp(c.device, "cpu"));
    CHECK(c.n_labels == 2 && !strcmp(c.labels[0], "neg") && !strcmp(c.labels[1], "pos"));
    CHECK(c.num_labels == 2 && !strcmp(c.train_file, "d/train.jsonl"));
    CHECK(!strcmp(c.validation_file, "d/val.jsonl") && !strcmp(c.format, "jsonl"));
    CHECK(!strcmp(c.text_column, "review") && !strcmp(c.label_column, "label"));
    CHECK(c.max_length == 256 && c.truncate_left == 1 && c.train_limit == 100);
    CHECK(c.bucket_by_length == 4 && c.r == 4 && c.alpha == 32.0f && c.dropout == 0.01f);
    CHECK(c.use_rslora == 1 && c.n_targets == 2 && !strcmp(c.target_modules[0], "q_lin"));
    CHECK(!strcmp(c.target_modules[1], "v_lin") && c.n_modules_to_save == 1);
    CHECK(!strcmp(c.modules_to_save[0], "pre_classifier"));
    CHECK(c.n_rank_pattern == 2 && !strcmp(c.rank_pattern[0].key, "q_lin"));
    CHECK(c.rank_pattern[0].value == 16 && c.rank_pattern[1].value == 2);
    CHECK(!strcmp(c.rank_pattern[1].key, "layer\\.[0-2]\\..*v_lin"));
    CHECK(c.n_alpha_pattern == 1 && c.alpha_pattern[0].value == 0.5f);
    CHECK(c.n_layers == 3 && c.layers_to_transform[2] == 4 && c.n_layers_pattern == 1);
    CHECK(!strcmp(c.layers_pattern[0], "layer"));
    CHECK(c.lr == 1e-3f && c.batch_size == 4 && c.epochs == 10 && c.weight_decay == 0.01f);
    CHECK(c.warmup_steps == 5 && !strcmp(c.lr_scheduler, "cosine") && c.grad_accum == 2);
    CHECK(c.seed == 9007199254740992ull && !strcmp(c.output_dir, "runs/x"));
    CHECK(!strcmp(c.eval_strategy, "steps") && c.eval_steps == 50);
    CHECK(!strcmp(c.metric_for_best, "f1") && c.eval_before_training == 0 && c.threads == 2);
    CHECK(!strcmp(c.strategy, "lora") && c.epochs == 10); /* untouched keys keep defaults */
    LfError err;
    CHECK(train_config_check(&c, &err) == 0);
}

static void test_output_dir_default(void) {
    TrainConfig c;
    LfError err;
    CHECK(train_config_load(&c, write_file("my-run.v2.json", "{\"model\":{\"model\":\"m\"}}"),
                            &err) == 0);
    CHECK(!strcmp(c.output_dir, "runs/my-run.v2"));
}

static void test_errors(void) {
    TrainConfig c;
    /* unknown keys and sections, with suggestions and file:line */
    CHECK_HAS(load_text(&c, "{\n\"train\": {\n  \"batch_size\": 2,\n  \"learning_rte\": 1}}"),
              "cfg.json:4: train.learning_rte: unknown key (did you mean learning_rate?)");
    CHECK_HAS(load_text(&c, "{\"trian\": {}}"), "trian: unknown section (did you mean train?)");
    CHECK_HAS(load_text(&c, "{\"train\": {\"r\": 4}}"),
              "train.r: unknown key (did you mean lora.r?)");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"lora_alpha\": 4}}"),
              "lora.lora_alpha: unknown key (did you mean alpha?)");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"zzzzzzzzzzzz\": 4}}"),
              "unknown key (see docs/CONFIG.md)");
    /* wrong types */
    CHECK_HAS(load_text(&c, "{\"train\": {\"batch_size\": \"8\"}}"),
              "train.batch_size: expected an integer, got a string");
    CHECK_HAS(load_text(&c, "{\"train\": {\"batch_size\": 2.5}}"), "expected an integer, got 2.5");
    CHECK_HAS(load_text(&c, "{\"model\": {\"model\": 3}}"),
              "model.model: expected a string, got a number");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"use_rslora\": 1}}"), "expected a boolean, got a number");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"target_modules\": \"q_lin\"}}"),
              "expected an array of strings, got a string");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"target_modules\": [\"q\", 1]}}"),
              "lora.target_modules[1]: expected a string, got a number");
    CHECK_HAS(load_text(&c, "{\"lora\": 3}"), "lora: expected an object of keys, got a number");
    CHECK_HAS(load_text(&c, "[1]"), "expected a JSON object");
    /* ranges and choices */
    CHECK_HAS(load_text(&c, "{\"lora\": {\"r\": 0}}"),
              "lora.r: 0 is out of range (allowed: [1, 4096])");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"dropout\": 1}}"), "allowed: [0, 1)");
    CHECK_HAS(load_text(&c, "{\"train\": {\"learning_rate\": 0}}"), "allowed: > 0");
    CHECK_HAS(load_text(&c, "{\"train\": {\"batch_size\": 0}}"),
              "train.batch_size: 0 is out of range");
    CHECK_HAS(load_text(&c, "{\"train\": {\"seed\": -1}}"), "train.seed: -1 is out of range");
    /* a positive double that is 0 as the float it is kept in (it would save as 0) */
    CHECK_HAS(load_text(&c, "{\"train\": {\"learning_rate\": 5e-47}}"),
              "train.learning_rate: 5e-47 is 0 as a float, out of range");
    CHECK_HAS(load_text(&c, "{\"train\": {\"warmup_ratio\": 1e40}}"), "does not fit a float");
    CHECK_HAS(load_text(&c, "{\"model\": {\"device\": \"gpu\"}}"),
              "model.device: \"gpu\" is not one of auto, cpu, cuda");
    CHECK_HAS(load_text(&c, "{\"model\": {\"precision\": \"fp16\"}}"),
              "model.precision: \"fp16\" is not one of auto, fp32, tf32, bf16");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"bias\": \"some\"}}"),
              "lora.bias: \"some\" is not one of none, all, lora_only");
    CHECK_HAS(load_text(&c, "{\"data\": {\"truncation_side\": \"middle\"}}"),
              "not one of right, left");
    /* structure */
    CHECK_HAS(load_text(&c, "{\"lora\": {\"r\": 4,\n\"r\": 5}}"),
              "cfg.json:1: lora.r: duplicate key");
    CHECK_HAS(load_text(&c, "{\n\"lora\": {\"r\": 4,,}}"), "cfg.json:2: invalid JSON near");
    CHECK_HAS(load_text(&c, ""), "invalid JSON");
    static char long_list[4 * MAX_LABELS + 64] = "{\"model\": {\"labels\": [";
    for (int i = 0; i <= MAX_LABELS; i++) strcat(long_list, i ? ",\"a\"" : "\"a\"");
    CHECK_HAS(load_text(&c, strcat(long_list, "]}}")),
              "model.labels: 4097 entries, at most 4096 allowed");
    char long_name[200];
    snprintf(long_name, sizeof long_name, "{\"data\": {\"text_column\": \"%070d\"}}", 0);
    CHECK_HAS(load_text(&c, long_name), "is longer than 63 characters");
    LfError err;
    /* PEFT's patterns: regular expressions POSIX can match, values in r's or alpha's range */
    CHECK_HAS(load_text(&c, "{\"lora\": {\"rank_pattern\": {\"q_lin\": 0}}}"),
              "lora.rank_pattern: \"q_lin\": 0 is out of range (allowed: [1, 4096])");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"rank_pattern\": {\"q_lin\": 2.5}}}"),
              "lora.rank_pattern: \"q_lin\": expected an integer, got a fraction");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"rank_pattern\": [\"q_lin\"]}}"),
              "lora.rank_pattern: expected an object of numbers, got an array");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"alpha_pattern\": {\"(?=q)\": 2}}}"),
              "lora.alpha_pattern: key \"(?=q)\": regular expression \"(?=q)\": (?= is not "
              "supported");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"alpha_pattern\": {\"q[\": 2}}}"),
              "regular expression \"q[\" does not compile");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"alpha_pattern\": {\"q\": -1}}}"),
              "lora.alpha_pattern: \"q\": -1 is out of range (allowed: > 0)");
    char long_key[300];
    snprintf(long_key, sizeof long_key, "{\"lora\": {\"rank_pattern\": {\"%0130d\": 2}}}", 0);
    CHECK_HAS(load_text(&c, long_key), "is longer than 127 characters");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"alpha_pattern\": {\"q\": 1e40}}}"),
              "lora.alpha_pattern: \"q\": 1e+40 is out of range");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"layers_to_transform\": [0, -1]}}"),
              "lora.layers_to_transform: -1 is out of range");
    CHECK_HAS(load_text(&c, "{\"lora\": {\"layers_to_transform\": [\"0\"]}}"),
              "lora.layers_to_transform[0]: expected an integer, got a string");
    /* numbers (T_FLOATS): a list or one, each a float */
    CHECK_LOADS(&c, "{\"train\": {\"reward_weights\": [1, -2.5, 0.1]}}");
    CHECK(c.n_reward_weights == 3 && c.reward_weights[1] == -2.5f && c.reward_weights[2] == 0.1f);
    CHECK_LOADS(&c, "{\"train\": {\"reward_weights\": 0.5}}");
    CHECK(c.n_reward_weights == 1 && c.reward_weights[0] == 0.5f);
    CHECK_HAS(load_text(&c, "{\"train\": {\"reward_weights\": [1, \"2\"]}}"),
              "train.reward_weights[1]: expected a number, got a string");
    CHECK_HAS(load_text(&c, "{\"train\": {\"reward_weights\": [1e40]}}"),
              "train.reward_weights[0]: 1e+40 does not fit a float");
    CHECK_HAS(load_text(&c, "{\"train\": {\"reward_weights\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}"),
              "train.reward_weights: 9 entries, at most 8 allowed");
    CHECK(train_config_load(&c, "/nonexistent/x.json", &err) == -1);
    CHECK_HAS(err.msg, "/nonexistent/x.json: cannot open");
}

static void test_check(void) {
    TrainConfig c;
    LfError err;
    train_config_defaults(&c);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "model.model is required");
    CHECK(train_config_set(&c, "model.model=m", &err) == 0 && train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "model.labels=a,b,c", &err) == 0);
    CHECK(train_config_set(&c, "model.num_labels=2", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "model.labels has 3 names but model.num_labels is 2");
    CHECK(train_config_set(&c, "model.num_labels=0", &err) == 0);
    CHECK(train_config_set(&c, "train.save_strategy=steps", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "train.save_steps >= 1");
    CHECK(train_config_set(&c, "train.save_steps=100", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "train.loraplus_lr_ratio=16", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.strategy=full", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "train.loraplus_lr_ratio is LoRA+: it needs lora.strategy lora, not full");
    /* DoRA: LoRA's strategy, with or without lora dropout */
    CHECK(train_config_set(&c, "train.loraplus_lr_ratio=0", &err) == 0);
    CHECK(train_config_set(&c, "lora.use_dora=true", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.use_dora is DoRA: it needs lora.strategy lora, not full");
    CHECK(train_config_set(&c, "lora.strategy=lora", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.dropout=0.05", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    /* PEFT's patterns and layers shape LoRA's adapters; layers_pattern names layers_to_transform's
     */
    CHECK(train_config_set(&c, "lora.use_dora=false", &err) == 0);
    CHECK(train_config_set(&c, "lora.layers_pattern=layers", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.layers_pattern needs lora.layers_to_transform");
    CHECK(train_config_set(&c, "lora.layers_to_transform=1", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.layers_pattern=la(yers", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.layers_pattern: regular expression \"la(yers\" does not compile");
    CHECK(train_config_set(&c, "lora.layers_pattern=[]", &err) == 0);
    /* peft's trainable tokens: ids (up to LORA_MAX_TOKENS of them, no negative one), with LoRA */
    CHECK(train_config_set(&c, "lora.trainable_token_indices=1,2,50256", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(c.n_token_indices == 3 && c.trainable_token_indices[2] == 50256);
    CHECK(train_config_set(&c, "lora.trainable_token_indices=[-1]", &err) == -1);
    CHECK_HAS(err.msg, "lora.trainable_token_indices: -1 is out of range");
    CHECK(train_config_set(&c, "lora.trainable_token_indices=[]", &err) == 0);
    CHECK(train_config_set(&c, "lora.lm_head_token_indices=7,0", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(c.n_head_token_indices == 2 && c.lm_head_token_indices[1] == 0);
    CHECK(train_config_set(&c, "lora.lm_head_token_indices=[-2]", &err) == -1);
    CHECK_HAS(err.msg, "lora.lm_head_token_indices: -2 is out of range");
    CHECK(train_config_set(&c, "lora.lm_head_token_indices=[]", &err) == 0);
    static TrainConfig head;
    CHECK_LOADS(&head, "{\"model\": {\"model\": \"m\"}, \"data\": {\"train_file\": \"t\"}, "
                       "\"lora\": {\"strategy\": \"head\", \"trainable_token_indices\": [3]}}");
    CHECK(train_config_check(&head, &err) == -1);
    CHECK_HAS(err.msg, "lm_head_token_indices are adapters' rows: they need lora.strategy lora or "
                       "tokens, not head");
    CHECK_LOADS(&head, "{\"model\": {\"model\": \"m\"}, \"data\": {\"train_file\": \"t\"}, "
                       "\"lora\": {\"strategy\": \"full\", \"lm_head_token_indices\": [3]}}");
    CHECK(train_config_check(&head, &err) == -1);
    CHECK_HAS(err.msg, "they need lora.strategy lora or tokens, not full");
    /* peft's TrainableTokens: the rows alone, so their ids and no LoRA target */
    CHECK_LOADS(&head, "{\"model\": {\"model\": \"m\"}, \"data\": {\"train_file\": \"t\"}, "
                       "\"lora\": {\"strategy\": \"tokens\", \"trainable_token_indices\": [3]}}");
    CHECK(train_config_check(&head, &err) == 0);
    CHECK(train_config_set(&head, "lora.target_modules=q_proj", &err) == 0 &&
          train_config_check(&head, &err) == -1);
    CHECK_HAS(err.msg, "lora.target_modules and modules_to_save are LoRA's");
    CHECK(train_config_set(&head, "lora.target_modules=[]", &err) == 0);
    CHECK(train_config_set(&head, "lora.trainable_token_indices=[]", &err) == 0 &&
          train_config_check(&head, &err) == -1);
    CHECK_HAS(err.msg, "lora.strategy tokens trains the rows of lora.trainable_token_indices");
    CHECK(train_config_set(&head, "lora.use_dora=true", &err) == 0 &&
          train_config_check(&head, &err) == -1);
    CHECK_HAS(err.msg, "it needs lora.strategy lora, not tokens");
    /* PEFT's bias trains biases beside LoRA's adapters (DoRA's too), not under another
     * strategy */
    CHECK(train_config_set(&c, "lora.strategy=lora", &err) == 0);
    CHECK(train_config_set(&c, "lora.layers_to_transform=[]", &err) == 0);
    CHECK(train_config_set(&c, "lora.bias=lora_only", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.use_dora=true", &err) == 0);
    CHECK(train_config_set(&c, "lora.dropout=0", &err) == 0);
    CHECK(train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.bias=none", &err) == 0);
    CHECK(train_config_set(&c, "lora.init_lora_weights=pissa", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.init_lora_weights pissa with lora.use_dora is not supported");
    CHECK(train_config_set(&c, "lora.init_lora_weights=olora", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.init_lora_weights olora with lora.use_dora is not supported");
    CHECK(train_config_set(&c, "lora.init_lora_weights=loftq", &err) == -1);
    CHECK_HAS(err.msg, "\"loftq\" is not one of default, gaussian, pissa, olora");
    CHECK(train_config_set(&c, "lora.init_lora_weights=default", &err) == 0);
    CHECK(train_config_set(&c, "lora.bias=lora_only", &err) == 0);
    CHECK(train_config_set(&c, "lora.use_dora=false", &err) == 0);
    CHECK(train_config_set(&c, "lora.strategy=head", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.bias lora_only trains biases beside LoRA's adapters: it needs "
                       "lora.strategy lora, not head");
    CHECK(train_config_set(&c, "lora.bias=none", &err) == 0);
    CHECK(train_config_set(&c, "lora.strategy=lora", &err) == 0);
    CHECK(train_config_set(&c, "lora.layers_to_transform=1", &err) == 0);
    /* all-linear is PEFT's word for every linear layer: no other name beside it */
    CHECK(train_config_set(&c, "lora.target_modules=q_lin,all-linear", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "lora.target_modules: \"all-linear\" stands alone");
    CHECK(train_config_set(&c, "lora.target_modules=ALL-LINEAR", &err) == 0 &&
          train_config_check(&c, &err) == 0);
    CHECK(train_config_set(&c, "lora.exclude_modules=model.layers.0.mlp.down_proj,lm_head", &err) ==
          0);
    CHECK(c.n_exclude == 2 && !strcmp(c.exclude_modules[0], "model.layers.0.mlp.down_proj"));
    CHECK(train_config_set(&c, "lora.strategy=full", &err) == 0);
    CHECK(train_config_check(&c, &err) == -1);
    CHECK_HAS(err.msg, "they need lora.strategy lora, not full");
    /* GRPO's entropy mask and bonus: in range, GRPO's alone, adaptive control's bounds in order */
    static TrainConfig rl;
    CHECK_LOADS(&rl, "{\"model\": {\"model\": \"m\", \"task\": \"grpo\", \"reward_model\": "
                     "\"r\"}, \"data\": {\"train_file\": \"t\", \"max_prompt_length\": 8}, "
                     "\"train\": {\"top_entropy_quantile\": 0.2, \"entropy_coef\": 0.01}}");
    CHECK(train_config_check(&rl, &err) == 0);
    CHECK(rl.top_entropy_quantile == 0.2f && rl.entropy_coef == 0.01f && !rl.use_adaptive_entropy);
    CHECK(train_config_set(&rl, "train.top_entropy_quantile=1.5", &err) == -1);
    CHECK(train_config_set(&rl, "train.use_adaptive_entropy=true", &err) == 0);
    CHECK(train_config_set(&rl, "train.entropy_coef_min=2", &err) == 0);
    CHECK(train_config_check(&rl, &err) == -1);
    CHECK_HAS(err.msg, "train.entropy_coef_min 2 is above train.entropy_coef_max 1");
    CHECK(train_config_set(&rl, "train.entropy_coef_min=0", &err) == 0 &&
          train_config_check(&rl, &err) == 0);
    CHECK(train_config_set(&rl, "model.task=rloo", &err) == 0);
    CHECK(train_config_check(&rl, &err) == -1);
    CHECK_HAS(err.msg, "are GRPO's (TRL's RLOO has no entropy mask or bonus)");
    /* RLOO's reward_clip_range: two numbers, in order; not GRPO's */
    CHECK(train_config_set(&rl, "train.use_adaptive_entropy=false", &err) == 0);
    CHECK(train_config_set(&rl, "train.entropy_coef=0", &err) == 0);
    CHECK(train_config_set(&rl, "train.top_entropy_quantile=1", &err) == 0);
    CHECK(train_config_set(&rl, "train.reward_clip_range=-1,2", &err) == 0 &&
          train_config_check(&rl, &err) == 0);
    CHECK(rl.n_reward_clip_range == 2 && rl.reward_clip_range[0] == -1 &&
          rl.reward_clip_range[1] == 2);
    const char *bad_clips[] = {"train.reward_clip_range=3,2", "train.reward_clip_range=1"};
    for (int i = 0; i < 2; i++) {
        CHECK(train_config_set(&rl, bad_clips[i], &err) == 0);
        CHECK(train_config_check(&rl, &err) == -1);
        CHECK_HAS(err.msg, "train.reward_clip_range is RLOO's [min, max], min at most max");
    }
    CHECK(train_config_set(&rl, "train.reward_clip_range=0,1", &err) == 0);
    CHECK(train_config_set(&rl, "model.task=grpo", &err) == 0);
    CHECK(train_config_check(&rl, &err) == -1);
    CHECK_HAS(err.msg, "train.reward_clip_range is RLOO's");
}

static void test_set(void) {
    TrainConfig c;
    LfError err;
    train_config_defaults(&c);
    CHECK(train_config_set(&c, "train.learning_rate=1e-3", &err) == 0 && c.lr == 1e-3f);
    CHECK(train_config_set(&c, "lora.target_modules=q_lin,v_lin", &err) == 0);
    CHECK(c.n_targets == 2 && !strcmp(c.target_modules[1], "v_lin"));
    CHECK(train_config_set(&c, "lora.target_modules=[\"query\"]", &err) == 0);
    CHECK(c.n_targets == 1 && !strcmp(c.target_modules[0], "query") && !c.target_modules[1][0]);
    CHECK(train_config_set(&c, "lora.target_modules=[]", &err) == 0 && c.n_targets == 0);
    CHECK(train_config_set(&c, "model.model=models/x=y", &err) == 0 &&
          !strcmp(c.model, "models/x=y"));
    CHECK(train_config_set(&c, "data.text_column=123", &err) == 0 && !strcmp(c.text_column, "123"));
    CHECK(train_config_set(&c, "data.text_column=\"quoted\"", &err) == 0);
    CHECK(!strcmp(c.text_column, "quoted"));
    CHECK(train_config_set(&c, "data.truncation_side=left", &err) == 0 && c.truncate_left == 1);
    CHECK(train_config_set(&c, "lora.use_rslora=true", &err) == 0 && c.use_rslora == 1);
    CHECK(train_config_set(&c, "train.seed=7", &err) == 0 && c.seed == 7);
    CHECK(train_config_set(&c, "model.precision=tf32", &err) == 0 && !strcmp(c.precision, "tf32"));
    CHECK(train_config_set(&c, "train.batch_size=abc", &err) == -1);
    CHECK_HAS(
        err.msg,
        "override \"train.batch_size=abc\": train.batch_size: expected an integer, got a string");
    CHECK(train_config_set(&c, "train.lr=1", &err) == -1);
    CHECK_HAS(err.msg, "train.lr: unknown key (did you mean learning_rate?)");
    CHECK(train_config_set(&c, "train.learning_rate", &err) == -1);
    CHECK_HAS(err.msg, "expected section.key=value");
    CHECK(train_config_set(&c, "lr=1", &err) == -1);
    CHECK(train_config_set(&c, "lora.dropout=-0.1", &err) == -1);
    CHECK_HAS(err.msg, "lora.dropout: -0.1 is out of range");
    CHECK(train_config_set(&c, "trian.seed=1", &err) == -1);
    CHECK_HAS(err.msg, "did you mean train?");
    CHECK(train_config_set(&c, "lora.target_modules=a,b", &err) == 0);
    CHECK(train_config_set(&c, "lora.target_modules=[\"x\", 1]", &err) == -1);
    CHECK(train_config_set(&c, "lora.target_modules=x,,y", &err) == -1);
    CHECK_HAS(err.msg, "lora.target_modules[1]: \"\" must have 1 to 63 characters");
    /* failed overrides change nothing */
    CHECK(c.lr == 1e-3f && c.dropout == 0.0f && c.n_targets == 2);
    CHECK(!strcmp(c.target_modules[0], "a") && !strcmp(c.target_modules[1], "b"));
}

/* PEFT's patterns: JSON, or name:value pairs (each split at its last ':'); layers as a list or one
 */
static void test_set_patterns(void) {
    TrainConfig c;
    LfError err;
    train_config_defaults(&c);
    CHECK(train_config_set(&c, "lora.rank_pattern=v_proj:16,layers\\.0\\..*:4", &err) == 0);
    CHECK(c.n_rank_pattern == 2 && !strcmp(c.rank_pattern[1].key, "layers\\.0\\..*"));
    CHECK(c.rank_pattern[0].value == 16 && c.rank_pattern[1].value == 4);
    CHECK(train_config_set(&c, "lora.rank_pattern={\"a{1,2}\": 3}", &err) == 0);
    CHECK(c.n_rank_pattern == 1 && !strcmp(c.rank_pattern[0].key, "a{1,2}") &&
          !c.rank_pattern[1].key[0]);
    CHECK(train_config_set(&c, "lora.alpha_pattern=q:1.5", &err) == 0);
    CHECK(c.n_alpha_pattern == 1 && c.alpha_pattern[0].value == 1.5f);
    CHECK(train_config_set(&c, "lora.alpha_pattern=q", &err) == -1);
    CHECK_HAS(err.msg, "lora.alpha_pattern: expected an object of numbers, got a string");
    CHECK(train_config_set(&c, "lora.layers_to_transform=0,3", &err) == 0);
    CHECK(c.n_layers == 2 && c.layers_to_transform[1] == 3);
    CHECK(train_config_set(&c, "lora.layers_to_transform=7", &err) == 0);
    CHECK(c.n_layers == 1 && c.layers_to_transform[0] == 7 && !c.layers_to_transform[1]);
}

static void test_round_trip(void) {
    TrainConfig a, b;
    LfError err;
    CHECK_LOADS(&a, full_config);
    CHECK(train_config_set(&a, "lora.alpha=0.3", &err) == 0);
    CHECK(train_config_set(&a, "train.adam_eps=1.5e-7", &err) == 0);
    CHECK(train_config_set(&a, "train.reward_weights=1,-2.5,0.1", &err) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/saved.json", dir);
    CHECK(train_config_save(&a, path, &err) == 0);
    CHECK(train_config_load(&b, path, &err) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    train_config_defaults(&a); /* defaults (+ an output_dir) round-trip too */
    snprintf(a.output_dir, sizeof a.output_dir, "out");
    CHECK(train_config_save(&a, path, &err) == 0 && train_config_load(&b, path, &err) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(train_config_save(&a, "/nonexistent/dir/c.json", &err) == -1);
    CHECK_HAS(err.msg, "/nonexistent/dir/c.json.tmp");
    unlink(path);
}

/* Every shipped config loads and passes the cross-key checks. */
static void test_shipped_configs(void) {
    DIR *d = opendir("configs");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json")) continue;
        char path[512];
        snprintf(path, sizeof path, "configs/%s", e->d_name);
        TrainConfig c;
        LfError err;
        int ok = train_config_load(&c, path, &err) == 0 && train_config_check(&c, &err) == 0;
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s\n", err.msg);
        n++;
    }
    if (d) closedir(d);
    CHECK(n >= 5);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&buf, &cap);
    char chunk[4096];
    for (size_t r; (r = fread(chunk, 1, sizeof chunk, f)) > 0;) fwrite(chunk, 1, r, m);
    fclose(f);
    fclose(m);
    *len = cap;
    return buf;
}

static void test_docs_up_to_date(void) {
    char *fresh = NULL;
    size_t fresh_len = 0, doc_len = 0;
    FILE *m = open_memstream(&fresh, &fresh_len);
    train_config_write_docs(m);
    fclose(m);
    char *doc = read_all("docs/CONFIG.md", &doc_len);
    int same = doc && doc_len == fresh_len && !memcmp(doc, fresh, doc_len);
    CHECK(same);
    if (!same)
        fprintf(stderr, "docs/CONFIG.md is missing or out of date with src/train_config.c; "
                        "regenerate it with: loraft config-docs > docs/CONFIG.md\n");
    CHECK(strstr(fresh, "| `learning_rate` | number | `5e-05` | > 0 |") != NULL);
    free(doc);
    free(fresh);
}

int main(void) {
    if (!mkdtemp(dir)) skip("cannot create a temp directory");
    test_defaults();
    test_full_file();
    test_output_dir_default();
    test_errors();
    test_check();
    test_set();
    test_set_patterns();
    test_round_trip();
    test_shipped_configs();
    test_docs_up_to_date();
    unlink(write_file("cfg.json", ""));
    unlink(write_file("my-run.v2.json", ""));
    rmdir(dir);
    return check_report();
}
