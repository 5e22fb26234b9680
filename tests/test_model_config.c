/* test_model_config.c: config.json loading and saving for DistilBERT, BERT, Llama, Qwen2, Qwen3,
 * Mistral, SmolLM3, Gemma, Phi-3 and GPT-2. The literal configs below are the config.json files of
 * distilbert-base-uncased, sentence-transformers/all-MiniLM-L6-v2, openai-community/gpt2,
 * Qwen/Qwen2.5-0.5B-Instruct, mistralai/Mistral-7B-v0.1 and -v0.3, microsoft/Phi-3-mini-4k-instruct
 * (and others, said where) as published on the Hugging Face hub, so the expected values are what
 * transformers itself reads from them. */
#include "check.h"
#include "loraft/fileio.h"
#include "loraft/model_config.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/loraft_cfg_XXXXXX";
static char cfg_path[512];

static const char *distilbert_base_uncased =
    "{\"activation\": \"gelu\", \"architectures\": [\"DistilBertForMaskedLM\"],"
    " \"attention_dropout\": 0.1, \"dim\": 768, \"dropout\": 0.1, \"hidden_dim\": 3072,"
    " \"initializer_range\": 0.02, \"max_position_embeddings\": 512,"
    " \"model_type\": \"distilbert\", \"n_heads\": 12, \"n_layers\": 6, \"pad_token_id\": 0,"
    " \"qa_dropout\": 0.1, \"seq_classif_dropout\": 0.2, \"sinusoidal_pos_embds\": false,"
    " \"tie_weights_\": true, \"transformers_version\": \"4.10.0.dev0\", \"vocab_size\": 30522}";

static const char *all_minilm_l6_v2 =
    "{\"_name_or_path\": \"nreimers/MiniLM-L6-H384-uncased\", \"architectures\": [\"BertModel\"],"
    " \"attention_probs_dropout_prob\": 0.1, \"gradient_checkpointing\": false,"
    " \"hidden_act\": \"gelu\", \"hidden_dropout_prob\": 0.1, \"hidden_size\": 384,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 1536, \"layer_norm_eps\": 1e-12,"
    " \"max_position_embeddings\": 512, \"model_type\": \"bert\", \"num_attention_heads\": 12,"
    " \"num_hidden_layers\": 6, \"pad_token_id\": 0, \"position_embedding_type\": \"absolute\","
    " \"transformers_version\": \"4.8.2\", \"type_vocab_size\": 2, \"use_cache\": true,"
    " \"vocab_size\": 30522}";

static const char *openai_gpt2 =
    "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPT2LMHeadModel\"],"
    " \"attn_pdrop\": 0.1, \"bos_token_id\": 50256, \"embd_pdrop\": 0.1, \"eos_token_id\": 50256,"
    " \"initializer_range\": 0.02, \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\","
    " \"n_ctx\": 1024, \"n_embd\": 768, \"n_head\": 12, \"n_layer\": 12, \"n_positions\": 1024,"
    " \"resid_pdrop\": 0.1, \"summary_activation\": null, \"summary_first_dropout\": 0.1,"
    " \"summary_proj_to_labels\": true, \"summary_type\": \"cls_index\", \"summary_use_proj\": "
    "true,"
    " \"task_specific_params\": {\"text-generation\": {\"do_sample\": true, \"max_length\": 50}},"
    " \"vocab_size\": 50257}";

static const char *qwen2_5_0_5b_instruct =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"hidden_act\": \"silu\","
    " \"hidden_size\": 896, \"initializer_range\": 0.02, \"intermediate_size\": 4864,"
    " \"max_position_embeddings\": 32768, \"max_window_layers\": 21, \"model_type\": \"qwen2\","
    " \"num_attention_heads\": 14, \"num_hidden_layers\": 24, \"num_key_value_heads\": 2,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 32768,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.43.1\", \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

/* a config.json with Qwen/Qwen3-0.6B's keys and values: heads of 128, twice the width over 16 */
static const char *qwen3_0_6b =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 151643, \"eos_token_id\": 151645,"
    " \"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": 1024,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 28, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000,"
    " \"sliding_window\": null, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.51.0\", \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

static const char *mistral_7b_v0_1 =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 32768,"
    " \"model_type\": \"mistral\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
    " \"sliding_window\": 4096, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.34.0.dev0\", \"use_cache\": true, \"vocab_size\": 32000}";

static const char *mistral_7b_v0_3 =
    "{\"architectures\": [\"MistralForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\", \"hidden_size\": 4096,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 14336,"
    " \"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 1000000.0, \"sliding_window\": null,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.42.0.dev0\", \"use_cache\": true, \"vocab_size\": 32768}";

/* a config.json with Mistral-Nemo-Base-2407's sizes, in transformers 5's form (rope_parameters
 * with rope_theta inside): 32 heads of 128 over a hidden size of 5120 */
static const char *mistral_nemo_like =
    "{\"architectures\": [\"MistralForCausalLM\"], \"head_dim\": 128, \"hidden_size\": 5120,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 1024000,"
    " \"model_type\": \"mistral\", \"num_attention_heads\": 32, \"num_hidden_layers\": 40,"
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05,"
    " \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"},"
    " \"sliding_window\": null, \"tie_word_embeddings\": false, \"vocab_size\": 131072}";

static int load_literal(const char *json, ModelConfig *cfg, LfError *err) {
    if (file_write_atomic(cfg_path, json, strlen(json), err)) return -1;
    return model_config_load(cfg, cfg_path, err);
}

static void expect_fail(const char *json, const char *phrase, int line) {
    ModelConfig cfg;
    LfError err = {{0}};
    int rc = load_literal(json, &cfg, &err);
    int ok = rc == -1 && strstr(err.msg, cfg_path) && strstr(err.msg, phrase);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  line %d: expected '%s', got rc=%d '%s'\n", line, phrase, rc, err.msg);
}
#define FAIL(json, phrase) expect_fail(json, phrase, __LINE__)

static void test_hub_configs(void) {
    ModelConfig c;
    LfError err = {{0}};
    CHECK(load_literal(distilbert_base_uncased, &c, &err) == 0);
    CHECK(c.arch == ARCH_DISTILBERT && c.vocab_size == 30522 && c.hidden_size == 768);
    CHECK(c.num_layers == 6 && c.num_heads == 12 && c.ffn_size == 3072 && c.max_positions == 512);
    CHECK(c.type_vocab_size == 0 && c.activation == ACT_GELU && c.pad_token_id == 0);
    CHECK(c.layer_norm_eps == 1e-12f && c.hidden_dropout == 0.1f && c.attention_dropout == 0.1f);
    CHECK(c.classifier_dropout == 0.2f && c.initializer_range == 0.02f);
    CHECK(c.num_labels == 2 && !strcmp(c.labels[0], "LABEL_0") && !strcmp(c.labels[1], "LABEL_1"));

    CHECK(load_literal(all_minilm_l6_v2, &c, &err) == 0);
    CHECK(c.arch == ARCH_BERT && c.vocab_size == 30522 && c.hidden_size == 384);
    CHECK(c.num_layers == 6 && c.num_heads == 12 && c.ffn_size == 1536 && c.max_positions == 512);
    CHECK(c.type_vocab_size == 2 && c.activation == ACT_GELU && c.layer_norm_eps == 1e-12f);
    CHECK(c.classifier_dropout == 0.1f); /* absent: hidden_dropout_prob, as HF does */
    CHECK(c.num_labels == 2);

    CHECK(load_literal(openai_gpt2, &c, &err) == 0);
    CHECK(c.arch == ARCH_GPT2 && c.vocab_size == 50257 && c.hidden_size == 768);
    CHECK(c.num_layers == 12 && c.num_heads == 12 && c.num_kv_heads == 12);
    CHECK(c.ffn_size == 3072 && c.max_positions == 1024); /* n_inner absent: 4 * n_embd */
    CHECK(c.activation == ACT_GELU_TANH && c.layer_norm_eps == 1e-5f && c.tie_word_embeddings);
    CHECK(c.hidden_dropout == 0.1f && c.attention_dropout == 0.1f && c.embedding_dropout == 0.1f);
    CHECK(c.bos_token_id == 50256 && c.eos_token_id == 50256 && c.pad_token_id == -1);
    ModelConfig d; /* GPT2Config()'s defaults are the hub's gpt2 */
    model_config_defaults(&d, ARCH_GPT2);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);

    CHECK(load_literal(qwen2_5_0_5b_instruct, &c, &err) == 0);
    CHECK(c.arch == ARCH_QWEN2 && arch_is_llama(c.arch) && c.vocab_size == 151936);
    CHECK(c.hidden_size == 896 && c.num_layers == 24 && c.num_heads == 14 && c.num_kv_heads == 2);
    CHECK(c.ffn_size == 4864 && c.max_positions == 32768 && c.activation == ACT_SILU);
    CHECK(c.rope_theta == 1e6f && c.rope_scaling.type == ROPE_DEFAULT && c.layer_norm_eps == 1e-6f);
    CHECK(c.tie_word_embeddings && c.bos_token_id == 151643 && c.eos_token_id == 151645);
    CHECK(c.pad_token_id == -1 && c.attention_dropout == 0 && !c.score_head);
    CHECK(c.head_dim == 0 && model_head_size(&c) == 64);

    CHECK(load_literal(qwen3_0_6b, &c, &err) == 0);
    CHECK(c.arch == ARCH_QWEN3 && arch_is_llama(c.arch) && c.hidden_size == 1024);
    CHECK(c.num_heads == 16 && c.num_kv_heads == 8 && c.head_dim == 128);
    CHECK(model_head_size(&c) == 128 && c.num_heads * model_head_size(&c) == 2 * c.hidden_size);
    CHECK(c.max_positions == 40960 && c.rope_theta == 1e6f && c.tie_word_embeddings);
    RopeFreqs r; /* RoPE over the head's 128, not hidden / heads */
    model_rope_freqs(&c, &r);
    CHECK(r.half == 64);
}

/* Qwen3: head_dim defaults to Qwen3Config's 128 and is always written; a decoupled head size on
 * Llama too; the refusals. */
static void test_qwen3_options(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    CHECK(load_literal("{\"model_type\":\"qwen3\",\"hidden_size\":256,\"num_attention_heads\":4}",
                       &c, &err) == 0);
    CHECK(c.head_dim == 128 && model_head_size(&c) == 128 && c.vocab_size == 151936);
    CHECK(load_literal("{\"model_type\":\"qwen3\",\"hidden_size\":256,\"num_attention_heads\":4,"
                       "\"head_dim\":null}",
                       &c, &err) == 0);
    CHECK(c.head_dim == 64); /* null: hidden / heads, spelled out (saved so) */
    CHECK(load_literal("{\"model_type\":\"llama\",\"hidden_size\":96,\"num_attention_heads\":4,"
                       "\"head_dim\":16}",
                       &c, &err) == 0 &&
          model_head_size(&c) == 16);
    CHECK(load_literal("{\"model_type\":\"llama\",\"hidden_size\":96,\"num_attention_heads\":4,"
                       "\"head_dim\":null}",
                       &c, &err) == 0 &&
          model_head_size(&c) == 24);
    FAIL("{\"model_type\":\"qwen3\",\"head_dim\":12.5}", "head_dim");
    FAIL("{\"model_type\":\"qwen3\",\"head_dim\":-8}", "hidden size divisible");
    /* 0 is no size (it would read as unset: a fuzz finding, Gemma 3's saved as hidden / heads) */
    FAIL("{\"model_type\":\"gemma3_text\",\"head_dim\":0}", "head_dim 0");
    FAIL("{\"model_type\":\"llama\",\"head_dim\":0.0}", "head_dim 0");
    FAIL("{\"model_type\":\"qwen3\",\"head_dim\":1024}", "head size even, at most 256");
    FAIL("{\"model_type\":\"qwen3\",\"attention_bias\":true}", "attention_bias");
    /* Qwen3Config's window: 4096 from layer max_window_layers (28) of 32 on */
    CHECK(load_literal("{\"model_type\":\"qwen3\",\"use_sliding_window\":true}", &c, &err) == 0);
    CHECK(c.sliding_window == 4096 && model_layer_window(&c, 27) == 0 &&
          model_layer_window(&c, 28) == 4096 && model_layer_window(&c, 31) == 4096);
    model_config_defaults(&d, ARCH_QWEN3);
    d.hidden_size = 64, d.num_heads = d.num_kv_heads = 4,
    d.head_dim = 0; /* hidden / heads, written */
    CHECK(model_config_save(&d, cfg_path, &err) == 0);
    CHECK(model_config_load(&c, cfg_path, &err) == 0 && model_head_size(&c) == 16);
    char *text;
    size_t len;
    CHECK(file_read_all(cfg_path, &text, &len, &err) == 0);
    CHECK(strstr(text, "\"Qwen3ForCausalLM\"") && strstr(text, "\"head_dim\":\t16") &&
          strstr(text, "\"attention_bias\":\tfalse") && !strstr(text, "mlp_bias"));
    free(text);
}

/* Qwen2's options: Qwen2Config()'s defaults, its sliding windows (use_sliding_window, then
 * layer_types or max_window_layers; written back so), attention_bias ignored as transformers
 * ignores it (q, k and v have biases whatever it says), the score class. */
static void test_qwen2_options(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    model_config_defaults(&d, ARCH_QWEN2);
    CHECK(d.vocab_size == 151936 && d.hidden_size == 4096 && d.ffn_size == 22016);
    CHECK(d.max_positions == 32768 && d.bos_token_id == -1 && d.eos_token_id == -1);
    CHECK(d.num_heads == 32 && d.num_kv_heads == 32 && d.rope_theta == 10000.0f);
    CHECK(load_literal("{\"model_type\":\"qwen2\"}", &c, &err) == 0);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(load_literal("{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"layer_types\":"
                       "[\"full_attention\",\"full_attention\"],\"attention_bias\":true}",
                       &c, &err) == 0);
    for (int l = 0; l < 2; l++) CHECK(model_layer_window(&c, l) == 0);
    /* the window counts only under use_sliding_window (Qwen2Config drops it otherwise) */
    CHECK(load_literal("{\"model_type\":\"qwen2\",\"num_hidden_layers\":3,\"sliding_window\":8,"
                       "\"max_window_layers\":1}",
                       &c, &err) == 0 &&
          c.sliding_window == 0 && model_layer_window(&c, 2) == 0);
    CHECK(load_literal("{\"model_type\":\"qwen2\",\"num_hidden_layers\":3,\"sliding_window\":8,"
                       "\"max_window_layers\":1,\"use_sliding_window\":true}",
                       &c, &err) == 0);
    CHECK(model_layer_window(&c, 0) == 0 && model_layer_window(&c, 1) == 8 &&
          model_layer_window(&c, 2) == 8);
    /* layer_types rules over max_window_layers */
    CHECK(load_literal("{\"model_type\":\"qwen2\",\"num_hidden_layers\":3,\"sliding_window\":8,"
                       "\"max_window_layers\":1,\"use_sliding_window\":true,\"layer_types\":"
                       "[\"sliding_attention\",\"full_attention\",\"sliding_attention\"]}",
                       &c, &err) == 0);
    CHECK(model_layer_window(&c, 0) == 8 && model_layer_window(&c, 1) == 0 &&
          model_layer_window(&c, 2) == 8);
    CHECK(model_config_save(&c, cfg_path, &err) == 0);
    CHECK(model_config_load(&d, cfg_path, &err) == 0);
    for (int l = 0; l < 3; l++) CHECK(model_layer_window(&d, l) == model_layer_window(&c, l));
    FAIL("{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"layer_types\":"
         "[\"full_attention\",\"sliding_attention\"]}",
         "there is no window");
    FAIL("{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"use_sliding_window\":true,"
         "\"sliding_window\":null,\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
         "there is no window");
    FAIL("{\"model_type\":\"qwen2\",\"num_hidden_layers\":3,\"layer_types\":"
         "[\"full_attention\",\"full_attention\"]}",
         "a list of 3 layer types");
    FAIL("{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"layer_types\":[\"chunked\"]}",
         "layer_types[0] must be");
    FAIL("{\"model_type\":\"qwen2\",\"use_sliding_window\":true,\"sliding_window\":0}",
         "positive integer or null");
    FAIL("{\"model_type\":\"qwen2\",\"layer_types\":\"full_attention\"}", "must be a list");
    FAIL("{\"model_type\":\"qwen2\",\"num_hidden_layers\":2000}", "at most 1024 layers");
    FAIL("{\"model_type\":\"qwen2\",\"use_sliding_window\":1}", "must be a boolean");
    CHECK(load_literal("{\"model_type\":\"qwen2\",\"architectures\":"
                       "[\"Qwen2ForSequenceClassification\"],\"num_labels\":1}",
                       &c, &err) == 0 &&
          c.score_head && c.num_labels == 1);
    CHECK(model_config_save(&c, cfg_path, &err) == 0);
    char *text;
    size_t len;
    CHECK(file_read_all(cfg_path, &text, &len, &err) == 0);
    CHECK(strstr(text, "\"Qwen2ForSequenceClassification\"") &&
          strstr(text, "\"use_sliding_window\":\tfalse") && !strstr(text, "attention_bias"));
    free(text);
}

/* c saved to cfg_path reads back the same; the file's text (free it) */
static char *round_trip_text(const ModelConfig *c) {
    ModelConfig d;
    LfError err = {{0}};
    char *text = NULL;
    size_t len;
    CHECK(model_config_save(c, cfg_path, &err) == 0 && model_config_load(&d, cfg_path, &err) == 0);
    CHECK(memcmp(c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(file_read_all(cfg_path, &text, &len, &err) == 0);
    return text ? text : calloc(1, 1);
}

/* SmolLM3: SmolLM3Config()'s defaults (NoPE every fourth layer), no_rope_layers over its interval,
 * windows on the NoPE layers by default, written back and read the same. */
static void test_smollm3(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    model_config_defaults(&d, ARCH_SMOLLM3);
    CHECK(d.vocab_size == 128256 && d.num_layers == 36 && d.num_heads == 16 && d.num_kv_heads == 4);
    CHECK(d.rope_theta == 2000000.0f && d.tie_word_embeddings && d.pad_token_id == 128004);
    CHECK(model_layer_rope(&d, 0) && model_layer_rope(&d, 2) && !model_layer_rope(&d, 3) &&
          !model_layer_rope(&d, 35) && model_layer_rope(&d, 36));
    CHECK(load_literal("{\"model_type\":\"smollm3\"}", &c, &err) == 0);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(load_literal("{\"model_type\":\"smollm3\",\"num_hidden_layers\":6,"
                       "\"no_rope_layer_interval\":3}",
                       &c, &err) == 0);
    CHECK(model_layer_rope(&c, 1) && !model_layer_rope(&c, 2) && !model_layer_rope(&c, 5));
    CHECK(load_literal("{\"model_type\":\"smollm3\",\"num_hidden_layers\":3,"
                       "\"no_rope_layers\":[0,1,1],\"use_sliding_window\":true,"
                       "\"sliding_window\":5}",
                       &c, &err) == 0);
    CHECK(!model_layer_rope(&c, 0) && model_layer_rope(&c, 1) && model_layer_window(&c, 0) == 5 &&
          model_layer_window(&c, 1) == 0); /* the NoPE layer windowed: SmolLM3Config's default */
    char *text = round_trip_text(&c);
    CHECK(strstr(text, "\"SmolLM3ForCausalLM\"") && strstr(text, "\"no_rope_layers\"") &&
          !strstr(text, "max_window_layers"));
    free(text);
    FAIL("{\"model_type\":\"smollm3\",\"num_hidden_layers\":2,\"no_rope_layers\":[1]}",
         "a list of 2 0s and 1s");
    FAIL("{\"model_type\":\"smollm3\",\"num_hidden_layers\":2,\"no_rope_layers\":[1,2]}",
         "no_rope_layers[1] must be 0 or 1");
    FAIL("{\"model_type\":\"smollm3\",\"no_rope_layer_interval\":0}", "a positive integer");
    FAIL("{\"model_type\":\"smollm3\",\"attention_bias\":true}", "attention_bias");
}

/* google/gemma-3-270m's config.json as published (transformers 4.55), but eos_token_id as
 * gemma-3-1b-it's list */
static const char gemma3_270m[] =
    "{\"_sliding_window_pattern\": 6, \"architectures\": [\"Gemma3ForCausalLM\"], "
    "\"attention_bias\": false, \"attention_dropout\": 0.0, \"attn_logit_softcapping\": null, "
    "\"bos_token_id\": 2, \"eos_token_id\": [1, 106], \"final_logit_softcapping\": null, "
    "\"head_dim\": 256, \"hidden_activation\": \"gelu_pytorch_tanh\", \"hidden_size\": 640, "
    "\"initializer_range\": 0.02, \"intermediate_size\": 2048, \"layer_types\": "
    "[\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", "
    "\"sliding_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
    "\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\", "
    "\"full_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\", "
    "\"sliding_attention\", \"sliding_attention\", \"full_attention\"], "
    "\"max_position_embeddings\": 32768, \"model_type\": \"gemma3_text\", "
    "\"num_attention_heads\": 4, \"num_hidden_layers\": 18, \"num_key_value_heads\": 1, "
    "\"pad_token_id\": 0, \"query_pre_attn_scalar\": 256, \"rms_norm_eps\": 1e-06, "
    "\"rope_local_base_freq\": 10000.0, \"rope_scaling\": null, \"rope_theta\": 1000000.0, "
    "\"sliding_window\": 512, \"torch_dtype\": \"bfloat16\", \"use_bidirectional_attention\": "
    "false, \"use_cache\": true, \"vocab_size\": 262144}";

/* Gemma 3: Gemma3TextConfig()'s defaults (every sixth layer full), gemma-3-270m's config.json,
 * transformers 5's rope_parameters per layer type (Gemma 3 4B's linear scaling of the full
 * layers), sliding_window_pattern, written back and read the same (an eos_token_id list too), 27B's
 * attention scalar and soft-capping (none in Gemma 3's configs, but its classes read them), and
 * the refusals: the bidirectional variant, scaled RoPE in the windowed layers. */
static void test_gemma3(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    model_config_defaults(&d, ARCH_GEMMA3);
    CHECK(d.vocab_size == 262208 && d.num_layers == 26 && d.num_heads == 8 && d.num_kv_heads == 4);
    CHECK(model_head_size(&d) == 256 && d.activation == ACT_GELU_TANH && d.tie_word_embeddings);
    CHECK(d.rope_theta == 1e6f && d.rope_local_theta == 1e4f && d.bos_token_id == 2 &&
          d.eos_token_id == 1 && d.pad_token_id == 0);
    CHECK(d.query_pre_attn_scalar == 256 && d.attn_softcap == 0 && d.final_softcap == 0);
    CHECK(model_layer_window(&d, 0) == 4096 && model_layer_window(&d, 4) == 4096 &&
          model_layer_window(&d, 5) == 0 && model_layer_window(&d, 11) == 0 &&
          model_layer_window(&d, 25) == 4096);
    CHECK(load_literal("{\"model_type\":\"gemma3_text\"}", &c, &err) == 0);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(load_literal(gemma3_270m, &c, &err) == 0);
    CHECK(c.arch == ARCH_GEMMA3 && c.hidden_size == 640 && c.num_layers == 18 &&
          c.num_kv_heads == 1 && model_head_size(&c) == 256 && c.ffn_size == 2048 &&
          c.vocab_size == 262144);
    CHECK(c.eos_token_id == 1 && c.n_eos_more == 1 && c.eos_more[0] == 106);
    int full = 0;
    for (int l = 0; l < 18; l++) full += model_layer_window(&c, l) == 0;
    CHECK(full == 3 && model_layer_window(&c, 5) == 0 && model_layer_window(&c, 0) == 512);
    char *text = round_trip_text(&c);
    CHECK(strstr(text, "\"Gemma3ForCausalLM\"") && strstr(text, "\"gelu_pytorch_tanh\"") &&
          strstr(text, "\"query_pre_attn_scalar\":\t256") && strstr(text, "\"layer_types\"") &&
          strstr(text, "\"rope_local_base_freq\":\t10000") && !strstr(text, "use_sliding_window"));
    free(text);
    /* transformers 5's form: the full layers' RoPE linear, the windowed layers' plain */
    CHECK(load_literal("{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":4,"
                       "\"sliding_window_pattern\":2,\"rope_parameters\":{\"full_attention\":"
                       "{\"rope_type\":\"linear\",\"factor\":8.0,\"rope_theta\":1000000.0},"
                       "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000.0}}}",
                       &c, &err) == 0);
    CHECK(c.rope_scaling.type == ROPE_LINEAR && c.rope_scaling.factor == 8.0f &&
          c.rope_theta == 1e6f && c.rope_local_theta == 1e4f);
    CHECK(model_layer_window(&c, 0) == 4096 && model_layer_window(&c, 1) == 0 &&
          model_layer_window(&c, 2) == 4096 && model_layer_window(&c, 3) == 0);
    RopeFreqs g, l;
    model_rope_freqs(&c, &g), model_rope_freqs_local(&c, &l);
    CHECK(g.half == 128 && l.half == 128 && l.inv_freq[0] == 1.0f && g.inv_freq[0] == 0.125f &&
          fabsf(l.inv_freq[1] / (float)pow(1e4, -2.0 / 256) - 1) < 1e-6f &&
          fabsf(g.inv_freq[1] / (float)(pow(1e6, -2.0 / 256) / 8) - 1) < 1e-6f);
    CHECK(model_config_save(&c, cfg_path, &err) == 0 &&
          model_config_load(&d, cfg_path, &err) == 0 &&
          memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(load_literal("{\"model_type\":\"gemma3_text\",\"sliding_window\":null}", &c, &err) == 0 &&
          model_layer_window(&c, 0) == 0);
    /* 27B's scalar over heads of 128: scores times 1 / sqrt(168); soft-capping read when given */
    CHECK(load_literal("{\"model_type\":\"gemma3_text\",\"head_dim\":128,"
                       "\"query_pre_attn_scalar\":168,\"final_logit_softcapping\":30.0}",
                       &c, &err) == 0);
    AttnScore sc = model_attn_score(&c);
    CHECK(sc.scale == 1.0f / sqrtf(168.0f) && sc.softcap == 0 && c.final_softcap == 30.0f);
    CHECK(model_config_save(&c, cfg_path, &err) == 0 &&
          model_config_load(&d, cfg_path, &err) == 0 &&
          memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    FAIL("{\"model_type\":\"gemma3_text\",\"attn_logit_softcapping\":-1}",
         "'attn_logit_softcapping' must be a positive number or null");
    FAIL("{\"model_type\":\"gemma3_text\",\"query_pre_attn_scalar\":0}",
         "query_pre_attn_scalar > 0");
    FAIL("{\"model_type\":\"gemma3_text\",\"use_bidirectional_attention\":true}",
         "use_bidirectional_attention true");
    FAIL("{\"model_type\":\"gemma3_text\",\"rope_parameters\":{\"full_attention\":{},"
         "\"sliding_attention\":{\"rope_type\":\"linear\",\"factor\":2}}}",
         "sliding_attention layers");
    FAIL("{\"model_type\":\"gemma3_text\",\"rope_parameters\":{\"rope_type\":\"default\"}}",
         "'full_attention' and 'sliding_attention'");
    FAIL("{\"model_type\":\"gemma3_text\",\"sliding_window_pattern\":0}", "a positive integer");
    FAIL("{\"model_type\":\"gemma3_text\",\"sliding_window\":null,\"num_hidden_layers\":1,"
         "\"layer_types\":[\"sliding_attention\"]}",
         "no window");
    FAIL("{\"model_type\":\"gemma3_text\",\"hidden_activation\":\"silu\"}",
         "gelu_pytorch_tanh or gelu for gemma3_text and gemma2");
    FAIL("{\"model_type\":\"gemma3_text\",\"rope_local_base_freq\":0}",
         "rope_local_base_freq >= 1");
    FAIL("{\"model_type\":\"llama\",\"eos_token_id\":[]}", "a list of 1 to 8 ids");
    FAIL("{\"model_type\":\"llama\",\"eos_token_id\":[2,\"x\"]}",
         "'eos_token_id' must be an integer");
    FAIL("{\"model_type\":\"llama\",\"eos_token_id\":[2,32000]}", "end-of-sequence ids");
}

/* google/gemma-3-4b-it's config.json as published (transformers 4.50: text_config with only its
 * non-default keys, eos_token_id at the top level; the vision_config shortened) */
static const char gemma3_4b_it[] =
    "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"boi_token_index\": 255999, "
    "\"eoi_token_index\": 256000, \"eos_token_id\": [1, 106], \"image_token_index\": 262144, "
    "\"initializer_range\": 0.02, \"mm_tokens_per_image\": 256, \"model_type\": \"gemma3\", "
    "\"text_config\": {\"hidden_size\": 2560, \"intermediate_size\": 10240, \"model_type\": "
    "\"gemma3_text\", \"num_hidden_layers\": 34, \"rope_scaling\": {\"factor\": 8.0, "
    "\"rope_type\": \"linear\"}, \"sliding_window\": 1024}, \"torch_dtype\": \"bfloat16\", "
    "\"transformers_version\": \"4.50.0.dev0\", \"vision_config\": {\"hidden_size\": 1152, "
    "\"image_size\": 896, \"model_type\": \"siglip_vision_model\", \"patch_size\": 14, "
    "\"vision_use_head\": false}}";

/* Gemma 3's multimodal checkpoints: gemma-3-4b-it's text_config over Gemma3TextConfig()'s defaults
 * (8 heads of 256 over 4 KV heads, window 1024 in five layers of six, linear 8 on the full
 * layers' RoPE only), the top-level eos_token_id list and head tying over text_config's, an absent
 * text_config as Gemma3TextConfig(); no config.json of its own written; the refusals, by name. */
static void test_gemma3_multimodal(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    CHECK(load_literal(gemma3_4b_it, &c, &err) == 0);
    CHECK(c.arch == ARCH_GEMMA3 && c.multimodal && c.hidden_size == 2560 && c.ffn_size == 10240 &&
          c.num_layers == 34 && c.num_heads == 8 && c.num_kv_heads == 4 &&
          model_head_size(&c) == 256 && c.vocab_size == 262208 && c.tie_word_embeddings);
    CHECK(c.eos_token_id == 1 && c.n_eos_more == 1 && c.eos_more[0] == 106 && c.bos_token_id == 2 &&
          c.pad_token_id == 0);
    CHECK(c.rope_scaling.type == ROPE_LINEAR && c.rope_scaling.factor == 8.0f &&
          c.rope_theta == 1e6f && c.rope_local_theta == 1e4f);
    RopeFreqs g, l;
    model_rope_freqs(&c, &g), model_rope_freqs_local(&c, &l);
    CHECK(g.inv_freq[0] == 0.125f && l.inv_freq[0] == 1.0f);
    CHECK(model_layer_window(&c, 0) == 1024 && model_layer_window(&c, 5) == 0 &&
          model_layer_window(&c, 33) == 1024 && model_layer_window(&c, 29) == 0);
    CHECK(model_config_save(&c, cfg_path, &err) == -1 &&
          strstr(err.msg, "Gemma 3's multimodal checkpoint") && strstr(err.msg, "--format gguf"));
    /* no text_config: Gemma3TextConfig()'s; the top level's tie_word_embeddings false unties */
    CHECK(load_literal("{\"model_type\":\"gemma3\",\"tie_word_embeddings\":false,"
                       "\"pad_token_id\":null}",
                       &c, &err) == 0);
    model_config_defaults(&d, ARCH_GEMMA3);
    CHECK(c.multimodal && !c.tie_word_embeddings && c.pad_token_id == -1 &&
          c.hidden_size == d.hidden_size && c.num_layers == d.num_layers &&
          c.eos_token_id == d.eos_token_id && c.sliding_window == d.sliding_window);
    CHECK(load_literal("{\"model_type\":\"gemma3\",\"text_config\":{\"tie_word_embeddings\":false,"
                       "\"eos_token_id\":[1,106]},\"eos_token_id\":7}",
                       &c, &err) == 0 &&
          c.tie_word_embeddings && c.eos_token_id == 7 && c.n_eos_more == 0);
    FAIL("{\"model_type\":\"gemma3\",\"architectures\":[\"Gemma3ForSequenceClassification\"]}",
         "architectures 'Gemma3ForSequenceClassification' is not supported for model_type gemma3");
    FAIL("{\"model_type\":\"gemma3\",\"text_config\":[]}", "'text_config' must be an object");
    FAIL("{\"model_type\":\"gemma3\",\"text_config\":{\"model_type\":\"gemma2\"}}",
         "text_config: model_type 'gemma2' is not supported");
    FAIL("{\"model_type\":\"gemma3\",\"text_config\":{\"use_bidirectional_attention\":true}}",
         "text_config: use_bidirectional_attention true");
    FAIL("{\"model_type\":\"gemma3\",\"text_config\":{\"hidden_size\":\"x\"}}",
         "text_config: key 'hidden_size' must be an integer");
    FAIL("{\"model_type\":\"gemma3\",\"tie_word_embeddings\":1}",
         "key 'tie_word_embeddings' must be a boolean");
    FAIL("{\"model_type\":\"gemma3\",\"eos_token_id\":[]}", "a list of 1 to 8 ids");
}

/* google/gemma-2-2b-it's config.json (transformers 4.42's keys: hidden_act beside
 * hidden_activation, cache_implementation, no layer_types) */
static const char gemma2_2b[] =
    "{\"architectures\": [\"Gemma2ForCausalLM\"], \"attention_bias\": false, "
    "\"attention_dropout\": 0.0, \"attn_logit_softcapping\": 50.0, \"bos_token_id\": 2, "
    "\"cache_implementation\": \"hybrid\", \"eos_token_id\": [1, 107], "
    "\"final_logit_softcapping\": 30.0, \"head_dim\": 256, \"hidden_act\": "
    "\"gelu_pytorch_tanh\", \"hidden_activation\": \"gelu_pytorch_tanh\", \"hidden_size\": 2304, "
    "\"initializer_range\": 0.02, \"intermediate_size\": 9216, \"max_position_embeddings\": 8192, "
    "\"model_type\": \"gemma2\", \"num_attention_heads\": 8, \"num_hidden_layers\": 26, "
    "\"num_key_value_heads\": 4, \"pad_token_id\": 0, \"query_pre_attn_scalar\": 256, "
    "\"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, \"sliding_window\": 4096, "
    "\"torch_dtype\": \"float32\", \"transformers_version\": \"4.42.4\", \"use_cache\": true, "
    "\"vocab_size\": 256000}";

/* Gemma 2: Gemma2Config()'s defaults (even layers windowed, soft-capping 50 and 30, one RoPE
 * base), gemma-2-2b-it's config.json, 27B's attention scalar (144 over heads of 128), null
 * soft-capping, written back and read the same. */
static void test_gemma2(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    model_config_defaults(&d, ARCH_GEMMA2);
    CHECK(d.vocab_size == 256000 && d.num_layers == 26 && model_head_size(&d) == 256 &&
          d.max_positions == 8192 && d.rope_theta == 1e4f && d.rope_local_theta == 0);
    CHECK(d.query_pre_attn_scalar == 256 && d.attn_softcap == 50.0f && d.final_softcap == 30.0f);
    CHECK(model_layer_window(&d, 0) == 4096 && model_layer_window(&d, 1) == 0 &&
          model_layer_window(&d, 24) == 4096 && model_layer_window(&d, 25) == 0);
    CHECK(load_literal("{\"model_type\":\"gemma2\"}", &c, &err) == 0);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK(load_literal(gemma2_2b, &c, &err) == 0);
    CHECK(c.arch == ARCH_GEMMA2 && c.hidden_size == 2304 && c.eos_more[0] == 107 &&
          c.activation == ACT_GELU_TANH &&
          memcmp(&c, &d, offsetof(ModelConfig, eos_token_id)) == 0);
    RopeFreqs local;
    model_rope_freqs_local(&c, &local);
    AttnScore sc = model_attn_score(&c);
    CHECK(local.half == 0 && sc.scale == 1.0f / 16 && sc.softcap == 50.0f);
    char *text = round_trip_text(&c);
    CHECK(strstr(text, "\"Gemma2ForCausalLM\"") &&
          strstr(text, "\"attn_logit_softcapping\":\t50.0,") &&
          strstr(text, "\"final_logit_softcapping\":\t30.0,") && strstr(text, "\"layer_types\"") &&
          !strstr(text, "rope_local_base_freq") && !strstr(text, "q_norm"));
    free(text);
    CHECK(load_literal("{\"model_type\":\"gemma2\",\"num_hidden_layers\":46,\"hidden_size\":4608,"
                       "\"num_attention_heads\":32,\"num_key_value_heads\":16,\"head_dim\":128,"
                       "\"query_pre_attn_scalar\":144,\"attn_logit_softcapping\":null,"
                       "\"final_logit_softcapping\":null}",
                       &c, &err) == 0);
    sc = model_attn_score(&c);
    CHECK(sc.scale == 1.0f / 12 && sc.softcap == 0 && c.final_softcap == 0);
    CHECK(model_config_save(&c, cfg_path, &err) == 0 &&
          model_config_load(&d, cfg_path, &err) == 0 &&
          memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    FAIL("{\"model_type\":\"gemma2\",\"final_logit_softcapping\":\"x\"}",
         "'final_logit_softcapping' must be a finite number");
    FAIL("{\"model_type\":\"gemma2\",\"attn_logit_softcapping\":0}",
         "'attn_logit_softcapping' must be a positive number or null");
}

/* microsoft/Phi-3-mini-4k-instruct's config.json as published (transformers 4.40), less auto_map */
static const char phi3_mini_4k[] =
    "{\"_name_or_path\": \"Phi-3-mini-4k-instruct\", \"architectures\": [\"Phi3ForCausalLM\"], "
    "\"attention_bias\": false, \"attention_dropout\": 0.0, \"bos_token_id\": 1, "
    "\"embd_pdrop\": 0.0, \"eos_token_id\": 32000, \"hidden_act\": \"silu\", "
    "\"hidden_size\": 3072, \"initializer_range\": 0.02, \"intermediate_size\": 8192, "
    "\"max_position_embeddings\": 4096, \"model_type\": \"phi3\", \"num_attention_heads\": 32, "
    "\"num_hidden_layers\": 32, \"num_key_value_heads\": 32, "
    "\"original_max_position_embeddings\": 4096, \"pad_token_id\": 32000, \"resid_pdrop\": 0.0, "
    "\"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0, "
    "\"sliding_window\": 2047, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", "
    "\"transformers_version\": \"4.40.2\", \"use_cache\": true, \"vocab_size\": 32064}";

/* A config.json as microsoft/Phi-3.5-mini-instruct's (transformers 4.43's form: rope_scaling with
 * type, 131072 positions over an original 4096), into buf, with made-up factors short_factor[i] =
 * 1 + i / 32 and long_factor[i] = 1 + i, 48 each (a head of 96), the rope object's type `type` and
 * `extra` keys in it. */
static const char *phi3_5_mini(char *buf, size_t cap, const char *type, const char *extra) {
    char shorts[600] = "", longs[600] = "";
    for (int i = 0; i < 48; i++) {
        snprintf(shorts + strlen(shorts), sizeof shorts - strlen(shorts), "%s%g", i ? ", " : "",
                 1 + i / 32.0);
        snprintf(longs + strlen(longs), sizeof longs - strlen(longs), "%s%d.0", i ? ", " : "",
                 1 + i);
    }
    snprintf(buf, cap,
             "{\"architectures\": [\"Phi3ForCausalLM\"], \"attention_bias\": false, "
             "\"attention_dropout\": 0.0, \"bos_token_id\": 1, \"embd_pdrop\": 0.0, "
             "\"eos_token_id\": 32000, \"hidden_act\": \"silu\", \"hidden_size\": 3072, "
             "\"initializer_range\": 0.02, \"intermediate_size\": 8192, "
             "\"max_position_embeddings\": 131072, \"model_type\": \"phi3\", "
             "\"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 32, "
             "\"original_max_position_embeddings\": 4096, \"pad_token_id\": 32000, "
             "\"resid_pdrop\": 0.0, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {%s\"long_factor\": "
             "[%s], \"short_factor\": [%s], \"type\": \"%s\"}, \"rope_theta\": 10000.0, "
             "\"sliding_window\": 262144, \"tie_word_embeddings\": false, "
             "\"transformers_version\": \"4.43.3\", \"use_cache\": true, \"vocab_size\": 32064}",
             extra, longs, shorts, type);
    return buf;
}

/* transformers 5.24's inverse frequencies of the config above at pairs 0, 1, 10, 16, 24 and 47,
 * short and long, from:
 *   import transformers
 *   from transformers.modeling_rope_utils import _compute_longrope_parameters as L
 *   c = transformers.Phi3Config(max_position_embeddings=131072,
 *       original_max_position_embeddings=4096, rope_scaling={"type": "longrope",
 *       "short_factor": [1 + i / 32 for i in range(48)], "long_factor": [1.0 + i for i in
 * range(48)]}) s, a = L(c); l, _ = L(c, seq_len=4097) print(a, ["%.9g" % s[i] for i in (0, 1, 10,
 * 16, 24, 47)], ["%.9g" % l[i] for i in ...]) a = 1.1902380714238083 = sqrt(1 + ln(32) / ln(4096)).
 * Within 2e-7 (transformers' float32 power, product and reciprocal round three times; loraft's
 * double once: up to 3e-7 at other pairs). */
static const int phi3_pairs[] = {0, 1, 10, 16, 24, 47};
static const double phi3_short_golden[] = {
    1, 0.800391912, 0.111832328, 0.0309439208, 0.00571428565, 4.90745333e-05};
static const double phi3_long_golden[] = {
    1, 0.412702084, 0.0133436304, 0.00273034605, 0.00039999999, 2.5240156e-06};

static void check_phi3_freqs(const RopeFreqs *r, const double *want, const char *which) {
    CHECK(r->half == 48 && fabs(r->scale - sqrt(1 + log(32.0) / log(4096.0))) <= 1e-6);
    for (int k = 0; k < 6; k++) {
        int i = phi3_pairs[k];
        if (fabs(r->inv_freq[i] - want[k]) > 2e-7 * want[k]) {
            fprintf(stderr, "  phi3 %s inv_freq[%d] = %.9g, transformers %.9g\n", which, i,
                    r->inv_freq[i], want[k]);
            CHECK(0);
        }
    }
}

/* microsoft/Phi-4-mini-instruct's config.json as published (transformers 4.45), less auto_map */
static const char phi4_mini_instruct[] =
    "{\"architectures\": [\"Phi3ForCausalLM\"], \"attention_bias\": false, "
    "\"attention_dropout\": 0.0, \"bos_token_id\": 199999, \"embd_pdrop\": 0.0, "
    "\"eos_token_id\": 200020, \"full_attn_mod\": 1, \"hidden_act\": \"silu\", "
    "\"hidden_size\": 3072, \"initializer_range\": 0.02, \"intermediate_size\": 8192, "
    "\"interpolate_factor\": 1, \"lm_head_bias\": false, \"max_position_embeddings\": 131072, "
    "\"mlp_bias\": false, \"model_type\": \"phi3\", \"num_attention_heads\": 24, "
    "\"num_hidden_layers\": 32, \"num_key_value_heads\": 8, "
    "\"original_max_position_embeddings\": 4096, \"pad_token_id\": 199999, "
    "\"partial_rotary_factor\": 0.75, \"resid_pdrop\": 0.0, \"rms_norm_eps\": 1e-05, "
    "\"rope_scaling\": {\"long_factor\": [1, 1.118320672, 1.250641126, 1.398617824, 1.564103225, "
    "1.74916897, 1.956131817, 2.187582649, 2.446418898, 2.735880826, 3.059592084, 3.421605075, "
    "3.826451687, 4.279200023, 4.785517845, 5.351743533, 5.984965424, 6.693110555, 7.485043894, "
    "8.370679318, 9.36110372, 10.4687158, 11.70738129, 13.09260651, 14.64173252, 16.37415215, "
    "18.31155283, 20.47818807, 22.90118105, 25.61086418, 28.64115884, 32.03, 32.1, 32.13, 32.23, "
    "32.6, 32.61, 32.64, 32.66, 32.7, 32.71, 32.93, 32.97, 33.28, 33.49, 33.5, 44.16, 47.77], "
    "\"short_factor\": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, "
    "1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, "
    "1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "
    "\"type\": \"longrope\"}, \"rope_theta\": 10000.0, \"sliding_window\": 262144, "
    "\"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", "
    "\"transformers_version\": \"4.45.0\", \"use_cache\": true, \"vocab_size\": 200064}";

/* transformers 5.24's inverse frequencies of it at phi3_pairs, short (all 1: plain RoPE over 96
 * dims) and long, from _compute_longrope_parameters(AutoConfig.from_pretrained(...)) as above */
static const double phi4_short_golden[] = {1,           0.825404167,   0.146779925,
                                           0.046415884, 0.00999999978, 0.000121152749};
static const double phi4_long_golden[] = {
    1, 0.73807466, 0.0479736924, 0.00775541365, 0.000682979298, 2.53616804e-06};

/* Phi-4-mini-instruct's own config.json: its sizes, ids and frequencies as transformers'. Then its
 * shape (24 heads of 128, 8 KV heads, RoPE over partial_rotary_factor 0.75 of each head, longrope
 * from 4096 positions) with the factors of
 * phi3_5_mini: 96 rotary dims, so transformers 5.24's frequencies are Phi-3.5's to the bit (the
 * goldens above, from the same script with hidden_size=3072, num_attention_heads=24,
 * partial_rotary_factor=0.75). The factor top-level (Phi-4-mini's config.json) or in
 * rope_parameters (transformers 5's), and written back as read. */
static void test_phi4_mini(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    char buf[4096], extra[160];
    CHECK_OK(load_literal(phi4_mini_instruct, &c, &err), &err);
    CHECK(c.arch == ARCH_PHI3 && model_head_size(&c) == 128 && c.rotary_dim == 96 &&
          c.num_kv_heads == 8 && c.tie_word_embeddings && c.vocab_size == 200064 &&
          c.eos_token_id == 200020 && c.pad_token_id == 199999 && c.sliding_window == 262144 &&
          c.rope_scaling.type == ROPE_LONGROPE && c.rope_scaling.original_max_positions == 4096);
    RopeFreqs real;
    model_rope_freqs(&c, &real);
    check_phi3_freqs(&real, phi4_short_golden, "Phi-4-mini short");
    model_rope_freqs_long(&c, &real);
    check_phi3_freqs(&real, phi4_long_golden, "Phi-4-mini long");
    free(round_trip_text(&c));
    const char *edits[][2] = {
        {"\"num_attention_heads\": 32", "\"num_attention_heads\": 24"},
        {"\"num_key_value_heads\": 32", "\"num_key_value_heads\": 8"},
        {"\"rope_theta\"", "\"partial_rotary_factor\": 0.75, \"rope_theta\""}};
    phi3_5_mini(buf, sizeof buf, "longrope", "");
    for (int i = 0; i < 3; i++) {
        char *at = strstr(buf, edits[i][0]), rest[4096];
        snprintf(rest, sizeof rest, "%s", at + strlen(edits[i][0]));
        snprintf(at, sizeof buf - (size_t)(at - buf), "%s%s", edits[i][1], rest);
    }
    CHECK_OK(load_literal(buf, &c, &err), &err);
    CHECK(model_head_size(&c) == 128 && c.rotary_dim == 96 && model_rotary_dim(&c) == 96 &&
          c.num_kv_heads == 8 && c.rope_scaling.n_divisors == 48);
    RopeFreqs f;
    model_rope_freqs(&c, &f);
    check_phi3_freqs(&f, phi3_short_golden, "short, partial");
    model_rope_freqs_long(&c, &f);
    check_phi3_freqs(&f, phi3_long_golden, "long, partial");
    char *text = round_trip_text(&c);
    CHECK(strstr(text, "\"partial_rotary_factor\":\t0.75,") != NULL);
    free(text);
    snprintf(extra, sizeof extra, "\"partial_rotary_factor\": 0.75, ");
    phi3_5_mini(buf, sizeof buf, "longrope", extra); /* rope_parameters' factor, heads of 96 */
    CHECK(load_literal(buf, &d, &err) == -1 &&
          strstr(err.msg, "'short_factor' must be a list of 36"));
    /* a factor whose dims (int(HS * f), in double) a float would round to one less: 0.7 of 80 */
    CHECK_OK(load_literal("{\"model_type\":\"phi3\",\"hidden_size\":160,\"num_attention_heads\":2,"
                          "\"partial_rotary_factor\":0.7}",
                          &c, &err),
             &err);
    CHECK(c.rotary_dim == 56);
    free(round_trip_text(&c));
    c.hidden_size = 24, c.rotary_dim = 4; /* 1 / 3 in 15 digits times 12 is 3.999...: nudged */
    text = round_trip_text(&c);
    CHECK(strstr(text, "\"partial_rotary_factor\":\t0.333333333333334,") != NULL);
    free(text);
}

/* Phi-3: Phi3Config()'s defaults, Phi-3-mini-4k-instruct's config.json (no scaling, a window in
 * every layer) and a Phi-3.5-mini-like one (longrope: its frequencies and attention factor as
 * transformers', in transformers 4's and 5's forms and the older type names su and yarn), the
 * attention factor from factor or given, each written back and read the same. */
static void test_phi3(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    char buf[4096];
    model_config_defaults(&d, ARCH_PHI3);
    CHECK_OK(load_literal("{\"model_type\":\"phi3\"}", &c, &err), &err);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK_OK(load_literal(phi3_mini_4k, &c, &err), &err);
    CHECK(c.arch == ARCH_PHI3 && c.hidden_size == 3072 && c.num_layers == 32 && c.num_heads == 32 &&
          c.num_kv_heads == 32 && c.ffn_size == 8192 && c.vocab_size == 32064 &&
          c.max_positions == 4096 && model_head_size(&c) == 96);
    CHECK(c.rope_scaling.type == ROPE_DEFAULT && c.rope_scaling.original_max_positions == 4096 &&
          c.rope_theta == 1e4f && c.sliding_window == 2047 && model_layer_window(&c, 31) == 2047);
    CHECK(c.pad_token_id == 32000 && c.bos_token_id == 1 && c.eos_token_id == 32000 &&
          !c.tie_word_embeddings && c.layer_norm_eps == 1e-5f && c.activation == ACT_SILU);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, sliding_window)) == 0);
    char *text = round_trip_text(&c);
    CHECK(strstr(text, "\"Phi3ForCausalLM\"") && strstr(text, "\"resid_pdrop\":\t0.0,") &&
          strstr(text, "\"embd_pdrop\":\t0.0,") && strstr(text, "\"sliding_window\":\t2047,") &&
          strstr(text, "\"original_max_position_embeddings\":\t4096,") &&
          strstr(text, "\"rope_scaling\":\tnull") && !strstr(text, "_bias"));
    free(text);

    CHECK_OK(load_literal(phi3_5_mini(buf, sizeof buf, "longrope", ""), &c, &err), &err);
    const RopeScaling *r = &c.rope_scaling;
    CHECK(r->type == ROPE_LONGROPE && r->n_divisors == 48 && r->original_max_positions == 4096 &&
          c.max_positions == 131072 && c.sliding_window == 262144);
    CHECK(r->divisors[47] == 1 + 47 / 32.0f && r->long_divisors[47] == 48);
    CHECK(fabs(r->attention_factor - sqrt(1 + log(32.0) / log(4096.0))) <= 1e-6);
    RopeFreqs f;
    model_rope_freqs(&c, &f);
    check_phi3_freqs(&f, phi3_short_golden, "short");
    model_rope_freqs_long(&c, &f);
    check_phi3_freqs(&f, phi3_long_golden, "long");
    text = round_trip_text(&c);
    CHECK(strstr(text, "\"type\":\t\"longrope\"") && !strstr(text, "attention_factor") &&
          strstr(text, "\"original_max_position_embeddings\":\t4096,"));
    free(text);
    static const char *const same[][2] = {
        {"su", ""},
        {"yarn", ""}, /* Phi3Config's older names of longrope (elsewhere yarn is YaRN) */
        {"longrope", "\"original_max_position_embeddings\": 4096, \"partial_rotary_factor\": 1.0, "
                     "\"rope_type\": \"longrope\", \"rope_theta\": 10000.0, "},
        {"longrope", "\"attention_factor\": 1.1902381, \"factor\": 64, "},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        CHECK_OK(load_literal(phi3_5_mini(buf, sizeof buf, same[i][0], same[i][1]), &d, &err),
                 &err);
        CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    }
    /* transformers 5's form: rope_parameters, its original_max_position_embeddings the top level's
     */
    CHECK_OK(load_literal("{\"model_type\":\"phi3\",\"hidden_size\":64,\"num_attention_heads\":4,"
                          "\"max_position_embeddings\":256,\"original_max_position_embeddings\":64,"
                          "\"rope_parameters\":{\"rope_type\":\"longrope\",\"rope_theta\":500.0,"
                          "\"partial_rotary_factor\":1.0,\"original_max_position_embeddings\":64,"
                          "\"short_factor\":[1,1,1,1,2,2,2,2],\"long_factor\":[4,4,4,4,8,8,8,8]}}",
                          &c, &err),
             &err);
    CHECK(c.rope_theta == 500 && r->original_max_positions == 64 && r->long_divisors[7] == 8 &&
          r->attention_factor == (float)sqrt(1 + log(4.0) / log(64.0)));
    free(round_trip_text(&c));
    /* factor, else max / original: sqrt(1 + ln 8 / ln 4096); an attention_factor written back */
    CHECK_OK(load_literal(phi3_5_mini(buf, sizeof buf, "longrope", "\"factor\": 8.0, "), &c, &err),
             &err);
    CHECK(r->attention_factor == (float)sqrt(1 + log(8.0) / log(4096.0)));
    CHECK_OK(load_literal(phi3_5_mini(buf, sizeof buf, "longrope", "\"factor\": 0.5, "), &c, &err),
             &err);
    CHECK(r->attention_factor == 1); /* factor <= 1: none */
    CHECK_OK(load_literal(phi3_5_mini(buf, sizeof buf, "longrope", "\"attention_factor\": 1.5, "),
                          &c, &err),
             &err);
    CHECK(r->attention_factor == 1.5f);
    text = round_trip_text(&c);
    CHECK(strstr(text, "\"attention_factor\":\t1.5"));
    free(text);
    c.score_head = 1, c.num_labels = 1;
    text = round_trip_text(&c);
    CHECK(strstr(text, "\"Phi3ForSequenceClassification\"") && !strstr(text, "CausalLM"));
    free(text);
    test_phi4_mini();
}

/* What loraft refuses in a Phi-3 config: the dropouts its decoders lack, partial rotary embeddings
 * of an odd number of dims or a factor outside (0, 1] (and in any other architecture), other RoPE
 * types, factor lists of the wrong length or with a non-positive
 * number, longrope without an original context, or with one transformers would read otherwise;
 * longrope outside phi3. */
static void test_phi3_refusals(void) {
#define PHI3 "{\"model_type\":\"phi3\",\"hidden_size\":64,\"num_attention_heads\":4,"
#define F8 "[1,1,1,1,1,1,1,1]"
    FAIL(PHI3 "\"resid_pdrop\":0.1}",
         "key 'resid_pdrop' 0.1: loraft's decoders have no residual or embedding dropout");
    FAIL(PHI3 "\"embd_pdrop\":0.05}", "key 'embd_pdrop' 0.05");
    FAIL(PHI3 "\"resid_pdrop\":\"0\"}", "key 'resid_pdrop' must be a finite number");
    FAIL(PHI3 "\"partial_rotary_factor\":0.2}",
         "partial_rotary_factor 0.2 of head size 16: RoPE needs an even number of dims, 2 or more");
    FAIL(PHI3 "\"rope_parameters\":{\"rope_type\":\"default\",\"partial_rotary_factor\":1.5}}",
         "partial_rotary_factor 1.5 of head size 16");
    FAIL(PHI3 "\"partial_rotary_factor\":0.1}", "partial_rotary_factor 0.1 of head size 16");
    FAIL(PHI3 "\"partial_rotary_factor\":\"0.5\"}",
         "key 'partial_rotary_factor' must be a number (got a string)");
    FAIL("{\"model_type\":\"llama\",\"partial_rotary_factor\":0.5}",
         "partial rotary embeddings (partial_rotary_factor 0.5) are phi3's only (Phi-4-mini)");
    FAIL(PHI3 "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2}}",
         "RoPE scaling type 'linear' is not supported for phi3 (Phi3Config's: default, longrope");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":[1,1,1,1,1,1,1],\"long_factor\":" F8 "}}",
         "RoPE longrope key 'short_factor' must be a list of 8 numbers, one a pair of the head "
         "(got a list of 7)");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":" F8 ",\"long_factor\":3}}",
         "key 'long_factor' must be a list of 8 numbers, one a pair of the head (got a number");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":" F8 "}}",
         "RoPE scaling 'longrope' needs the key 'long_factor'");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":[1,1,1,0,1,1,1,1],\"long_factor\":" F8 "}}",
         "RoPE longrope short_factor[3] must be a number in [1e-6, 1e6]");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":" F8 ",\"long_factor\":[1,1,1,1,1,1,1,1e-300]}}",
         "RoPE longrope long_factor[7] must be a number in [1e-6, 1e6]"); /* 0 as a float */
    FAIL(PHI3 "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":" F8 ",\"long_factor\":" F8
              "}}",
         "RoPE longrope needs original_max_position_embeddings");
    FAIL(PHI3 "\"original_max_position_embeddings\":16,\"rope_scaling\":{\"type\":\"longrope\","
              "\"original_max_position_embeddings\":32,\"short_factor\":" F8 ",\"long_factor\":" F8
              "}}",
         "original_max_position_embeddings 32 differs from the top-level one, 16, which "
         "transformers reads instead");
    FAIL(PHI3 "\"rope_scaling\":{\"type\":\"longrope\",\"original_max_position_embeddings\":32,"
              "\"short_factor\":" F8 ",\"long_factor\":" F8 "}}",
         "original_max_position_embeddings 32 without the top-level key, which transformers reads "
         "instead (absent: Phi3Config's 4096)");
    FAIL(PHI3 "\"original_max_position_embeddings\":1,\"rope_scaling\":{\"type\":\"longrope\","
              "\"short_factor\":" F8 ",\"long_factor\":" F8 "}}",
         "longrope's attention factor inf (factor 4096, original context 1) is out of range");
    FAIL(PHI3 "\"original_max_position_embeddings\":0}",
         "key 'original_max_position_embeddings' must be positive (got 0)");
    FAIL(PHI3 "\"sliding_window\":0}", "key 'sliding_window' must be a positive integer or null");
    FAIL("{\"model_type\":\"llama\",\"rope_scaling\":{\"rope_type\":\"longrope\"}}",
         "RoPE scaling type 'longrope' is not supported (default, linear, llama3, yarn, dynamic; "
         "longrope: phi3's)");
#undef F8
#undef PHI3
    ModelConfig c;
    LfError err = {{0}};
    model_config_defaults(&c, ARCH_PHI3);
    c.hidden_size = 64, c.num_heads = c.num_kv_heads = 4;
    c.rope_scaling = (RopeScaling){.type = ROPE_LONGROPE, .attention_factor = 1, .n_divisors = 8};
    for (int i = 0; i < 8; i++) c.rope_scaling.divisors[i] = c.rope_scaling.long_divisors[i] = 1;
    CHECK(model_config_validate(&c, "phi3", &err) == -1 && strstr(err.msg, "longrope alone"));
    c.rope_scaling.original_max_positions = 16;
    CHECK_OK(model_config_validate(&c, "phi3", &err), &err);
    c.rope_scaling.long_divisors[5] = NAN;
    CHECK(model_config_validate(&c, "phi3", &err) == -1);
    c.arch = ARCH_LLAMA, c.rope_scaling.long_divisors[5] = 1; /* longrope is Phi-3's */
    CHECK(model_config_validate(&c, "llama", &err) == -1 && strstr(err.msg, "RoPE scaling"));
}

/* Mistral: the published 7B v0.1 and v0.3 configs and a Nemo-like head size; MistralConfig()'s
 * defaults; sliding_window read, written back as read (a number or null), and a sequence longer
 * than it refused with the window named; attention_bias / mlp_bias neither read (MistralForCausalLM
 * has no biases whatever they say) nor written; the refusals. */
static void test_mistral(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    CHECK_OK(load_literal(mistral_7b_v0_1, &c, &err), &err);
    CHECK(c.arch == ARCH_MISTRAL && arch_is_llama(c.arch) && c.vocab_size == 32000);
    CHECK(c.hidden_size == 4096 && c.ffn_size == 14336 && c.num_layers == 32);
    CHECK(c.num_heads == 32 && c.num_kv_heads == 8 && c.head_dim == 0 &&
          model_head_size(&c) == 128);
    CHECK(c.rope_theta == 10000.0f && c.rope_scaling.type == ROPE_DEFAULT);
    CHECK(c.sliding_window == 4096 && c.layer_norm_eps == 1e-5f && c.max_positions == 32768);
    CHECK(c.bos_token_id == 1 && c.eos_token_id == 2 && c.pad_token_id == -1);
    CHECK(!c.tie_word_embeddings && c.activation == ACT_SILU && !c.score_head);

    CHECK_OK(load_literal(mistral_7b_v0_3, &c, &err), &err);
    CHECK(c.arch == ARCH_MISTRAL && c.vocab_size == 32768 && c.rope_theta == 1e6f);
    CHECK(c.sliding_window == 0 && c.num_kv_heads == 8 && c.max_positions == 32768);

    CHECK_OK(load_literal(mistral_nemo_like, &c, &err), &err);
    CHECK(c.hidden_size == 5120 && c.num_heads == 32 && c.head_dim == 128);
    CHECK(model_head_size(&c) == 128 && c.num_heads * model_head_size(&c) == 4096);
    CHECK(c.rope_theta == 1e6f && c.sliding_window == 0 && c.vocab_size == 131072);
    RopeFreqs r; /* RoPE over the head's 128, not 5120 / 32 = 160 */
    model_rope_freqs(&c, &r);
    CHECK(r.half == 64);

    model_config_defaults(&d, ARCH_MISTRAL); /* MistralConfig()'s */
    CHECK(d.vocab_size == 32000 && d.hidden_size == 4096 && d.ffn_size == 14336);
    CHECK(d.num_layers == 32 && d.num_heads == 32 && d.num_kv_heads == 8);
    CHECK(d.max_positions == 131072 && d.sliding_window == 4096 && d.rope_theta == 10000.0f);
    CHECK(d.layer_norm_eps == 1e-6f && d.bos_token_id == 1 && d.eos_token_id == 2);
    CHECK(d.pad_token_id == -1 && !d.tie_word_embeddings && d.head_dim == 0);
    CHECK_OK(load_literal("{\"model_type\":\"mistral\"}", &c, &err), &err);
    CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
    CHECK_OK(load_literal("{\"model_type\":\"mistral\",\"attention_bias\":true,"
                          "\"mlp_bias\":true,\"use_sliding_window\":true}",
                          &c, &err),
             &err); /* none is MistralConfig's: transformers builds no biases whatever they say */
    CHECK(!strcmp(arch_name(ARCH_MISTRAL), "mistral") &&
          !strcmp(arch_gguf_name(ARCH_MISTRAL), "llama") &&
          !strcmp(arch_gguf_name(ARCH_QWEN3), "qwen3"));

    /* written back as read: the window a number or null, no bias keys */
    const char *const windows[] = {"\"sliding_window\":\t4096", "\"sliding_window\":\tnull"};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(load_literal(i ? mistral_7b_v0_3 : mistral_7b_v0_1, &c, &err), &err);
        CHECK_OK(model_config_save(&c, cfg_path, &err), &err);
        CHECK_OK(model_config_load(&d, cfg_path, &err), &err);
        CHECK(memcmp(&c, &d, offsetof(ModelConfig, labels)) == 0);
        char *text;
        size_t len;
        CHECK(file_read_all(cfg_path, &text, &len, &err) == 0);
        CHECK(strstr(text, "\"MistralForCausalLM\"") && strstr(text, windows[i]) &&
              strstr(text, "\"model_type\":\t\"mistral\"") && !strstr(text, "_bias") &&
              !strstr(text, "use_sliding_window"));
        free(text);
    }
    CHECK_OK(load_literal("{\"model_type\":\"mistral\",\"architectures\":"
                          "[\"MistralForSequenceClassification\"],\"num_labels\":1}",
                          &c, &err),
             &err);
    CHECK(c.score_head && c.num_labels == 1);

    FAIL("{\"model_type\":\"mistral\",\"sliding_window\":0}",
         "key 'sliding_window' must be a positive integer or null (got 0)");
    FAIL("{\"model_type\":\"mistral\",\"sliding_window\":-4096}",
         "key 'sliding_window' must be a positive integer or null");
    FAIL("{\"model_type\":\"mistral\",\"sliding_window\":\"4096\"}",
         "key 'sliding_window' must be an integer (got a string)");
    FAIL("{\"model_type\":\"mistral\",\"sliding_window\":4096.5}",
         "key 'sliding_window' must be an integer (got a non-integer number)");
    FAIL("{\"model_type\":\"mistral\",\"num_key_value_heads\":5}",
         "num_key_value_heads divides the number of heads");
    model_config_defaults(&d, ARCH_LLAMA); /* a window is Mistral's alone */
    d.sliding_window = 64;
    CHECK(model_config_validate(&d, "llama", &err) == -1 &&
          strstr(err.msg, "sliding_window >= 0, and 0 but for mistral"));
}

/* GPT-2's n_inner (null: 4 * n_embd) and the variants loraft refuses. */
static void test_gpt2_options(void) {
    ModelConfig c;
    LfError err = {{0}};
    CHECK(load_literal("{\"model_type\":\"gpt2\",\"n_embd\":64,\"n_head\":4,\"n_inner\":null}", &c,
                       &err) == 0 &&
          c.ffn_size == 256);
    CHECK(load_literal("{\"model_type\":\"gpt2\",\"n_embd\":64,\"n_head\":4,\"n_inner\":100}", &c,
                       &err) == 0 &&
          c.ffn_size == 100);
    FAIL("{\"model_type\":\"gpt2\",\"n_inner\":\"x\"}", "n_inner");
    FAIL("{\"model_type\":\"gpt2\",\"tie_word_embeddings\":false}", "tie_word_embeddings");
    FAIL("{\"model_type\":\"gpt2\",\"scale_attn_by_inverse_layer_idx\":true}", "not supported");
    FAIL("{\"model_type\":\"gpt2\",\"add_cross_attention\":true}", "not supported");
    FAIL("{\"model_type\":\"gpt2\",\"activation_function\":\"swish\"}", "swish");
}

static void test_labels_and_options(void) {
    ModelConfig c;
    LfError err = {{0}};
    CHECK(load_literal(
              "{\"model_type\":\"bert\",\"hidden_act\":\"gelu_new\",\"classifier_dropout\":null,"
              "\"hidden_dropout_prob\":0.25,\"id2label\":{\"2\":\"c\",\"0\":\"a\",\"1\":\"b\"},"
              "\"label2id\":{\"a\":0,\"b\":1,\"c\":2},\"pad_token_id\":null}",
              &c, &err) == 0);
    CHECK(c.num_labels == 3 && !strcmp(c.labels[0], "a") && !strcmp(c.labels[2], "c"));
    CHECK(c.activation == ACT_GELU_TANH && c.classifier_dropout == 0.25f && c.pad_token_id == 0);
    CHECK(load_literal("{\"model_type\":\"bert\",\"classifier_dropout\":0.3,\"num_labels\":5,"
                       "\"hidden_act\":\"gelu_pytorch_tanh\"}",
                       &c, &err) == 0);
    CHECK(c.num_labels == 5 && !strcmp(c.labels[4], "LABEL_4") && c.classifier_dropout == 0.3f);
    CHECK(c.activation == ACT_GELU_TANH && c.num_layers == 12); /* bert-base default */
    CHECK(load_literal("{\"model_type\":\"distilbert\",\"activation\":\"relu\"}", &c, &err) == 0);
    CHECK(c.activation == ACT_RELU);
}

static void test_errors(void) {
    FAIL("{\"model_type\":\"roberta\"}", "model_type 'roberta' is not supported (supported: "
                                         "distilbert, bert, llama, qwen2, qwen3, mistral, smollm3, "
                                         "gemma3_text, gemma3 (its language model), gemma2, phi3, "
                                         "gpt2)");
    FAIL("{\"dim\":768}", "key 'model_type' is missing");
    FAIL("{\"model_type\":7}", "key 'model_type' must be a string");
    FAIL("{\"model_type\":\"distilbert\",\"n_layers\":\"6\"}",
         "key 'n_layers' must be an integer (got a string)");
    FAIL("{\"model_type\":\"distilbert\",\"n_layers\":6.5}", "key 'n_layers' must be an integer");
    FAIL("{\"model_type\":\"distilbert\",\"dim\":1e10}", "key 'dim' must be an integer");
    FAIL("{\"model_type\":\"distilbert\",\"dropout\":\"0.1\"}",
         "key 'dropout' must be a finite number");
    FAIL("{\"model_type\":\"bert\",\"layer_norm_eps\":1e300}",
         "key 'layer_norm_eps' must be a finite number");
    FAIL("{\"model_type\":\"bert\",\"classifier_dropout\":[]}",
         "key 'classifier_dropout' must be a finite number (got a list)");
    FAIL("{\"model_type\":\"distilbert\",\"sinusoidal_pos_embds\":true}",
         "sinusoidal_pos_embds = true is not supported");
    FAIL("{\"model_type\":\"distilbert\",\"sinusoidal_pos_embds\":1}",
         "'sinusoidal_pos_embds' must be a boolean");
    FAIL("{\"model_type\":\"bert\",\"position_embedding_type\":\"relative_key\"}",
         "position_embedding_type 'relative_key' is not supported");
    FAIL("{\"model_type\":\"bert\",\"hidden_act\":\"swish\"}",
         "activation 'swish' is not supported");
    FAIL("{\"model_type\":\"distilbert\",\"activation\":null}",
         "key 'activation' must be a string (got null)");
    FAIL("{\"model_type\":\"distilbert\",\"dim\":770}",
         "hidden size divisible by the number of heads");
    FAIL("{\"model_type\":\"bert\",\"num_attention_heads\":0}", "number of heads > 0");
    FAIL("{\"model_type\":\"bert\",\"vocab_size\":-3}", "vocab_size > 0");
    FAIL("{\"model_type\":\"bert\",\"type_vocab_size\":0}", "type_vocab_size > 0");
    FAIL("{\"model_type\":\"bert\",\"hidden_dropout_prob\":1.0}", "dropouts in [0, 1)");
    FAIL("{\"model_type\":\"bert\",\"pad_token_id\":30522}", "pad_token_id in [0, vocab_size)");
    FAIL("{\"model_type\":\"bert\",\"num_labels\":0}", "num_labels 0 is out of range (1..4096)");
    FAIL("{\"model_type\":\"bert\",\"num_labels\":4097}", "num_labels 4097 is out of range");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{}}",
         "key 'id2label' must be an object of 1 to 4096");
    FAIL("{\"model_type\":\"bert\",\"id2label\":[\"a\"]}", "key 'id2label' must be an object");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"x\":\"b\"}}",
         "id2label key 'x' is not a distinct id in 0..1");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"2\":\"b\"}}", "id2label key '2'");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"0\":\"b\"}}",
         "id2label key '0' is not a distinct id");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":5}}", "id2label['0'] must be a string");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\"},\"num_labels\":2}",
         "num_labels 2 disagrees with the 1 entries");
    FAIL("{\"model_type\":\"bert\",\"id2label\":{\"0\":"
         "\"0123456789012345678901234567890123456789012345678901234567890123\"}}",
         "must be a string of under 64 bytes");
    FAIL("{\"model_type\":\"bert\",", "not valid JSON");
    FAIL("{\"model_type\":\"bert\"} x", "not valid JSON");
    FAIL("[1]", "not a JSON object");

    ModelConfig c;
    LfError err = {{0}};
    CHECK(file_write_atomic(cfg_path, "{\"model_type\":\"bert\"}\0x", 23, &err) == 0);
    CHECK(model_config_load(&c, cfg_path, &err) == -1 && strstr(err.msg, "not valid JSON"));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope/config.json", tmpdir);
    CHECK(model_config_load(&c, missing, &err) == -1 && strstr(err.msg, missing) &&
          strstr(err.msg, "No such file"));
}

/* Every field survives save -> load; the file has the keys transformers looks for. */
static void test_round_trip(Arch arch) {
    ModelConfig a, b;
    model_config_defaults(&a, arch);
    CHECK(model_config_validate(&a, "defaults", NULL) == 0);
    a.vocab_size = 1000, a.hidden_size = 96, a.num_layers = 3, a.num_heads = 4, a.ffn_size = 200;
    int llama = arch_is_llama(arch), decoder = llama || arch == ARCH_GPT2;
    a.num_kv_heads = llama ? 2 : 4;
    a.max_positions = 128, a.activation = llama ? ACT_SILU : ACT_GELU_TANH;
    a.hidden_dropout = llama ? 0.0f : 0.15f; /* Llama has no such key */
    a.attention_dropout = 0.05f, a.initializer_range = 0.01f;
    a.classifier_dropout = decoder ? 0.0f : 0.3f; /* no such key in the decoders */
    a.pad_token_id = 1, a.num_labels = 3;
    if (arch == ARCH_BERT) a.type_vocab_size = 4, a.layer_norm_eps = 1e-5f;
    if (llama)
        a.rope_theta = 100000.0f, a.tie_word_embeddings = 1, a.bos_token_id = 5,
        a.eos_token_id = -1, a.layer_norm_eps = 1e-5f;
    if (arch == ARCH_GPT2) a.embedding_dropout = 0.07f, a.bos_token_id = 7, a.eos_token_id = 9;
    if (arch == ARCH_QWEN3 || arch == ARCH_GEMMA3) a.head_dim = 32; /* not hidden / heads */
    if (arch == ARCH_GEMMA3) { /* layer 1 full, an eos_token_id list */
        a.activation = ACT_GELU_TANH, a.eos_token_id = 4, a.n_eos_more = 2, a.eos_more[1] = 7;
        model_config_full_every(&a, 2);
    }
    if (arch == ARCH_MISTRAL) a.head_dim = 32, a.sliding_window = 77;
    if (arch == ARCH_SMOLLM3) { /* of 3 layers, the first without RoPE and windowed */
        memset(a.no_rope, 0, sizeof a.no_rope), a.no_rope[0] = 1;
        a.sliding_window = 9, a.full_attention[1] = a.full_attention[2] = 1;
    }
    strcpy(a.labels[0], "neg"), strcpy(a.labels[1], "neu \"quoted\""), strcpy(a.labels[2], "pos");
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, arch_name(arch));
    LfError err = {{0}};
    CHECK(dir_create(dir, &err) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(model_config_save(&a, path, &err) == 0);
    CHECK(model_config_load(&b, dir, &err) == 0); /* a directory works too */
    CHECK(memcmp(&a, &b, offsetof(ModelConfig, labels)) == 0);
    for (int i = 0; i < a.num_labels; i++) CHECK(!strcmp(a.labels[i], b.labels[i]));

    char *text;
    size_t len;
    CHECK(file_read_all(path, &text, &len, &err) == 0);
    cJSON *root = cJSON_Parse(text);
    const cJSON *archs = cJSON_GetObjectItem(root, "architectures");
    const char *want = arch == ARCH_BERT      ? "BertForSequenceClassification"
                       : arch == ARCH_LLAMA   ? "LlamaForCausalLM"
                       : arch == ARCH_QWEN2   ? "Qwen2ForCausalLM"
                       : arch == ARCH_QWEN3   ? "Qwen3ForCausalLM"
                       : arch == ARCH_MISTRAL ? "MistralForCausalLM"
                       : arch == ARCH_SMOLLM3 ? "SmolLM3ForCausalLM"
                       : arch == ARCH_GEMMA3  ? "Gemma3ForCausalLM"
                       : arch == ARCH_PHI3    ? "Phi3ForCausalLM"
                       : arch == ARCH_GPT2    ? "GPT2LMHeadModel"
                                              : "DistilBertForSequenceClassification";
    CHECK(cJSON_IsArray(archs) && !strcmp(cJSON_GetArrayItem(archs, 0)->valuestring, want));
    CHECK(!strcmp(cJSON_GetObjectItem(root, "model_type")->valuestring, arch_name(arch)));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "label2id"), "pos")->valueint == 2);
    /* shortest decimal, as transformers writes it */
    CHECK(strstr(text, llama ? "0.05," : "0.15,") != NULL);
    cJSON_Delete(root);
    free(text);

    a.num_heads = 5; /* 96 % 5 != 0 (Qwen3: a head of 7): refused, the good file stays */
    int odd_head = arch == ARCH_QWEN3 || arch == ARCH_GEMMA3;
    if (odd_head) a.num_heads = 4, a.head_dim = 7;
    if (arch == ARCH_MISTRAL) a.head_dim = 0; /* hidden / heads again */
    CHECK(model_config_save(&a, path, &err) == -1 &&
          strstr(err.msg, odd_head ? "head size even" : "divisible"));
    CHECK(model_config_load(&b, path, &err) == 0 && b.num_heads == 4);
}

/* A merged reward model: LlamaForSequenceClassification with one label, read and written. */
static void test_score_head(void) {
    ModelConfig c, d;
    LfError err = {{0}};
    CHECK(load_literal("{\"model_type\":\"llama\",\"architectures\":"
                       "[\"LlamaForSequenceClassification\"],\"num_labels\":1}",
                       &c, &err) == 0);
    CHECK(c.score_head == 1 && c.num_labels == 1);
    CHECK(load_literal("{\"model_type\":\"bert\",\"architectures\":"
                       "[\"LlamaForSequenceClassification\"]}",
                       &d, &err) == 0);
    CHECK(d.score_head == 0); /* not a BERT class: ignored */
    FAIL("{\"model_type\":\"llama\",\"architectures\":[\"LlamaForSequenceClassification\"]}",
         "a score head only on the llama family, with one label"); /* 2 labels by default */
    CHECK(model_config_save(&c, cfg_path, &err) == 0);
    CHECK(model_config_load(&d, cfg_path, &err) == 0 && d.score_head == 1 && d.num_labels == 1);
    char *text;
    size_t len;
    CHECK(file_read_all(cfg_path, &text, &len, &err) == 0);
    CHECK(strstr(text, "\"LlamaForSequenceClassification\"") && !strstr(text, "CausalLM"));
    free(text);
}

/* meta-llama/Llama-3.2-1B's config.json as published (transformers 4's form: rope_theta beside
 * rope_scaling) */
static const char *llama_3_2_1b =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 128000, \"eos_token_id\": 128001,"
    " \"head_dim\": 64, \"hidden_act\": \"silu\", \"hidden_size\": 2048,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 8192,"
    " \"max_position_embeddings\": 131072, \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.45.0.dev0\", \"use_cache\": true, \"vocab_size\": 128256}";

/* Compares cfg's RoPE frequencies with transformers' float32 ones, within 4 ulp (transformers
 * computes the power and llama3's blend in float32, loraft in double rounded once; yarn's ramp
 * and blend, a few more roundings in float32: 10 ulp), and the factor of cos and sin with its
 * attention_scaling (scale, within an ulp). */
static void check_freqs(const ModelConfig *cfg, const cJSON *want, double scale, const char *name) {
    RopeFreqs r;
    model_rope_freqs(cfg, &r);
    if (fabs(r.scale - scale) > 1.2e-7 * scale) {
        fprintf(stderr, "  %s scale %.9g, transformers' attention_scaling %.9g\n", name, r.scale,
                scale);
        CHECK(0);
    }
    int n = cJSON_GetArraySize(want), bad = 0;
    double tol = cfg->rope_scaling.type == ROPE_YARN ? 1.2e-6 : 4.8e-7;
    CHECK(r.half == n);
    for (int i = 0; i < n && i < r.half; i++) {
        double w = cJSON_GetArrayItem(want, i)->valuedouble;
        if (fabs(r.inv_freq[i] - w) > tol * fabs(w)) {
            if (bad++ < 3)
                fprintf(stderr, "  %s inv_freq[%d] = %.9g, transformers %.9g\n", name, i,
                        r.inv_freq[i], w);
        }
    }
    CHECK(bad == 0);
}

/* RoPE scaling: every config transformers 5 saved (tests/golden/rope_freqs.json, from
 * scripts/make-rope-goldens.py: rope_parameters with rope_theta inside) gives transformers'
 * frequencies; so does the published Llama 3.2 config in transformers 4's form; the
 * scalings survive save -> load; unsupported ones and bad numbers are refused. */
static void test_rope(void) {
    char *text;
    size_t len;
    LfError err = {{0}};
    CHECK_OK(file_read_all("tests/golden/rope_freqs.json", &text, &len, &err), &err);
    cJSON *cases = cJSON_Parse(text), *c;
    CHECK(cJSON_GetArraySize(cases) >= 9);
    cJSON_ArrayForEach(c, cases) {
        char *json = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "config"));
        ModelConfig cfg;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        CHECK_OK(load_literal(json, &cfg, &err), &err);
        double scale = cJSON_GetObjectItem(c, "attention_scaling")->valuedouble;
        check_freqs(&cfg, cJSON_GetObjectItem(c, "inv_freq"), scale, name);
        if (!strcmp(name, "llama3 1b")) { /* the same model in transformers 4's form */
            ModelConfig old;
            CHECK_OK(load_literal(llama_3_2_1b, &old, &err), &err);
            CHECK(old.rope_theta == 500000.0f && old.rope_scaling.type == ROPE_LLAMA3);
            CHECK(old.rope_scaling.factor == 32 && old.rope_scaling.low_freq_factor == 1 &&
                  old.rope_scaling.high_freq_factor == 4 &&
                  old.rope_scaling.original_max_positions == 8192);
            check_freqs(&old, cJSON_GetObjectItem(c, "inv_freq"), 1.0, "llama-3.2-1b");
        }
        if (cfg.rope_scaling.type != ROPE_DEFAULT) { /* written and read back: the same */
            ModelConfig back;
            CHECK_OK(model_config_save(&cfg, cfg_path, &err), &err);
            CHECK_OK(model_config_load(&back, cfg_path, &err), &err);
            CHECK(!memcmp(&back.rope_scaling, &cfg.rope_scaling, sizeof cfg.rope_scaling) &&
                  back.rope_theta == cfg.rope_theta);
        }
        free(json);
    }
    cJSON_Delete(cases);
    free(text);
#define LLAMA "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_attention_heads\":4,"
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":4}}",
         "RoPE scaling type 'longrope' is not supported (default, linear, llama3, yarn, dynamic");
    FAIL(LLAMA "\"rope_scaling\":{\"type\":\"dynamic\"}}", "'dynamic' needs the key 'factor'");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"yarn\"}}", "'yarn' needs the key 'factor'");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4,\"beta_fast\":-1}}",
         "beta_fast and beta_slow in [1e-6, 1e6] and attention_factor in (0, 1e6]");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4,\"attention_factor\":0}}",
         "beta_fast and beta_slow in [1e-6, 1e6] and attention_factor in (0, 1e6]");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4,"
               "\"original_max_position_embeddings\":0.5}}",
         "original_max_position_embeddings 0.5 is not a positive integer");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4,\"truncate\":1}}",
         "key 'truncate' must be a boolean");
    FAIL(LLAMA "\"rope_theta\":1,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
         "rope_theta > 1 under yarn"); /* the fuzzer's: ln 1 = 0, inf frequencies */
    /* yarn's defaults: original_max_position_embeddings = max_position_embeddings (transformers
     * 5's standardisation), betas 32 and 1, attention factor 0.1 ln(factor) + 1 */
    ModelConfig y;
    CHECK_OK(load_literal(LLAMA "\"max_position_embeddings\":4096,\"rope_scaling\":"
                                "{\"rope_type\":\"yarn\",\"factor\":4}}",
                          &y, &err),
             &err);
    CHECK(y.rope_scaling.type == ROPE_YARN && y.rope_scaling.original_max_positions == 4096 &&
          y.rope_scaling.beta_fast == 32 && y.rope_scaling.beta_slow == 1 &&
          y.rope_scaling.attention_factor == (float)(0.1 * log(4.0) + 1));
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"linear\"}}",
         "RoPE scaling 'linear' needs the key 'factor'");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":\"2\"}}",
         "key 'factor' must be a finite number");
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":-2}}",
         "factor -2 is out of range");
    FAIL(
        LLAMA "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
              "\"high_freq_factor\":1,\"original_max_position_embeddings\":8192}}",
        "llama3 scaling needs low_freq_factor < high_freq_factor (as floats), both in [1e-6, 1e6]");
    /* the fuzzer's: apart as doubles, equal as floats (a division by zero, and a config written
     * that would not load) */
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
               "\"low_freq_factor\":3.9999999999,\"high_freq_factor\":4,"
               "\"original_max_position_embeddings\":8192}}",
         "(got 4 and 4)");
    /* the fuzzer's: frequencies past 1e30 from a tiny factor or base */
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":1e-30}}",
         "factor 1e-30 is out of range [1e-6, 1e6]");
    FAIL(LLAMA "\"rope_theta\":0.5}", "rope_theta >= 1 (llama family)");
    /* the ends themselves load: compared as the floats the model keeps, as validation does
     * ((float)1e-6 is below 1e-6 as a double) */
    ModelConfig ends;
    CHECK_OK(load_literal(LLAMA "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":1e-6,"
                                "\"low_freq_factor\":1e-6,\"high_freq_factor\":1e6,"
                                "\"original_max_position_embeddings\":8192}}",
                          &ends, &err),
             &err);
    FAIL(LLAMA "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,"
               "\"high_freq_factor\":4}}",
         "needs the key 'original_max_position_embeddings'");
    FAIL(LLAMA "\"rope_parameters\":[1]}", "key 'rope_parameters' must be an object");
#undef LLAMA
    /* a GGUF's divisors: rotated by, but with no config.json form */
    ModelConfig d;
    model_config_defaults(&d, ARCH_LLAMA);
    d.hidden_size = 16, d.num_heads = d.num_kv_heads = 2; /* head size 8: 4 pairs */
    d.rope_scaling =
        (RopeScaling){.type = ROPE_DIVISORS, .n_divisors = 4, .divisors = {1, 2, 4, 8}};
    RopeFreqs plain, divided;
    rope_freqs_init(&plain, d.rope_theta, 8, NULL);
    model_rope_freqs(&d, &divided);
    for (int i = 0; i < 4; i++) CHECK(divided.inv_freq[i] == plain.inv_freq[i] / (float)(1 << i));
    float back[ROPE_MAX_PAIRS];
    CHECK(model_rope_divisors(&d, back) == 4 && back[3] == 8);
    CHECK(model_config_save(&d, cfg_path, &err) == -1 && strstr(err.msg, "no config.json form"));
    d.rope_scaling.divisors[2] = 0;
    CHECK(model_config_validate(&d, "divisors", &err) == -1 && strstr(err.msg, "RoPE scaling"));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void) {
    if (!mkdtemp(tmpdir)) skip("cannot create a temp directory");
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tmpdir);
    test_hub_configs();
    test_labels_and_options();
    test_errors();
    test_round_trip(ARCH_DISTILBERT);
    test_round_trip(ARCH_BERT);
    test_round_trip(ARCH_LLAMA);
    test_round_trip(ARCH_GPT2);
    test_round_trip(ARCH_QWEN2);
    test_gpt2_options();
    test_qwen2_options();
    test_qwen3_options();
    test_round_trip(ARCH_QWEN3);
    test_mistral();
    test_smollm3();
    test_round_trip(ARCH_MISTRAL);
    test_round_trip(ARCH_SMOLLM3);
    test_gemma3();
    test_gemma3_multimodal();
    test_gemma2();
    test_phi3();
    test_phi3_refusals();
    test_round_trip(ARCH_GEMMA3);
    test_round_trip(ARCH_PHI3);
    test_score_head();
    test_rope();
    CHECK(!strcmp(arch_name(ARCH_DISTILBERT), "distilbert") &&
          !strcmp(arch_name(ARCH_BERT), "bert") && !strcmp(arch_name(ARCH_GPT2), "gpt2") &&
          !strcmp(arch_name(ARCH_QWEN2), "qwen2") && !strcmp(arch_name(ARCH_QWEN3), "qwen3"));
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report();
}
