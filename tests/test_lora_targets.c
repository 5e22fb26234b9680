/* test_lora_targets.c: PEFT's rank_pattern / alpha_pattern matching and layers_to_transform's
 * layer index (lora_targets.h). Each expectation is what Python's re gives for peft 0.21's
 * expressions: get_pattern_key's re.match(rf"(.*\.)?({key})$", name), and
 * check_target_module_exists' r".*?\.[^.]*\.(?P<idx>\d+)\." or, with layers_pattern,
 * rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\." (run in Python when this was written). The refused
 * keys are what POSIX cannot say (Python takes the first four), repetitions that glibc's regcomp
 * would copy 4,900 or 8,192 times (nested), quantifiers after quantifiers (+++ copies 2^n times),
 * or what no regex engine takes. */
#include <string.h>

#include "check.h"
#include "loraft/lora_targets.h"

static const char *const Q = "model.layers.10.self_attn.q_proj";

/* The value name takes from one pattern {key: 1}, 0 where key does not match it. */
static int hits(const char *key, const char *name) {
    LoraPattern p = {.value = 1};
    snprintf(p.key, sizeof p.key, "%s", key);
    LfError err;
    CHECK(lora_pattern_check(key, &err) == 0);
    return lora_pattern_value(&p, 1, name, 0) == 1;
}

static void test_matches(void) {
    static const struct {
        const char *key;
        int hit;
    } cases[] = {
        {"q_proj", 1},             /* the last segment */
        {"proj", 0},               /* not a segment's whole */
        {"self_attn.q_proj", 1},   /* '.' any character */
        {"self_attn\\.q_proj", 1}, /* an escaped dot */
        {"layers\\.10\\.self_attn\\.q_proj", 1},
        {"layers\\.1\\.self_attn\\.q_proj", 0},    /* layer 1 is not layer 10 */
        {"layers\\.\\d+\\.self_attn\\.q_proj", 1}, /* Python's \d */
        {"layers\\.[0-9]\\..*", 0},
        {"layers\\.1[0-9]\\..*", 1},
        {".*\\.q_proj", 1},
        {"model.*?q_proj", 1}, /* a lazy quantifier */
        {"(?:q|k)_proj", 1},   /* a group that does not capture */
        {"k_proj|v_proj", 0},
        {"q_proj|v_proj", 1},
        {"^model\\.layers\\.10\\.self_attn\\.q_proj", 1}, /* anchored at the start */
        {"^layers\\.10\\.self_attn\\.q_proj", 0},
        {"model.layers.10.self_attn.q_proj", 1}, /* the whole name */
        {"\\w+_proj", 1},
        {"q[_]proj", 1},
        {"q[\\.]proj", 0}, /* a bracket's escaped dot is a dot */
        {"q[]_]proj", 1},  /* a ']' first in a bracket is one of its characters */
        {"q[^]]proj", 1},
        {"q[a[]_proj", 0}, /* '[' in a bracket is a character; the ']' after it closes it */
        {"self_attn", 0},  /* matched at the end only */
        {"layers\\.\\d{1,3}\\.self_attn\\.q_proj", 1}, /* counted repetitions */
        {"layers\\.\\d{3}\\.self_attn\\.q_proj", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = hits(cases[i].key, Q);
        CHECK(got == cases[i].hit);
        if (got != cases[i].hit) fprintf(stderr, "  key \"%s\": %d\n", cases[i].key, got);
    }
    /* the first key that matches wins, in the config's order */
    LoraPattern p[] = {{"v_proj", 2}, {"self_attn\\..*", 3}, {"q_proj", 4}};
    CHECK(lora_pattern_value(p, 3, Q, 8) == 3);
    CHECK(lora_pattern_value(p, 3, "model.layers.0.mlp.up_proj", 8) == 8);
    CHECK(lora_pattern_value(p, 3, "model.layers.0.self_attn.v_proj", 8) == 2);
}

static void test_refused(void) {
    static const char *const bad[] = {"(?=q)_proj",
                                      "(?P<x>q)",
                                      "\\bq_proj",
                                      "q_proj\\1",
                                      "((a{70}){70})",
                                      "q_proj++",
                                      "a**",
                                      "(((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)",
                                      "q[",
                                      "[a[]++",   /* the quantifiers are outside the bracket */
                                      "[]#[]+++", /* as after a ']' taken first */
                                      "(q",
                                      "a\\"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        LfError err = {{0}};
        CHECK(lora_pattern_check(bad[i], &err) == -1);
        CHECK(strstr(err.msg, "regular expression") != NULL);
    }
    LfError err;
    CHECK(lora_pattern_check("", &err) == -1);
}

static void test_layer_index(void) {
    static const char names[][32] = {"h", "layers", "blocks"};
    CHECK(lora_layer_index(Q, NULL, 0) == 10);
    CHECK(lora_layer_index("transformer.h.3.attn.c_attn", NULL, 0) == 3);
    CHECK(lora_layer_index("distilbert.transformer.layer.5.ffn.lin1", NULL, 0) == 5);
    CHECK(lora_layer_index("layers.4.mlp", NULL, 0) == -1); /* a number after one segment */
    CHECK(lora_layer_index("layers.4.mlp", names + 1, 1) == 4);
    CHECK(lora_layer_index("lm_head", NULL, 0) == -1);
    CHECK(lora_layer_index("model.layers.7", NULL, 0) == -1); /* nothing after the number */
    /* the first number after a named segment: an expert's index is not the layer's */
    CHECK(lora_layer_index("model.layers.2.experts.5.w1", names + 1, 1) == 2);
    CHECK(lora_layer_index("model.layers.2.experts.5.w1", names + 2, 1) == -1);
    CHECK(lora_layer_index("transformer.h.11.mlp.c_fc", names, 1) == 11);
    CHECK(lora_layer_index("transformer.h.11.mlp.c_fc", names + 1, 2) == -1);
    static const char dotted[][32] = {"model\\.layers"};
    CHECK(lora_layer_index(Q, dotted, 1) == 10);
}

int main(void) {
    test_matches();
    test_refused();
    test_layer_index();
    return check_report();
}
