/* rloo_loss.h: the math of an RLOO batch (ops.h rloo_loss), in double, written once for both
 * backends: kernels/cpu and kernels/cuda/pair_loss.cu include it, so the CPU and the GPU compute
 * the same function from the same row log-probs.
 *
 * REINFORCE Leave-One-Out (Ahmadian et al. 2024) as TRL 1.16's RLOOTrainer computes it with one
 * optimisation per generation batch (num_iterations 1: the policy that sampled is the one trained,
 * so the importance ratio is 1 and its clipping never acts). A batch holds groups of k rows, one
 * prompt's k completions each:
 *   kl_b      = logp_b - ref_b                     (0 without a reference: beta 0)
 *   r_b       = reward_b - beta kl_b               (the KL penalty in the reward, not the loss)
 *   A_b       = r_b - (sum of r over b's group - r_b) / (k - 1)
 *   normalize: A_b = (A_b - mean A) / (std A + 1e-4) over the batch, std with Bessel's correction
 *   loss      = -(1 / B) sum_b A_b exp(logp_b - sg(logp_b))   (= -mean A, about 0)
 * so d loss / d logp_b = -A_b / B and, the token loss being -log p, each token of row b weighs
 * A_b / B. The KL and the rewards carry no gradient (TRL computes them under no_grad). */
#pragma once
#include <math.h>

#include "loraft/hostdevice.h"

/* logp, ref (NULL: none), reward [B] -> weight [B] = d loss / d token loss of row b times scale,
 * and stats [4] the batch's sums: the loss, the KL, the penalised rewards r_b, the rows whose
 * advantage is above 0. B a multiple of k >= 2. */
static inline LF_HOST_DEVICE void rloo_batch(double stats[4], float *weight, const float *logp,
                                             const float *ref, const float *reward, double beta,
                                             int k, int normalize, double scale, int B) {
    double loss = 0, kl_sum = 0, r_sum = 0, positive = 0, a_sum = 0, a_sq = 0;
    for (int g = 0; g < B; g += k) { /* A_b kept in weight[b] until the scaling below */
        double group = 0;
        for (int b = g; b < g + k; b++)
            group += reward[b] - (ref ? beta * ((double)logp[b] - ref[b]) : 0.0);
        for (int b = g; b < g + k; b++) {
            double kl = ref ? (double)logp[b] - ref[b] : 0.0, r = reward[b] - beta * kl;
            double a = r - (group - r) / (k - 1);
            weight[b] = (float)a;
            kl_sum += kl, r_sum += r, a_sum += a;
        }
    }
    double mean = a_sum / B;
    for (int b = 0; b < B; b++) a_sq += (weight[b] - mean) * (weight[b] - mean);
    double std = B > 1 ? sqrt(a_sq / (B - 1)) : 0.0;
    for (int b = 0; b < B; b++) {
        double a = normalize ? (weight[b] - mean) / (std + 1e-4) : (double)weight[b];
        loss -= a;
        positive += a > 0;
        weight[b] = (float)(a / B * scale);
    }
    stats[0] = loss;
    stats[1] = kl_sum;
    stats[2] = r_sum;
    stats[3] = positive;
}
