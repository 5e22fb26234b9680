/* test_rewards.c: TRL's built-in reward functions on the examples of their docstrings (trl 1.16
 * trl/rewards) and more, the sums of several functions' rewards (sum_then_normalize and GDPO's
 * normalize_then_sum, with rewards missing) against the formulas written out, and the checks of
 * train.reward_funcs. */
#include <string.h>

#include "check.h"
#include "loraft/rewards.h"
#include "loraft/train_config.h"

static void test_names(void) {
    CHECK(reward_kind_named("model") == REWARD_MODEL);
    CHECK(reward_kind_named("command") == REWARD_COMMAND);
    CHECK(reward_kind_named("think_format_reward") == REWARD_THINK_FORMAT);
    CHECK(reward_kind_named("soft_overlong_punishment_reward") == REWARD_SOFT_OVERLONG);
    CHECK(reward_kind_named("repetition_penalty_reward") == REWARD_REPETITION);
    CHECK(reward_kind_named("accuracy_reward") == -1);
    CHECK(!strcmp(reward_name(REWARD_REPETITION), "repetition_penalty_reward"));
}

static void test_think_format(void) {
    /* think_format_reward's docstring: [1.0, 0.0] */
    CHECK(reward_think_format("<think>\nThis is my reasoning.\n</think>\nThis is my answer.") == 1);
    CHECK(reward_think_format("<think>\nThis is my reasoning.\nThis is my answer.") == 0);
    CHECK(reward_think_format("<think></think>") == 1);
    CHECK(reward_think_format(" <think>x</think>") == 0); /* re.match: at the start */
    CHECK(reward_think_format("<think>a</think> <think>b</think>") == 0); /* a second <think> */
    CHECK(reward_think_format("<think>a <think> b</think>") == 0);
    CHECK(reward_think_format("</think><think>") == 0);
    CHECK(reward_think_format("") == 0);
}

static void test_soft_overlong(void) {
    /* get_soft_overlong_punishment's docstring: 90 tokens of 100, cache 20: -0.5 */
    CHECK_CLOSE(reward_soft_overlong(90, 100, 20), -0.5, 1e-7, 0);
    CHECK(reward_soft_overlong(80, 100, 20) == 0);
    CHECK_CLOSE(reward_soft_overlong(81, 100, 20), -0.05, 1e-7, 0);
    CHECK_CLOSE(reward_soft_overlong(100, 100, 20), -1.0, 1e-7, 0);
    CHECK(reward_soft_overlong(101, 100, 20) == -1);
    CHECK(reward_soft_overlong(1, 100, 20) == 0);
}

static void test_repetition(void) {
    int scratch[16];
    /* get_repetition_penalty_reward's docstring, n 2: [0.0, -0.75] */
    const int32_t plain[] = {1, 2, 3, 4}, same[] = {5, 5, 5, 5, 5};
    CHECK(reward_repetition(plain, 4, 2, -1.0f, scratch) == 0);
    CHECK_CLOSE(reward_repetition(same, 5, 2, -1.0f, scratch), -0.75, 1e-7, 0);
    /* (1,2) (2,1) (1,2) (2,1) (1,2): 2 unique of 5, 0.6 of the penalty */
    const int32_t alt[] = {1, 2, 1, 2, 1, 2};
    CHECK_CLOSE(reward_repetition(alt, 6, 2, -0.5f, scratch), -0.3, 1e-7, 0);
    /* n 3 over the same ids: (1,2,1) (2,1,2) twice each, 2 unique of 4 */
    CHECK_CLOSE(reward_repetition(alt, 6, 3, -1.0f, scratch), -0.5, 1e-7, 0);
    CHECK(reward_repetition(alt, 2, 3, -1.0f, scratch) == 0); /* fewer ids than n */
    /* n-grams that share their first id are still told apart */
    const int32_t near[] = {7, 1, 7, 2, 7, 1};
    CHECK_CLOSE(reward_repetition(near, 6, 2, -1.0f, scratch), -(1 - 4.0 / 5), 1e-7, 0);
}

static RewardFuncs two_funcs(int gdpo) {
    return (RewardFuncs){.n = 2,
                         .kind = {REWARD_MODEL, REWARD_COMMAND},
                         .weight = {1.0f, 0.5f},
                         .normalize_then_sum = gdpo};
}

static void test_sum_then_normalize(void) {
    RewardFuncs f = two_funcs(0);
    const float per_func[] = {0.2f, 1.0f, NAN, 2.0f, 3.0f, NAN, NAN, NAN};
    float out[4];
    reward_combine(&f, per_func, 4, 2, out);
    CHECK_CLOSE(out[0], 0.2 + 0.5 * 1.0, 1e-7, 0);
    CHECK_CLOSE(out[1], 0.5 * 2.0, 1e-7, 0); /* nansum: the one it has */
    CHECK_CLOSE(out[2], 3.0, 1e-7, 0);
    CHECK(isnan(out[3])); /* none scored it */
    CHECK_CLOSE(reward_weighted(&f, per_func), 0.7, 1e-7, 0);
    CHECK(isnan(reward_weighted(&f, per_func + 6)));
}

/* TRL's normalize_then_sum by hand: a group of three rows (function 0: 1, 2, 4; function 1: 0.5,
 * none, -0.5), then one of three where function 1 scored one row alone and one row is
 * unscored. */
static void test_normalize_then_sum(void) {
    RewardFuncs f = two_funcs(1);
    const float per_func[] = {1, 0.5f, 2, NAN, 4,   -0.5f, /* group 1 */
                              3, NAN,  5, 8,   NAN, NAN /* group 2 */};
    float out[6];
    reward_combine(&f, per_func, 6, 3, out);
    double m0 = 7.0 / 3,
           s0 = sqrt(((1 - m0) * (1 - m0) + (2 - m0) * (2 - m0) + (4 - m0) * (4 - m0)) / 2);
    double s1 = sqrt((0.25 + 0.25) / 1); /* mean 0 */
    CHECK_CLOSE(out[0], (1 - m0) / (s0 + 1e-4) + 0.5 * 0.5 / (s1 + 1e-4), 1e-6, 0);
    CHECK_CLOSE(out[1], (2 - m0) / (s0 + 1e-4), 1e-6, 0);
    CHECK_CLOSE(out[2], (4 - m0) / (s0 + 1e-4) + 0.5 * -0.5 / (s1 + 1e-4), 1e-6, 0);
    double m2 = 4, s2 = sqrt(2.0); /* function 0 over 3 and 5; function 1's one value: NaN */
    CHECK_CLOSE(out[3], (3 - m2) / (s2 + 1e-4), 1e-6, 0);
    CHECK_CLOSE(out[4], (5 - m2) / (s2 + 1e-4), 1e-6, 0);
    CHECK(isnan(out[5]));
}

/* train.reward_funcs' refusals, each with its message's gist. */
static void expect_refused(const TrainConfig *c, const char *gist) {
    RewardFuncs f;
    LfError err = {{0}};
    int rc = train_config_reward_funcs(c, &f, &err);
    CHECK(rc == -1);
    if (!strstr(err.msg, gist)) fprintf(stderr, "expected \"%s\" in: %s\n", gist, err.msg);
    CHECK(strstr(err.msg, gist) != NULL);
}

static void set_funcs(TrainConfig *c, int n, const char *const *names) {
    c->n_reward_funcs = n;
    for (int i = 0; i < n; i++)
        snprintf(c->reward_funcs[i], sizeof c->reward_funcs[i], "%s", names[i]);
}

static void test_config(void) {
    static TrainConfig c;
    RewardFuncs f;
    LfError err;
    train_config_defaults(&c);
    snprintf(c.task, sizeof c.task, "grpo");
    expect_refused(&c, "needs model.reward_model"); /* [] is ["model"] */
    snprintf(c.reward_model, sizeof c.reward_model, "rm");
    CHECK(train_config_reward_funcs(&c, &f, &err) == 0 && f.n == 1 && f.kind[0] == REWARD_MODEL &&
          f.weight[0] == 1.0f && !f.normalize_then_sum);

    const char *const funcs[] = {"model", "repetition_penalty_reward", "think_format_reward"};
    set_funcs(&c, 3, funcs);
    c.n_reward_weights = 2;
    expect_refused(&c, "2 weights for 3 reward functions");
    c.n_reward_weights = 3, c.reward_weights[1] = -2.5f;
    CHECK(train_config_reward_funcs(&c, &f, &err) == 0 && f.n == 3 &&
          f.kind[1] == REWARD_REPETITION && f.weight[1] == -2.5f && f.ngram == 3 &&
          f.max_penalty == -1.0f);
    c.n_reward_weights = 0;

    const char *const twice[] = {"think_format_reward", "think_format_reward"};
    set_funcs(&c, 2, twice);
    expect_refused(&c, "lists think_format_reward twice");
    const char *const unknown[] = {"accuracy_reward"};
    set_funcs(&c, 1, unknown);
    expect_refused(&c, "unknown reward function \"accuracy_reward\"");
    const char *const command[] = {"command"};
    set_funcs(&c, 1, command);
    expect_refused(&c, "needs train.reward_command");
    const char *const overlong[] = {"soft_overlong_punishment_reward"};
    set_funcs(&c, 1, overlong);
    expect_refused(&c, "needs train.soft_punish_cache");
    c.soft_punish_cache = c.max_completion_length + 1;
    expect_refused(&c, "needs train.soft_punish_cache");
    c.soft_punish_cache = 16;
    CHECK(train_config_reward_funcs(&c, &f, &err) == 0 && f.soft_cache == 16 &&
          f.max_completion == c.max_completion_length);
    snprintf(c.multi_objective_aggregation, sizeof c.multi_objective_aggregation,
             "normalize_then_sum");
    CHECK(train_config_reward_funcs(&c, &f, &err) == 0 && f.normalize_then_sum);
    snprintf(c.task, sizeof c.task, "rloo");
    expect_refused(&c, "normalize_then_sum is GRPO's");
}

int main(void) {
    test_names();
    test_think_format();
    test_soft_overlong();
    test_repetition();
    test_sum_then_normalize();
    test_normalize_then_sum();
    test_config();
    return check_report();
}
