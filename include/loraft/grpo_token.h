/* grpo_token.h: GRPO's loss and gradient weight at one token (ops.h grpo_weights), in double,
 * written once for both backends (kernels/cpu and kernels/cuda/pair_loss.cu include it).
 *
 * TRL 1.16's GRPOTrainer._compute_loss at token level, a token's log-prob lp = -loss (the LM
 * head's token loss), with A its row's advantage and w (share) its share of the batch's loss:
 *   c      = exp(lp - lp_old)      the ratio to the sampling policy (old NULL: 1, num_iterations 1)
 *   loss   = w (-min(c A, clamp(c, 1 - eps_low, 1 + eps_high) A) + beta c kl),
 *            kl = exp(x) - x - 1, x = lp_ref - lp   (the bias-corrected k3 KL; ref NULL: beta 0)
 * Where the clamp binds on the side the advantage pushes (c < 1 - eps_low with A < 0, c > 1 +
 * eps_high with A > 0) the min takes the constant and the advantage gives no gradient: the token
 * is clipped, low or high (TRL's clip_ratio). Otherwise d/d lp of the min term is -A c, and of
 * the KL term's c kl it is -c x, so d loss / d loss_token = w c (A [not clipped] + beta x). */
#pragma once
#include <math.h>
#include <stddef.h>

#include "loraft/hostdevice.h"

/* Token i's d loss / d losses[i]; adds its loss, c kl, 1 and its clip flags to sums[5]. share 0:
 * off the completions, 0 and nothing added. */
static inline LF_HOST_DEVICE float grpo_token(double sums[5], float share, float adv,
                                              const float *losses, const float *ref,
                                              const float *old, size_t i, float beta, float eps_low,
                                              float eps_high) {
    if (share == 0.0f) return 0.0f;
    double c = old ? exp((double)old[i] - losses[i]) : 1.0, a = adv;
    double lo = 1.0 - eps_low, hi = 1.0 + eps_high, clamped = c < lo ? lo : c > hi ? hi : c;
    int low = c < lo && a<0, high = c> hi && a > 0;
    double x = ref ? (double)losses[i] - ref[i] : 0.0, kl = ref ? exp(x) - x - 1.0 : 0.0;
    double pg = c * a < clamped * a ? c * a : clamped * a;
    sums[0] += share * (-pg + beta * c * kl);
    sums[1] += c * kl, sums[2] += 1.0, sums[3] += low, sums[4] += high;
    return (float)(share * c * ((low || high ? 0.0 : a) + beta * x));
}
