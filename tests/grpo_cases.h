/* grpo_cases.h: the constants of the RL op's tests (ops.h grpo_weights), shared by test_ops
 * (against TRL's loss written out) and test_gpu_parity (the CPU against CUDA): TRL's epsilon 0.2
 * and DAPO's epsilon_high 0.28, cispo's cap 1.2 (the tests' ratios span 0.5 to 1.8, so each
 * bound binds somewhere), beta 0.3 where there is a reference, sapo's TRL temperatures. */
#pragma once
#include "loraft/ops.h"

static inline OpsGrpoTerms grpo_test_terms(int with_ref, OpsGrpoLevel level, OpsGrpoPolicy policy,
                                           float delta) {
    return (OpsGrpoTerms){.beta = with_ref ? 0.3f : 0.0f,
                          .eps_low = 0.2f,
                          .eps_high = policy == OPS_GRPO_CISPO ? 1.2f : 0.28f,
                          .delta = delta,
                          .sapo_pos = 1.0f,
                          .sapo_neg = 1.05f,
                          .level = level,
                          .policy = policy,
                          .kl_corrected = 1,
                          .vespo_k = {2.0f, 3.0f}, /* TRL's */
                          .vespo_lambda = {3.0f, 2.0f}};
}
