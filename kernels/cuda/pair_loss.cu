/* pair_loss.cu: the preference losses (ops.h dpo_loss, reward_loss) and GRPO's and RLOO's token
 * weights (grpo_weights) on the device, so that a DPO, reward-model, RLOO or GRPO
 * step reads nothing back before its backward. A batch is tens of rows: one block does it all, a
 * round of up to PAIR_THREADS pairs at a time. Warps sum DPO's rows (in double), one thread a pair
 * computes pair_loss.h's terms (in double, as the CPU) and thread 0 adds them in pair order: the
 * CPU's results up to the order of a row's sum and the device's exp / log1p. */
#include "cuda_common.cuh"
#include "loraft/grpo_token.h"
#include "loraft/pair_loss.h"

enum { PAIR_THREADS = 256 }; /* the block, and the pairs of one round */

/* Thread 0: sums[k] += the round's terms, in pair order. */
__device__ void pairs_add(double *sums, const PairTerms *terms, int pairs) {
    if (threadIdx.x) return;
    for (int i = 0; i < pairs; i++)
        for (int k = 0; k < 4; k++) sums[k] += terms[i].stats[k];
}

/* losses, labels [B,T] -> logps [B], stats; with ref also row_scale [B,T] (may be NULL) */
__global__ void dpo_loss_kernel(double *stats, float *logps, float *row_scale, const float *losses,
                                const int32_t *labels, const float *ref, float beta, float eps,
                                int ipo, double scale, int B, int T) {
    __shared__ float logp[2 * PAIR_THREADS];
    __shared__ double count[2 * PAIR_THREADS];
    __shared__ PairTerms terms[PAIR_THREADS];
    double sums[4] = {0.0, 0.0, 0.0, 0.0};
    int P = B / 2, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int p0 = 0; p0 < P; p0 += PAIR_THREADS) {
        int pairs = min(P - p0, (int)PAIR_THREADS), rows = 2 * pairs;
        size_t first = (size_t)2 * p0 * T;                     /* the round's first token */
        for (int i = threadIdx.x / 32; i < rows; i += warps) { /* a warp a row */
            double sum = 0.0;
            int n = 0;
            for (int t = lane; t < T; t += 32) {
                sum += losses[first + (size_t)i * T + t];
                n += labels[first + (size_t)i * T + t] >= 0;
            }
            sum = warp_sum(sum);
            n = warp_sum(n);
            if (lane == 0) {
                logps[2 * p0 + i] = logp[i] = (float)-sum;
                count[i] = ipo && n ? n : 1;
            }
        }
        __syncthreads();
        int i = threadIdx.x;
        if (ref && i < pairs)
            terms[i] =
                dpo_pair(logp + 2 * i, ref + 2 * (p0 + i), count + 2 * i, beta, eps, ipo, scale);
        __syncthreads();
        if (ref) pairs_add(sums, terms, pairs);
        if (ref && row_scale)
            for (size_t j = threadIdx.x; j < (size_t)rows * T; j += blockDim.x) {
                const PairTerms *t = &terms[j / T / 2];
                row_scale[first + j] = j / T % 2 ? t->grad_rejected : t->grad_chosen;
            }
        __syncthreads(); /* the next round overwrites logp, count and terms */
    }
    if (threadIdx.x == 0)
        for (int k = 0; k < 4; k++) stats[k] = sums[k];
}

void cuda_dpo_loss(double *stats, float *logps, float *row_scale, const float *losses,
                   const int32_t *labels, const float *ref, float beta, float label_smoothing,
                   int ipo, float grad_scale, int B, int T) {
    double scale = B >= 2 ? grad_scale / (double)(B / 2) : 0.0;
    dpo_loss_kernel<<<1, PAIR_THREADS>>>(stats, logps, row_scale, losses, labels, ref, beta,
                                         label_smoothing, ipo, scale, B, T);
    CUDA_LAUNCHED("dpo_loss");
}

/* scores [B,T], pos [B] -> rewards [B], stats, dscores [B,T] (may be NULL) */
__global__ void reward_loss_kernel(double *stats, float *rewards, float *dscores,
                                   const float *scores, const int32_t *pos, double scale,
                                   const OpsStep *step, int B, int T) {
    __shared__ PairTerms terms[PAIR_THREADS];
    scale *= step_grad_scale(step);
    double sums[4] = {0.0, 0.0, 0.0, 0.0};
    int P = B / 2;
    if (dscores)
        for (size_t j = threadIdx.x; j < (size_t)B * T; j += blockDim.x) dscores[j] = 0.0f;
    __syncthreads(); /* the zeros land before the pooled tokens' gradients */
    for (int p0 = 0; p0 < P; p0 += PAIR_THREADS) {
        int p = p0 + threadIdx.x;
        if (p < P) {
            size_t c = (size_t)2 * p * T + pos[2 * p], r = (size_t)(2 * p + 1) * T + pos[2 * p + 1];
            PairTerms t = reward_pair(scores[c], scores[r], scale);
            rewards[2 * p] = scores[c];
            rewards[2 * p + 1] = scores[r];
            if (dscores) {
                dscores[c] = t.grad_chosen;
                dscores[r] = t.grad_rejected;
            }
            terms[threadIdx.x] = t;
        }
        __syncthreads();
        pairs_add(sums, terms, min(P - p0, (int)PAIR_THREADS));
        __syncthreads(); /* the next round overwrites terms */
    }
    if (threadIdx.x == 0)
        for (int k = 0; k < 4; k++) stats[k] = sums[k];
}

void cuda_reward_loss(double *stats, float *rewards, float *dscores, const float *scores,
                      const int32_t *pos, float grad_scale, int B, int T) {
    double scale = B >= 2 ? grad_scale / (double)(B / 2) : 0.0;
    reward_loss_kernel<<<1, PAIR_THREADS>>>(stats, rewards, dscores, scores, pos, scale,
                                            cuda_step(), B, T);
    CUDA_LAUNCHED("reward_loss");
}

/* The k-th smallest (from 0) of the completion tokens' entropies (share not 0) by their bits,
 * from the top, as the CPU's kth_entropy: a pass a bit, each a count over the block (integers:
 * the CPU's in any order). Every thread calls it and gets it. */
__device__ float kth_entropy(const float *entropy, const float *share, size_t n, long long k) {
    uint32_t prefix = 0;
    long long below = 0; /* the values under the prefix found so far */
    for (int bit = 31; bit >= 0; bit--) {
        long long zeros = 0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            zeros += share[i] != 0.0f && grpo_select_zero(grpo_bits(entropy[i]), prefix, bit);
        zeros = block_sum(zeros);
        if (below + zeros <= k) prefix |= 1u << bit, below += zeros;
    }
    return grpo_float(prefix);
}

/* The entropy mask's threshold (grpo_token.h), as the CPU's entropy_threshold; 0 where there is
 * no mask or no completion token. Every thread calls it and gets it. */
__device__ float entropy_threshold(const float *entropy, const float *share, float q, size_t n) {
    if (!(q > 0.0f)) return 0.0f;
    long long count = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) count += share[i] != 0.0f;
    count = block_sum(count);
    if (!count) return 0.0f;
    long below, above;
    float w;
    grpo_quantile_ranks((long)count, q, &below, &above, &w);
    float lo = kth_entropy(entropy, share, n, below);
    return grpo_lerp(lo, above == below ? lo : kth_entropy(entropy, share, n, above), w);
}

/* GRPO's token weights over B rows of T tokens: at token level a thread a token at a time; rows
 * taken whole (at sequence level, vespo's, or under the off-policy mask) a warp a row, its sums
 * over the lanes, lane 0 finishing the row (or each lane its tokens, under the mask alone at
 * token level), then its tokens. The entropy mask's threshold first, the block's selection; the
 * kept tokens' entropies and count after the weights, the count over the block before the
 * bonus's weights. The seven sums in double per thread, then per warp, then by thread 0 over the
 * warps. */
__global__ void grpo_weights_kernel(double *stats, float *row_scale, float *entropy_scale,
                                    const float *share, const float *adv, const float *losses,
                                    const float *entropy, const float *ref, const float *old,
                                    OpsGrpoTerms t, int B, int T) {
    __shared__ double part[PAIR_THREADS / 32][7];
    double sums[7] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    size_t n = (size_t)B * T;
    int by_row = grpo_by_row(&t);
    float cut = entropy ? entropy_threshold(entropy, share, t.entropy_quantile, n) : 0.0f;
    auto kept = [&](size_t i) { return !entropy || grpo_entropy_kept(&t, entropy, cut, i); };
    for (size_t i = threadIdx.x; !by_row && i < n; i += blockDim.x)
        row_scale[i] = grpo_token(sums, share[i], adv[i], losses, ref, old, i, &t, kept(i));
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int b = warp; by_row && b < B; b += PAIR_THREADS / 32) {
        size_t at = (size_t)b * T;
        GrpoRow r = {};
        for (size_t i = at + lane; i < at + T; i += 32)
            grpo_row_add(&r, share[i], losses, ref, old, i, &t, kept(i));
        r.log_ratio = warp_sum(r.log_ratio), r.n = warp_sum(r.n), r.share = warp_sum(r.share);
        r.share_lp = warp_sum(r.share_lp), r.share_kl = warp_sum(r.share_kl), r.kl = warp_sum(r.kl);
        r.drift = warp_sum(r.drift);
        if (grpo_row_of_tokens(&t)) { /* the off-policy mask's row of token ratios */
            int keep = grpo_row_kept(&r, adv[at], &t);
            for (size_t i = at + lane; i < at + T; i += 32)
                row_scale[i] =
                    grpo_token(sums, share[i], adv[i], losses, ref, old, i, &t, keep && kept(i));
            continue;
        }
        double mine[5] = {0.0, 0.0, 0.0, 0.0, 0.0}; /* every lane finishes it, lane 0 counts */
        grpo_row_finish(&r, mine, adv[at], &t);
        for (int k = 0; lane == 0 && k < 5; k++) sums[k] += mine[k];
        for (size_t i = at + lane; i < at + T; i += 32)
            row_scale[i] = grpo_row_token(&r, share[i], losses, ref, old, i, &t, kept(i));
    }
    for (size_t i = threadIdx.x; entropy && i < n; i += blockDim.x)
        if (share[i] != 0.0f && kept(i)) sums[5] += entropy[i], sums[6] += 1.0;
    double n_kept = entropy ? block_sum(sums[6]) : 0.0; /* a count: exact in any order */
    for (size_t i = threadIdx.x; entropy_scale && i < n; i += blockDim.x)
        entropy_scale[i] = grpo_entropy_scale(&t, share[i], kept(i), n_kept);
    for (int k = 0; k < 7; k++) {
        double v = warp_sum(sums[k]);
        if (lane == 0) part[warp][k] = v;
    }
    __syncthreads();
    if (threadIdx.x) return;
    for (int k = 0; k < 7; k++) {
        double v = 0.0;
        for (int w = 0; w < PAIR_THREADS / 32; w++) v += part[w][k];
        sums[k] = v;
    }
    sums[0] -= t.entropy_coef * sums[5] / (sums[6] > 1.0 ? sums[6] : 1.0);
    for (int k = 0; k < 7; k++) stats[k] = sums[k];
}

void cuda_grpo_weights(double *stats, float *row_scale, float *entropy_scale, const float *share,
                       const float *adv, const float *losses, const float *entropy,
                       const float *ref, const float *old, OpsGrpoTerms t, int B, int T) {
    grpo_weights_kernel<<<1, PAIR_THREADS>>>(stats, row_scale, entropy_scale, share, adv, losses,
                                             entropy, ref, old, t, B, T);
    CUDA_LAUNCHED("grpo_weights");
}
