/* pair_loss.h: the math of one preference pair (ops.h dpo_loss, reward_loss), in double, written
 * once for both backends: kernels/cpu and kernels/cuda/pair_loss.cu include it, so the CPU and
 * the GPU compute the same function and differ only where the device's exp / log1p do. */
#pragma once
#include <math.h>

#include "loraft/hostdevice.h"

/* One pair's share of the batch: its terms of ops.h's stats (loss, chosen reward, rejected
 * reward, 1 when the chosen one is above) and the gradient weights of its two rows. */
typedef struct PairTerms {
    double stats[4];
    float grad_chosen, grad_rejected;
} PairTerms;

/* log sigmoid(z), without overflow at either end */
static inline LF_HOST_DEVICE double pair_log_sigmoid(double z) {
    return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}

/* DPO (TRL 0.12.0, see ops.h): the rows' log-probs logp and reference log-probs ref (chosen,
 * rejected), n their token counts under IPO (1 otherwise); scale = d loss / d pair loss. The
 * token loss is -log p, so a row's gradient weight is -d loss / d logp. */
static inline LF_HOST_DEVICE PairTerms dpo_pair(const float logp[2], const float ref[2],
                                                const double n[2], double beta, double eps, int ipo,
                                                double scale) {
    double pc = logp[0] / n[0], pr = logp[1] / n[1], rc = ref[0] / n[0], rr = ref[1] / n[1];
    double x = (pc - pr) - (rc - rr), loss, dx;
    if (ipo) {
        double d = x - 1.0 / (2.0 * beta);
        loss = d * d;
        dx = 2.0 * d;
    } else {
        loss = -(1.0 - eps) * pair_log_sigmoid(beta * x) - eps * pair_log_sigmoid(-beta * x);
        dx = -beta * (1.0 - eps) * exp(pair_log_sigmoid(-beta * x)) +
             beta * eps * exp(pair_log_sigmoid(beta * x));
    }
    PairTerms t;
    t.stats[0] = loss;
    t.stats[1] = beta * (pc - rc);
    t.stats[2] = beta * (pr - rr);
    t.stats[3] = t.stats[1] > t.stats[2];
    t.grad_chosen = (float)(-dx / n[0] * scale);
    t.grad_rejected = (float)(dx / n[1] * scale);
    return t;
}

/* Reward model: the rewards of the chosen and rejected rows, loss -log sigmoid(rc - rr); scale =
 * d loss / d pair loss; the weights are d loss / d rc and d loss / d rr. */
static inline LF_HOST_DEVICE PairTerms reward_pair(float rc, float rr, double scale) {
    double d = (double)rc - rr, g = -scale / (1.0 + exp(d)); /* -sigmoid(-d) */
    PairTerms t;
    t.stats[0] = -pair_log_sigmoid(d);
    t.stats[1] = rc;
    t.stats[2] = rr;
    t.stats[3] = rc > rr;
    t.grad_chosen = (float)g;
    t.grad_rejected = -(float)g;
    return t;
}
