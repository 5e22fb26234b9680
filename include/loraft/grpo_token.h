/* grpo_token.h: GRPO's loss and gradient weights (ops.h grpo_weights), in double, written once
 * for both backends (kernels/cpu and kernels/cuda/pair_loss.cu include it).
 *
 * TRL 1.16's GRPOTrainer._compute_loss, a token's log-prob lp = -loss (the LM head's token
 * loss), with A its row's advantage and w (share) its share of the batch's loss, c the ratio of
 * the policy's probability to the sampling policy's (c = exp(lp - lp_old); old NULL: 1, its
 * derivative still there):
 *   loss  = w (P(c, lp) + beta c kl),  kl = exp(x) - x - 1, x = lp_ref - lp (ref NULL: beta 0)
 * the bias-corrected k3 KL, whose term has d/d lp = -c x (kl_corrected 0: beta kl, its term's
 * d/d lp 1 - exp(x)), and the policy term P by the loss type:
 *   clip (dapo, grpo, bnpo, dr_grpo): -min(min(c, delta) A, clamp(c, 1 - eps_low, 1 + eps_high) A),
 *     delta (two-sided clipping, INTELLECT-2) where > 0; where a bound binds on the side the
 *     advantage pushes the min takes a constant and the advantage gives no gradient: the token
 *     is clipped, low or high (TRL's clip_ratio); otherwise d P / d lp = -A c;
 *   cispo (MiniMax-M1): -sg(min(c, eps_high)) A lp, d P / d lp = -min(c, eps_high) A, clipped
 *     high where c > eps_high and A > 0 (TRL's cispo_clip_ratio);
 *   sapo (soft gating): -sigmoid(tau (c - 1)) 4 / tau A, tau sapo_pos where A > 0 else sapo_neg,
 *     d P / d lp = -4 A c s (1 - s), s the sigmoid; nothing clipped;
 *   vespo (variational sequence-level soft PO): -sg(phi(w)) A lp with the row's weight w, the
 *     exp of the sum of its tokens' log-ratios (each clamped to [-20, 20], the sum to [log 1e-8,
 *     20]) and phi(w) = exp(lambda + k log w - lambda w), k and lambda by the advantage's sign
 *     (lambda at least 1e-4); d P / d lp = -phi A; nothing clipped. Its KL's ratio is the level's
 *     (TRL's warns at sequence level; loraft's config refuses it).
 * The off-policy sequence mask (DeepSeek-V3.2, TRL's off_policy_mask_threshold delta > 0) drops
 * the policy term P (not the KL's) of a row whose advantage is negative and whose tokens' mean
 * lp_old - lp (detached; 0 where old is NULL) is above delta: the op takes such rows whole.
 * The entropy mask (TRL's top_entropy_quantile, "Beyond the 80/20 rule") drops the policy term
 * of a completion token whose entropy is below the batch's entropy_quantile (the KL's kept; a
 * row's term at sequence level counts its kept tokens' shares alone), and the entropy bonus
 * subtracts entropy_coef times the mean entropy over the kept tokens.
 * The weight a token's loss gets is d loss / d loss_token = -d loss / d lp.
 *
 * At sequence level a row has one ratio, clipped as a whole, the loss the same with it: GSPO's
 * (Zheng et al. 2025: importance_sampling_level sequence) c = exp(mean over its n completion
 * tokens of lp - lp_old), which a token's lp moves by c / n, or RLOO's (TRL's RLOOTrainer) c =
 * exp(sum of lp - lp_old), the ratio of the completion's probabilities, moved by c; call the
 * divisor m (n or 1). With S the row's shares summed and K its w kl summed, a token's weight is
 * -(S dP/dlog c / m + w dP/dlp direct) + beta c (w (exp(x) - 1) - K / m), the direct part
 * cispo's alone (its ratio is detached); without the correction, -(S dP/dlog c / m + w dP/dlp
 * direct) + beta w (exp(x) - 1). */
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "loraft/hostdevice.h"
#include "loraft/ops.h"

/* The policy term of one ratio: P = ratio_value + direct lp (cispo's alone depends on lp but
 * through the ratio), dP / d log c through the ratio, and whether it is clipped. */
typedef struct GrpoTerm {
    double ratio_value, by_ratio, direct;
    int low, high;
} GrpoTerm;

static inline LF_HOST_DEVICE GrpoTerm grpo_term(const OpsGrpoTerms *t, double c, double a) {
    GrpoTerm g = {0.0, 0.0, 0.0, 0, 0};
    if (t->policy == OPS_GRPO_CISPO) {
        double r = c < t->eps_high ? c : t->eps_high;
        g.direct = -r * a, g.high = c > t->eps_high && a > 0;
        return g;
    }
    if (t->policy == OPS_GRPO_VESPO) { /* c is the row's weight w */
        int pos = a >= 0;
        double k = t->vespo_k[!pos], lambda = fmax((double)t->vespo_lambda[!pos], 1e-4);
        g.direct = -exp(lambda + k * log(c) - lambda * c) * a;
        return g;
    }
    if (t->policy == OPS_GRPO_SAPO) {
        double tau = a > 0 ? t->sapo_pos : t->sapo_neg, s = 1.0 / (1.0 + exp(-tau * (c - 1.0)));
        g.ratio_value = -s * 4.0 / tau * a, g.by_ratio = -4.0 * a * c * s * (1.0 - s);
        return g;
    }
    double lo = 1.0 - t->eps_low, hi = 1.0 + t->eps_high;
    int capped = t->delta > 0 && c > t->delta, in = c >= lo && c <= hi;
    double c1 = capped ? t->delta : c, c2 = c < lo ? lo : c > hi ? hi : c;
    double v1 = c1 * a, v2 = c2 * a, d1 = capped ? 0.0 : c, d2 = in ? c : 0.0; /* d / d log c */
    g.ratio_value = -(v1 < v2 ? v1 : v2);
    g.by_ratio = -a * (v1 < v2 ? d1 : v2 < v1 ? d2 : 0.5 * (d1 + d2)); /* torch.min's tie */
    g.low = c1 < lo && a<0, g.high = c1> hi && a > 0;
    return g;
}

/* The policy term of a row the off-policy mask drops: nothing but its clip flags, which TRL's
 * clip ratios count all the same. */
static inline LF_HOST_DEVICE GrpoTerm grpo_masked(GrpoTerm g, int keep) {
    if (!keep) g.ratio_value = g.by_ratio = g.direct = 0.0;
    return g;
}

/* Token i's d loss / d losses[i] at token level, keep 0 where the off-policy mask drops its row;
 * adds its loss, c kl, 1 and its clip flags to sums[5]. share 0: off the completions, 0 and
 * nothing added. */
static inline LF_HOST_DEVICE float grpo_token(double sums[5], float share, float adv,
                                              const float *losses, const float *ref,
                                              const float *old, size_t i, const OpsGrpoTerms *t,
                                              int keep) {
    if (share == 0.0f) return 0.0f;
    double c = old ? exp((double)old[i] - losses[i]) : 1.0, lp = -(double)losses[i];
    GrpoTerm g = grpo_masked(grpo_term(t, c, adv), keep);
    double x = ref ? (double)losses[i] - ref[i] : 0.0, kl = ref ? exp(x) - x - 1.0 : 0.0;
    double kc = t->kl_corrected ? c : 1.0; /* the KL term's factor */
    sums[0] += share * (g.ratio_value + g.direct * lp + t->beta * kc * kl);
    sums[1] += kc * kl, sums[2] += 1.0, sums[3] += g.low, sums[4] += g.high;
    double dkl = t->kl_corrected ? c * x : exp(x) - 1.0; /* -d (kc kl) / d lp */
    return (float)(share * (-(g.by_ratio + g.direct) + t->beta * dkl));
}

/* Whether the op takes the rows whole: at sequence level, for vespo's weight (a row's), or for
 * the off-policy mask (a row's mean). */
static inline LF_HOST_DEVICE int grpo_by_row(const OpsGrpoTerms *t) {
    return t->level != OPS_GRPO_TOKEN || t->policy == OPS_GRPO_VESPO || t->off_policy > 0;
}

/* Whether a row taken whole keeps each token's own ratio and policy term (grpo_token), only its
 * mask the row's. */
static inline LF_HOST_DEVICE int grpo_row_of_tokens(const OpsGrpoTerms *t) {
    return t->level == OPS_GRPO_TOKEN && t->policy != OPS_GRPO_VESPO;
}

/* A row taken whole: its sums over the completion tokens, then its ratio and the part of each
 * token's weight the row shares. Its KL sums are the tokens' times their own ratios where the
 * level is the token's (vespo's), else the row's ratio multiplies them when it is known. */
typedef struct GrpoRow {
    /* sums: lp - lp_old, 1, w and w lp (of the policy term's tokens), w kl, kl, lp_old - lp */
    double log_ratio, n, share, share_lp, share_kl, kl, drift;
    double c, direct, scale; /* the ratio, cispo's dP/dlp, the weight's shared part */
    int keep;                /* 0: the off-policy mask drops the row's policy term */
} GrpoRow;

/* The ratio of token i (old NULL: 1). */
static inline LF_HOST_DEVICE double grpo_ratio(const float *losses, const float *old, size_t i) {
    return old ? exp((double)old[i] - losses[i]) : 1.0;
}

/* Adds token i to its row's sums (share 0: off the completions, nothing); kept 0 where the
 * entropy mask drops its policy term (its share and log-prob left out of share, share_lp). */
static inline LF_HOST_DEVICE void grpo_row_add(GrpoRow *r, float share, const float *losses,
                                               const float *ref, const float *old, size_t i,
                                               const OpsGrpoTerms *t, int kept) {
    if (share == 0.0f) return;
    double x = ref ? (double)losses[i] - ref[i] : 0.0, kl = ref ? exp(x) - x - 1.0 : 0.0;
    double lr = old ? (double)old[i] - losses[i] : 0.0, policy = kept ? share : 0.0;
    if (t->level == OPS_GRPO_TOKEN && t->kl_corrected) kl *= grpo_ratio(losses, old, i);
    r->log_ratio += t->policy == OPS_GRPO_VESPO ? fmin(fmax(lr, -20.0), 20.0) : lr;
    r->n += 1.0, r->share += policy, r->share_lp -= policy * (double)losses[i];
    r->share_kl += share * kl, r->kl += kl, r->drift -= lr;
}

/* Whether the off-policy mask keeps the row (its sums added), a its advantage: a >= 0, or its
 * tokens' mean drift at most the threshold (TRL clamps the count at 1). */
static inline LF_HOST_DEVICE int grpo_row_kept(const GrpoRow *r, float a, const OpsGrpoTerms *t) {
    return t->off_policy <= 0 || a >= 0 || r->drift / (r->n > 1.0 ? r->n : 1.0) <= t->off_policy;
}

/* The row's ratio and shared weight from its sums, a its advantage; adds its loss, c kl, tokens
 * and clip flags (one a row) to sums[5]. */
static inline LF_HOST_DEVICE void grpo_row_finish(GrpoRow *r, double sums[5], float a,
                                                  const OpsGrpoTerms *t) {
    int vespo = t->policy == OPS_GRPO_VESPO, row_kl = t->level != OPS_GRPO_TOKEN;
    /* the mean's count, which TRL clamps at 1; a sum's 1 */
    double m = t->level == OPS_GRPO_SEQUENCE_SUM || vespo ? 1.0 : r->n > 1.0 ? r->n : 1.0;
    double log_c = r->log_ratio / m;
    r->c = exp(vespo ? fmin(fmax(log_c, log(1e-8)), 20.0) : log_c);
    GrpoTerm g = grpo_masked(grpo_term(t, r->c, a), r->keep = grpo_row_kept(r, a, t));
    double kc = row_kl && t->kl_corrected ? r->c : 1.0; /* the row's factor on the KL sums */
    r->direct = g.direct;
    r->scale = -(r->share * g.by_ratio +
                 (row_kl && t->kl_corrected ? t->beta * r->c * r->share_kl : 0.0)) /
               m;
    sums[0] += r->share * g.ratio_value + g.direct * r->share_lp + t->beta * kc * r->share_kl;
    sums[1] += kc * r->kl, sums[2] += r->n, sums[3] += g.low, sums[4] += g.high;
}

/* Token i's d loss / d losses[i] in a row taken whole, its row finished; kept as grpo_row_add's. */
static inline LF_HOST_DEVICE float grpo_row_token(const GrpoRow *r, float share,
                                                  const float *losses, const float *ref,
                                                  const float *old, size_t i, const OpsGrpoTerms *t,
                                                  int kept) {
    if (share == 0.0f) return 0.0f;
    double x = ref ? (double)losses[i] - ref[i] : 0.0, dkl; /* -d (kc kl) / d lp, over beta w */
    if (t->level == OPS_GRPO_TOKEN) /* vespo's: the token's ratio, as grpo_token's */
        dkl = t->kl_corrected ? grpo_ratio(losses, old, i) * x : exp(x) - 1.0;
    else
        dkl = (t->kl_corrected ? r->c : 1.0) * (exp(x) - 1.0);
    return (float)(r->scale - (kept ? share : 0.0f) * r->direct + t->beta * share * dkl);
}

/* The entropy mask's threshold, torch.quantile's q-quantile of n sorted values in float: at rank
 * q (n - 1), between the values at its floor (below) and its ceiling (above), by weight w ... */
static inline LF_HOST_DEVICE void grpo_quantile_ranks(long n, float q, long *below, long *above,
                                                      float *w) {
    float rank = q * (float)(n - 1);
    *below = (long)rank, *above = (long)ceilf(rank), *w = rank - (float)*below;
}

/* ... and between them, torch.lerp's (exact at either end). */
static inline LF_HOST_DEVICE float grpo_lerp(float lo, float hi, float w) {
    return w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
}

/* A float's bits, and back (entropies: at least 0, so their bits order as they do) */
static inline LF_HOST_DEVICE uint32_t grpo_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline LF_HOST_DEVICE float grpo_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The selection of a k-th smallest value by its bits, from the top: whether u is one of the
 * values whose bits above `bit` are the prefix found so far and whose bit `bit` is 0 */
static inline LF_HOST_DEVICE int grpo_select_zero(uint32_t u, uint32_t prefix, int bit) {
    uint32_t high = bit == 31 ? 0u : ~0u << (bit + 1);
    return (u & high) == prefix && !((u >> bit) & 1u);
}

/* Whether the entropy mask keeps completion token i's policy term: no mask, or its entropy at
 * least the threshold. */
static inline LF_HOST_DEVICE int grpo_entropy_kept(const OpsGrpoTerms *t, const float *entropy,
                                                   float threshold, size_t i) {
    return !(t->entropy_quantile > 0.0f) || entropy[i] >= threshold;
}

/* The entropy bonus's share of token i's entropy weight: -entropy_coef over the kept tokens'
 * count (at least 1, TRL's clamp), at the kept completion tokens. */
static inline LF_HOST_DEVICE float grpo_entropy_scale(const OpsGrpoTerms *t, float share, int kept,
                                                      double n_kept) {
    return share != 0.0f && kept ? (float)(-t->entropy_coef / (n_kept > 1.0 ? n_kept : 1.0)) : 0.0f;
}
