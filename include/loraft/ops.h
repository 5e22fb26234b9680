/* ops.h: the op interface the model is written against; one table per backend.
 *
 * Every tensor pointer below lives in the backend's memory (host memory for "cpu",
 * device memory for "cuda") and comes from that backend's alloc. The model never
 * dereferences them. A GPU test runs the same op on both tables with the same inputs and
 * compares: that is how every CUDA kernel is checked against the CPU reference.
 *
 * Dimensions: B batch, T sequence length, C channels (input features), OC output
 * features, NH attention heads (head size HS = C/NH), R LoRA rank, V classes/vocab,
 * N rows (= B*T for token-wise ops). Tensors are row-major, last dimension contiguous.
 *
 * Conventions:
 * - forward ops overwrite their outputs;
 * - backward ops ACCUMULATE (+=) into every gradient they write, so residual branches
 *   and shared inputs just add up; the trainer zeroes gradient buffers before backward;
 *   an op with an `acc` flag overwrites that gradient instead when acc is 0, for the buffer's
 *   first writer, so the model need not zero it first (a memset and a read of it saved);
 * - a NULL gradient pointer means "not needed" (a frozen weight, or an input whose
 *   gradient no one uses) and that work is skipped;
 * - dropout is a pure function of (seed, element index), see rng.h, so backward
 *   regenerates the mask and both backends draw identical masks (attention's P and LoRA's input
 *   with rng_row_dropout, the rest with rng_dropout_scale); the seed is the one an op is given
 *   XOR the step's (set_step), and a loss's gradient scale the one it is given times the
 *   step's: the values that change from one training step to the next are read from backend
 *   memory, so that a step recorded as a CUDA graph replays with new ones;
 * - an input that a backward op reads again may come as its bf16 copy instead (uint16_t,
 *   rounded to nearest even; the f32 pointer NULL), which the forward op writes beside its
 *   output when given somewhere to (NULL: not written): model.precision bf16 keeps those
 *   activations for backward at half the memory.
 */
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* A backward op's acc flag (above): the gradient's first writer sets it, later ones add. */
enum { OPS_SET = 0, OPS_ADD = 1 };

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum Activation {
    ACT_GELU,      /* exact: x * 0.5 * (1 + erf(x / sqrt(2))), HF "gelu" */
    ACT_GELU_TANH, /* tanh approximation, HF "gelu_new" / "gelu_pytorch_tanh" */
    ACT_RELU,
    ACT_TANH,
    ACT_SILU, /* x * sigmoid(x), HF "silu" (Llama's gate) */
} Activation;

/* One trainable tensor, or a piece of one, for adamw_step: param[0..n) is its values (backend
 * memory), grads/m/v[offset .. offset + n) its gradient and moments. */
typedef struct AdamWTensor {
    float *param;
    size_t offset, n;
    int decay;      /* weight decay applies */
    float lr_scale; /* its learning rate is the step's times this (LoRA+'s B: the ratio) */
} AdamWTensor;
/* adamw_step's hyper-parameters; max_norm <= 0: no clipping. */
typedef struct AdamWHyper {
    float lr, beta1, beta2, eps, weight_decay, max_norm;
    int step;
} AdamWHyper;
/* Ops.graph_counts: graph launches (recorded and replayed), replays of a recording, and the
 * recordings' instantiations and in-place updates of an executable graph (cudaGraphExecUpdate). */
typedef struct OpsGraphCounts {
    long launches, replayed, instantiated, updated;
} OpsGraphCounts;
/* Ops.set_step: the scalars of a training step. Every dropout seed an op is given is XORed
 * with seed, and every loss's gradient scale multiplied by grad_scale ({0, 1} at the start:
 * the ops' own arguments unchanged). */
typedef struct OpsStep {
    uint64_t seed;
    float grad_scale;
} OpsStep;
/* One copy of Ops.round_bf16_many: dst[r * ld + c] = bf16(src[r * cols + c]), r < rows, c < cols.
 */
typedef struct OpsBf16Copy {
    const float *src;
    uint16_t *dst;
    int rows, cols, ld;
} OpsBf16Copy;
/* LoRA on the LM head, inside lm_head_cross_entropy (peft's lm_head target): u [N,R] its rows'
 * down-projection (lora_forward's u of h), B [V,R], scale; du [N,R] and dB [V,R] the gradients
 * the op adds to (NULL: skipped). */
typedef struct OpsHeadLora {
    const float *u, *B;
    float *du, *dB;
    float scale;
    int R;
} OpsHeadLora;
/* The LM head's logits as its softmax reads them: soft-capped, z <- softcap * tanh(z / softcap),
 * where softcap > 0 (Gemma 2's final logits; 0: none), then divided by temperature > 0 (RL's
 * sampling temperature, by which TRL's RLOO and GRPO trainers divide the logits of their
 * log-probs; 1: none). */
typedef struct OpsLogitMap {
    float softcap, temperature;
} OpsLogitMap;
#define OPS_LOGITS_PLAIN ((OpsLogitMap){0.0f, 1.0f}) /* neither (a C compound literal) */
/* The softmax's entropy at the rows the LM head computes (RL's entropy metric, mask and bonus:
 * TRL's entropy_from_logits over the mapped logits): out [N] (NULL: not formed) = H_n = -sum_j
 * p_j log p_j (0 for ignored rows; at least 0); scale [N] (NULL: none) = d loss / d H_n, whose
 * term, scale[n] times grad_scale times the step's gradient scale times dH/dz_j = -p_j (z_j -
 * sum_i p_i z_i), adds to the row's dlogits (where they are formed), times the map's slope. */
typedef struct OpsEntropy {
    float *out;
    const float *scale;
} OpsEntropy;
/* GRPO's constants (Ops.grpo_weights, grpo_token.h): the KL penalty's weight; the policy term
 * (TRL's loss_type: the clipped ratio of dapo, grpo, bnpo, dr_grpo and luspo, cispo's, sapo's or
 * vespo's, whose weight is a row's whatever the level: the KL's ratio stays the level's); the
 * ratio's clipping range [1 - eps_low, 1 + eps_high] (TRL's epsilon and epsilon_high; cispo's
 * cap is eps_high itself), delta the two-sided clip's cap (0: none), sapo's temperatures for
 * positive and other advantages; whether the ratio is each token's or a row's, the exp of the
 * mean of its tokens' log-ratios (GSPO: TRL's importance_sampling_level sequence) or of their sum
 * (TRL's RLOOTrainer: the ratio of the completions' probabilities). */
typedef enum OpsGrpoPolicy {
    OPS_GRPO_CLIP,
    OPS_GRPO_CISPO,
    OPS_GRPO_SAPO,
    OPS_GRPO_VESPO
} OpsGrpoPolicy;
typedef enum OpsGrpoLevel {
    OPS_GRPO_TOKEN,
    OPS_GRPO_SEQUENCE_MEAN,
    OPS_GRPO_SEQUENCE_SUM
} OpsGrpoLevel;
typedef struct OpsGrpoTerms {
    float beta, eps_low, eps_high, delta, sapo_pos, sapo_neg;
    OpsGrpoLevel level;
    OpsGrpoPolicy policy;
    int kl_corrected; /* the KL term times the ratio (TRL's use_bias_correction_kl); 0: plain */
    float vespo_k[2], vespo_lambda[2]; /* vespo's gamma weight for advantages >= 0, then < 0 */
    float off_policy; /* the off-policy sequence mask's threshold (> 0; 0: no mask) */
    /* the entropy mask (TRL's top_entropy_quantile rho: this is 1 - rho; 0: no mask): the policy
     * term kept at the completion tokens whose entropy is at least this quantile of the batch's
     * completion tokens' entropies (torch.quantile's: linear between the order statistics) */
    float entropy_quantile;
    float entropy_coef; /* the entropy bonus's coefficient (TRL's entropy_coef; 0: none) */
} OpsGrpoTerms;
/* One linear of Ops.lora_backward_bf16's group: its output's gradient dout [N,OC], and where
 * its bf16(dout) goes in dd (columns dout_col..); adapted (B not NULL): forward's u [N,R], B
 * [OC,R], its dropout seed; du [N,R] written; dA [R,C], dB [OC,R] (+)=, each may be NULL; where
 * its bf16(du) goes in dd (columns du_col..). A member without LoRA (B, u, du, dA, dB NULL) only
 * has its dout rounded into dd, in the same pass. */
typedef struct OpsLoraBackward {
    const float *dout, *u, *B;
    float *du, *dA, *dB;
    uint64_t seed;
    int OC, dout_col, du_col;
} OpsLoraBackward;
/* Executable graphs a backend keeps (Ops.graph_end, graph_replay): the trainer's, one a shape of
 * training step, then generation's decode step (model_decode). */
#define OPS_GRAPH_TRAIN_SLOTS 4
#define OPS_GRAPH_DECODE_SLOT OPS_GRAPH_TRAIN_SLOTS
#define OPS_GRAPH_SLOTS (OPS_GRAPH_TRAIN_SLOTS + 1)
/* The most rows of an RLOO or GRPO batch (grpo_weights: one GPU block sums them). */
#define OPS_RL_MAX_ROWS 1024
/* Tensors longer than this are given to adamw_step in pieces of at most this many values (one
 * GPU block each); adamw_step's scratch in doubles (the norm's partial sums). */
#define OPS_ADAMW_PIECE 16384
#define OPS_ADAMW_SCRATCH 1024
/* Writes the pieces of one tensor, param[0..n) at offset in grads/m/v, into out (NULL: only
 * counts them); returns how many. */
static inline size_t ops_adamw_pieces(AdamWTensor *out, float *param, size_t offset, size_t n,
                                      int decay, float lr_scale) {
    size_t k = 0;
    for (size_t s = 0; s < n; s += OPS_ADAMW_PIECE, k++) {
        AdamWTensor t = {param + s, offset + s, n - s < OPS_ADAMW_PIECE ? n - s : OPS_ADAMW_PIECE,
                         decay, lr_scale};
        if (out) out[k] = t;
    }
    return k;
}

/* Rotary position embedding's inverse frequencies (attention_forward's rope): pair i of a head
 * turns by position * inv_freq[i], i < half = HS/2, with cos and sin times scale (HF's
 * attention_scaling: YaRN's attention factor, else 1); half 0: no rotation. The model works them
 * out once on the host (model_config.h: rope_freqs_init, HF's rope_scaling included); the ops
 * take them by host pointer, and the GPU's kernels as a launch parameter. */
enum { ROPE_MAX_PAIRS = 128 };
typedef struct RopeFreqs {
    int half;
    float scale;
    float inv_freq[ROPE_MAX_PAIRS];
} RopeFreqs;

/* Each number of a RoPE scaling that divides or multiplies a frequency (factors, divisors,
 * YaRN's betas) lies in [ROPE_NUMBER_MIN, ROPE_NUMBER_MAX], and the llama family's rope_theta is
 * at least 1: every frequency is then finite and at most 1e6, whatever the model says. */
#define ROPE_NUMBER_MIN 1e-6
#define ROPE_NUMBER_MAX 1e6
#define ROPE_NUMBER_RANGE "[1e-6, 1e6]"
static inline int rope_number_ok(float v) { /* as the float the model keeps */
    return v >= (float)ROPE_NUMBER_MIN && v <= (float)ROPE_NUMBER_MAX;
}

/* How attention scores query i against key j: s = scale * q_i . k_j (scale 1 / sqrt(HS), or
 * 1 / sqrt(query_pre_attn_scalar) for Gemma's), then with softcap > 0 s <- softcap *
 * tanh(s / softcap) (Gemma 2's logit soft-capping); softcap 0: none. */
typedef struct AttnScore {
    float scale, softcap;
} AttnScore;
static inline AttnScore attn_score_plain(int HS) { /* 1 / sqrt(HS), no soft-capping */
    AttnScore s = {1.0f / sqrtf((float)HS), 0.0f};
    return s;
}

/* How the GEMMs and attention compute (model.precision; model.h says what each means). */
typedef enum Precision { PRECISION_AUTO, PRECISION_FP32, PRECISION_TF32, PRECISION_BF16 } Precision;
/* Whose kernels attention_forward / attention_backward run (model.attention): loraft's own, or
 * cuDNN's fused attention (the CUDA backend under bf16, where built with it). */
typedef enum AttentionImpl { ATTENTION_LORAFT, ATTENTION_CUDNN } AttentionImpl;

typedef struct Ops {
    const char *name; /* "cpu" or "cuda" */

    /* ---- memory ---- */
    void *(*alloc)(size_t bytes); /* zero-filled; NULL when out of memory */
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); /* both in backend memory */
    /* Waits for queued work; returns -1 with a message if any op failed since last call. */
    int (*status)(LfError *err);

    /* ---- embeddings ----
     * out[B,T,C] = wte[ids[b,t]] + wpe[pos[b,t]] + wtt[types[b,t]]
     * ids, types, pos: [B,T] int32; wte [V,C], or (NULL) wte_bf16 [V,C] in bf16 (a decoder's
     * frozen table under precision bf16, stored so alone, the tied LM head's too); wpe [maxT,C] or
     * NULL (no learned positions, Llama); wtt [2,C] or NULL (no token types, DistilBERT); types
     * NULL means all zero, pos NULL means pos[b,t] = t (generation's cached positions are pos0 +
     * t). */
    void (*embedding_forward)(float *out, const int32_t *ids, const int32_t *types,
                              const int32_t *pos, const float *wte, const uint16_t *wte_bf16,
                              const float *wpe, const float *wtt, int B, int T, int C);
    /* dwte[V,C], dwpe[maxT,C], dwtt[2,C] += dout[B,T,C] scattered back; each may be NULL. A row
     * whose id is pad (the table's padding_idx; -1: none) adds nothing to dwte, as torch's
     * padding_idx. */
    void (*embedding_backward)(float *dwte, float *dwpe, float *dwtt, const float *dout,
                               const int32_t *ids, const int32_t *types, int pad, int B, int T,
                               int C);
    /* LoRA beside the token embedding (peft's lora_embedding_A / _B, which no dropout reaches):
     * u[N,R] = AT[ids[n]], AT [V,R] being peft's A [R,V] transposed (gathered as
     * embedding_forward gathers), saved for backward; out[N,C] += scale * u @ B^T, B [C,R]. */
    void (*embedding_lora_forward)(float *out, float *u, const int32_t *ids, const float *AT,
                                   const float *B, float scale, int N, int C, int R);
    /* With du = scale * dout @ B [N,R] (in scratch, N * R floats): dB[C,R] += scale * dout^T @
     * u; dAT[ids[n]] += du[n] for the rows whose id is not pad (embedding_backward's). */
    void (*embedding_lora_backward)(float *dAT, float *dB, const float *dout, const float *u,
                                    const int32_t *ids, const float *B, float scale, int pad,
                                    float *scratch, int N, int C, int R);

    /* ---- layer norm over the last dimension ----
     * out[N,C] = xhat * weight + bias, xhat = (inp - mean) * rstd; saves mean[N], rstd[N] and
     * (xh not NULL) bf16(xhat) [N,C]. Backward reads xhat from inp, mean and rstd, or (inp NULL)
     * from xh; its dinp is added to, or (acc 0) written, and dinp_bf16 (not NULL) = bf16 of
     * dinp's new value, for a bf16 GEMM that reads it (dinp may then be NULL under acc 0). */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, uint16_t *xh, const float *inp,
                              const float *weight, const float *bias, float eps, int N, int C);
    void (*layernorm_backward)(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                               const float *dout, const float *inp, const uint16_t *xh,
                               const float *weight, const float *mean, const float *rstd, int N,
                               int C, int acc);

    /* ---- RMS norm over the last dimension (Llama) ----
     * out[N,C] = xhat * weight, xhat = inp * rstd with rstd[N] = 1 / sqrt(mean_c(inp^2) + eps),
     * saved, and bf16(xhat) [N,C] when xh is not NULL: residual_norm_forward with mean NULL.
     * With g = dout * weight: dinp (+)= rstd * (g - xhat * mean_c(g * xhat)) (acc 0: =);
     * dweight[C] += sum_n dout * xhat; xhat from inp and rstd, or (inp NULL) from xh;
     * dinp_bf16 as layernorm_backward's. */
    void (*rmsnorm_backward)(float *dinp, uint16_t *dinp_bf16, float *dweight, const float *dout,
                             const float *inp, const uint16_t *xh, const float *weight,
                             const float *rstd, int N, int C, int acc);
    /* The residual stream's norm in one pass over its inputs: x = dropout(a; p, seed) + b
     * (dropout_forward's mask), or x = a where b is NULL (then neither dropout nor sum); out =
     * layer norm of x as layernorm_forward, or RMS norm (above) when mean is NULL (bias NULL);
     * sum (not NULL, may be a) = x, where backward or a later residual reads it; out_bf16 (not
     * NULL) = bf16(out), rows ldb apart (C, or an adapted group's input copy: lora_down_bf16),
     * for a bf16 GEMM that reads it; out may then be NULL, where b is NULL or sum is not.
     * Instead of dropout_forward, add and the norm, each a pass. */
    void (*residual_norm_forward)(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                                  float *rstd, uint16_t *xh, const float *a, const float *b,
                                  float p, uint64_t seed, const float *weight, const float *bias,
                                  float eps, int N, int C);
    /* RMS norm over each head (Qwen3's q_norm, k_norm): x holds N rows ld apart of H heads of HS
     * values; each head is normalised in place (RMS norm above, weight [HS]), its values before
     * it copied into raw [N*H, HS] and its rstd saved into rstd [N*H]: what rmsnorm_backward reads
     * (inp raw, N*H rows of HS), so that x may be one GEMM's rows [q | k | v] (ld their width). */
    void (*head_norm_forward)(float *x, int ld, float *raw, float *rstd, const float *weight,
                              float eps, int N, int H, int HS);

    /* ---- gated MLP activation (Llama's SwiGLU: act ACT_SILU; Gemma's GeGLU: ACT_GELU_TANH) ----
     * out[n] = act(gate[n]) * up[n] (act_value), out [n/F, F]; gate and up rows
     * ld apart (ld F: buffers of their own; 2F: one GEMM's outputs side by side, rows [gate | up]);
     * out_bf16 (not NULL) = bf16(out) for a bf16 GEMM, rows ldb apart (F, or an adapted linear's
     * input copy: lora_down_bf16), out may then be NULL; saved [n/F, 2F] (not NULL) = rows
     * [bf16(gate) | bf16(up)]. gate and up NULL: they are saved's values (the one bf16 GEMM of
     * gate and up wrote them there: matmul_forward_bf16's out_bf16), read, not written. */
    void (*glu_forward)(Activation act, float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                        const float *gate, const float *up, size_t n, int F, int ld);
    /* dgate (+)= dout * up * act'(gate); dup (+)= dout * act(gate) (acc 0: =); each may be NULL.
     * dgu_bf16 (not NULL) [n/F, 2F] = rows [bf16(dgate) | bf16(dup)] of their new values, F a
     * row, for the one bf16 GEMM of gate and up (the f32 ones may then be NULL under acc
     * OPS_SET). gate and up, or (both NULL) their copies in saved (rows [gate | up]); dout, or
     * (NULL) its bf16 values in dout_bf16 (matmul_backward_bf16's dinp_bf16). gate's, up's,
     * dgate's and dup's rows lie ld apart (F, or 2F: a fused linear's rows [gate | up]). */
    void (*glu_backward)(Activation act, float *dgate, float *dup, uint16_t *dgu_bf16,
                         const float *dout, const uint16_t *dout_bf16, const float *gate,
                         const float *up, const uint16_t *saved, size_t n, int F, int ld, int acc);

    /* ---- dense layer (frozen base GEMM on cuBLAS / OpenBLAS) ----
     * out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC]; bias may be NULL. */
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    /* dinp[N,C] (+)= dout @ weight (acc 0: =); dweight[OC,C] += dout^T @ inp. (The bias's
     * gradient: bias_backward.) */
    void (*matmul_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC, int acc);
    /* dbias[OC] += sum_n dout[n,:], dout f32 or (NULL) its bf16 values in dout_bf16, rows ld
     * apart: a linear's bias gradient, the same bits every run (the GPU adds its row splits'
     * partials in split order). scratch: ops_bias_scratch(N, OC) floats. */
    void (*bias_backward)(float *dbias, const float *dout, const uint16_t *dout_bf16, int ld,
                          float *scratch, int N, int OC);

    /* ---- frozen weights kept packed (model.base_dtype bf16 or q) ----
     * out[rows,cols] = the f32 values of rows row0 .. row0+rows-1 of a matrix of `cols` columns
     * stored as ggml type `type` (quant.h: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
     * Q5_K, Q6_K), each row cols / block_elems blocks (cols a multiple of the block size).
     * Bit-identical to quant_dequantize on every backend (both decode with quant_block.h). The
     * model dequantises a frozen weight into scratch (ops_dequantize_scratch) and runs
     * matmul_forward / matmul_backward on it. */
    void (*dequantize_rows)(float *out, const void *packed, int type, int row0, int rows, int cols);

    /* ---- frozen weights on bf16 tensor cores (model.precision bf16) ----
     * A bf16 value is the upper half of an f32 (uint16_t, quant.h's BF16); bf16(x) rounds to
     * nearest even. The products of two bf16 values are exact in f32, so both backends compute
     * the same sums of the same products, in f32 (the GPU on tensor cores, the CPU as sgemm
     * on the widened values): parity at f32 tolerance.
     * out[rows,cols] (rows ld >= cols values apart) = bf16(dequantize_rows' values), bit-identical
     * on every backend; type F32 rounds f32 rows. */
    void (*dequantize_rows_bf16)(uint16_t *out, const void *packed, int type, int row0, int rows,
                                 int cols, int ld);
    /* copies[0..n) (an array in this backend's memory), each one's f32 rows rounded to bf16 as
     * dequantize_rows_bf16 rounds them, in one launch: the model's LoRA adapters into the bf16
     * weights they ride in, once a forward, instead of a launch per adapter. */
    void (*round_bf16_many)(const OpsBf16Copy *copies, int n);
    /* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC], out's rows ldo values apart (ldo >= OC:
     * the outputs of a group's linears side by side), inp and weight bf16 with rows ldi and ldw
     * values apart, bias f32 or NULL. Or, out NULL, out_bf16 = bf16 of the sums (the f32 result
     * rounded once; bias NULL: the element-wise op that reads it adds it), as PyTorch's bf16
     * autocast writes a linear's output: an activation that keeps its input in bf16 for
     * backward finds it written, with no f32 pass between. scratch: matmul_bf16_scratch(N, C, OC)
     * floats (forward and backward). Under LoRA the model runs the up-projection inside it
     * (lora_down_bf16). */
    void (*matmul_forward_bf16)(float *out, uint16_t *out_bf16, int ldo, const uint16_t *inp,
                                int ldi, const uint16_t *weight, int ldw, const float *bias,
                                float *scratch, int N, int C, int OC);
    /* dinp[N,C] (+)= dd[N,K] @ weight[K,C] (acc 0: =), dd bf16 with rows ldd apart, weight's ldw:
     * the frozen weight's input gradient from dout rounded to bf16 (dequantize_rows_bf16 of f32
     * rows), or under LoRA with lora dropout 0 from [bf16(dout) | bf16(du)] (lora_backward_bf16)
     * over W with A's rows below it, K = OC + R. The weight is frozen: no dweight, no dbias. Or,
     * dinp NULL and acc OPS_SET, dinp_bf16 = bf16 of the sums (rounded once), for an activation's
     * backward that reads it so (the gradient PyTorch's bf16 autocast hands it).
     * scratch: matmul_bf16_scratch(N, C, K). */
    void (*matmul_backward_bf16)(float *dinp, uint16_t *dinp_bf16, const uint16_t *dd, int ldd,
                                 const uint16_t *weight, int ldw, float *scratch, int N, int C,
                                 int K, int acc);
    /* Floats of scratch the two bf16 GEMMs need, the backend's own: the CPU widens the weight and
     * the activation to f32 and computes a bf16 output in f32 (OC*C + 2*N*max(C, OC)); the GPU
     * none. */
    size_t (*matmul_bf16_scratch)(int N, int C, int OC);
    /* The LoRA down-projections of n (1..OPS_LORA_GROUP_MAX) adapted linears that read the same
     * inp [N,C], for the GEMMs over [x | s u_0 | .. | s u_n-1] @ [W_j | 0 .. B_j .. 0]^T (one for
     * the group where its outputs lie side by side): reads inp once and writes, for j < n, u[j]
     * [N,R] = drop_j(inp) @ A[j]^T (f32, saved for lora_backward; drop_j: lora_forward's masks of
     * seeds[j]), and the one copy xb [N, C + n*R] bf16 = [bf16(inp) | bf16(scale * u[0]) | .. |
     * bf16(scale * u[n-1])]. inp NULL: the op before wrote bf16(x) there (a norm's or SwiGLU's
     * out_bf16 at rows C + n*R apart), and u is of those values: x is read once, 2 bytes an
     * element, instead of written in f32 and read again. u, A, seeds: host arrays of n. scratch:
     * ops_lora_scratch(N, C, R) floats. */
    void (*lora_down_bf16)(uint16_t *xb, float *const *u, const float *const *A,
                           const uint64_t *seeds, int n, const float *inp, float scale, float p,
                           float *scratch, int N, int C, int R);
    /* From now on this backend computes in precision p (not AUTO; FP32 at the start): under
     * tf32 and bf16 every f32 GEMM (matmul, lora's, lm_head's, attention_cached's) rounds its
     * inputs to TF32; under bf16 attention_forward / attention_backward run their products on
     * bf16 tensor cores (q, k, v, dout, P and dS rounded to bf16, f32 accumulation; softmax,
     * lse and D in f32). A process-wide switch: the model sets it at every entry. The CPU
     * computes f32 only: it ignores it, and the model refuses more than best_precision. */
    void (*set_precision)(Precision p);
    /* The most this backend's device runs: fp32 on the CPU; on CUDA bf16 from compute
     * capability 8.0 (bf16 and TF32 tensor cores), fp32 below. auto resolves to it. */
    Precision (*best_precision)(void);
    /* From now on attention_forward / attention_backward under bf16 run a's kernels, and
     * attention_scratch / attention_saved size for them: a process-wide switch like
     * set_precision, which the model sets at every entry and before it plans. ATTENTION_CUDNN
     * (the CUDA backend, built with cuDNN attention: attention_cudnn.h) draws cuDNN's own
     * dropout masks, not rng_row_dropout's, and takes a mask's keys as the prefix of each
     * sequence that its 1s cover (the model checks that they are a prefix); under fp32 and
     * tf32 loraft's kernels run. Returns -1 with the reason in err, switching nothing, where
     * this backend cannot run a. */
    int (*set_attention)(AttentionImpl a, LfError *err);
    /* From now on the ops read the step's scalars s (OpsStep): a process-wide switch like
     * set_precision, which the model sets at every entry, kept in backend memory and written in
     * stream order (the ops queued before read the old ones). A value equal to the one set is
     * not written again, and a new one while a graph records is an error (status): the caller
     * sets it before graph_begin and before graph_replay. */
    void (*set_step)(const OpsStep *s);

    /* ---- LoRA branch beside a dense layer ----
     * out[N,OC] += scale * u @ B^T where u[N,R] = drop(inp) @ A^T, drop(inp)[n,k] = inp[n,k] *
     * rng_row_dropout(seed, n, k, p) on inp [N,C] (rng.h: a draw per two columns of a row;
     * every LoRA op's mask); A [R,C], B [OC,R]. Saves u for backward; out NULL: u alone (a
     * replayed forward whose output backward does not read).
     * scratch: ops_lora_scratch(N, C, R) floats (forward and backward). */
    void (*lora_forward)(float *out, float *u, const float *inp, const float *A, const float *B,
                         float scale, float p, uint64_t seed, float *scratch, int N, int C, int OC,
                         int R);
    /* With du = scale * dout @ B [N,R]:
     * dB[OC,R] += scale * dout^T @ u; dA[R,C] += du^T @ drop(inp);
     * dinp[N,C] += drop'(du @ A) (dinp may be NULL). B NULL (dB NULL): dout [N,R] is du itself
     * (the LM head's, which lm_head_cross_entropy forms chunk by chunk). */
    void (*lora_backward)(float *dinp, float *dA, float *dB, const float *dout, const float *inp,
                          const float *u, const float *A, const float *B, float scale, float p,
                          uint64_t seed, float *scratch, int N, int C, int OC, int R);
    /* model.precision bf16: lora_backward beside the bf16 linears of a group that read one
     * input x (lin[0..n), n <= OPS_LORA_GROUP_MAX, a host array, at least one adapted; its
     * members without LoRA: their bf16(dout) alone), each one's dout [N,OC] read once: du [N,R]
     * = scale * (dout @ B) (f32); in dd (rows ldd apart) bf16(dout) at columns
     * dout_col.. and bf16(du) at du_col.., for matmul_backward_bf16 (the group's GEMM reads its
     * members' columns side by side); dB[OC,R] += scale * bf16(dout)^T @ bf16(u); dA[R,C] +=
     * bf16(du)^T @ bf16(drop(x)), x = inp [N,C] f32 or (inp NULL) its bf16 copy xb, rows ldx
     * apart (lora_down_bf16's): products of bf16 values, exact in f32 on both backends. The input
     * gradient's LoRA term, drop'(du @ A), is lora_dinp_bf16's (or, at lora dropout 0, part of
     * matmul_backward_bf16's GEMM over [douts | dus] [W ; A]). The GPU runs the group in three
     * launches. scratch: the sum of ops_lora_bf16_scratch(N, C, OC, R) over the adapted. */
    void (*lora_backward_bf16)(uint16_t *dd, int ldd, const OpsLoraBackward *lin, int n,
                               const float *inp, const uint16_t *xb, int ldx, float scale, float p,
                               float *scratch, int N, int C, int R);
    /* dinp[N,C] (+)= the sum over j < n of drop_j'(du[j] @ A[j]) (acc 0: =), drop_j the lora
     * dropout masks of seeds[j] (lora_forward's): the LoRA terms of the input gradient of n
     * (1..OPS_LORA_GROUP_MAX) adapted linears that read one input (q, k, v), in one pass over
     * dinp. du [N,R], A [R,C], seeds: host arrays of n. Or, dinp NULL, into the bf16 dinp_bf16
     * (matmul_backward_bf16's): bf16(its values + the terms), rounded a second time, as PyTorch's
     * autograd adds the base's and the branch's bf16 gradients. */
    void (*lora_dinp_bf16)(float *dinp, uint16_t *dinp_bf16, const float *const *du,
                           const float *const *A, const uint64_t *seeds, int n, float p, int N,
                           int C, int R, int acc);

    /* ---- DoRA (lora.use_dora): an adapted linear's output rescaled per output feature ----
     * norm[j] = || W[j] + scale * B[j] @ A || (the row's L2 norm over its C inputs) for j < rows:
     * W [rows, C] f32 rows ldw >= C values apart (a weight's values, or its packed rows as
     * dequantize_rows gives them), A [R,C], B [rows,R]; B[j] @ A summed in f32 in k order, the
     * squares in double. DoRA's weight norm, which forward and backward take as a constant, as
     * PEFT detaches it. */
    void (*dora_norm)(float *norm, const float *W, int ldw, const float *A, const float *B,
                      float scale, int rows, int C, int R);
    /* y [N,OC] (rows ldy apart): the linear's output with its LoRA term and bias. pre [N,OC]
     * (dense; may be y where ldy = OC) = (y - bias) - rest (bias, rest may be NULL), saved for
     * backward; out (rows ldy apart; may be y; NULL: pre alone) = (mag / norm * pre + bias) +
     * rest, per output feature. rest [N,OC] (dense): under lora dropout, the base's term on
     * what the dropout removed, (x - drop(x)) W^T, which PEFT leaves out of the scale (y's base
     * term is then x W^T, its LoRA term drop(x)'s). */
    void (*dora_forward)(float *out, float *pre, const float *y, int ldy, const float *mag,
                         const float *norm, const float *bias, const float *rest, int N, int OC);
    /* g [N,OC] (rows ldg apart): the gradient of dora_forward's out. gs [N,OC] (dense) = mag /
     * norm * g, the gradient of the linear's base and LoRA terms; grest [N,OC] (dense; NULL:
     * none) = g - gs, the gradient that reaches rest less the share gs carries there; dmag[OC]
     * += sum over n of g * pre / norm (a trained bias's gradient is g's sum: bias_backward).
     * scratch: ops_dora_scratch(N, OC) floats (the GPU's partial sums over row splits). */
    void (*dora_backward)(float *gs, float *grest, float *dmag, const float *g, int ldg,
                          const float *pre, const float *mag, const float *norm, float *scratch,
                          int N, int OC);
    /* out[N,C] (+)= x - drop(x) (acc 0: =), drop lora_forward's dropout of seed: x where the mask
     * drops, x - x * (1 / (1 - p)) where it keeps (product and difference rounded apart). x [N,C]
     * f32, or (x NULL) xb's bf16 values, rows ldx apart. DoRA under lora dropout: the input of
     * dora_forward's rest, and (diagonal, so its own transpose) the input gradient through it. */
    void (*lora_dropout_rest)(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                              uint64_t seed, int N, int C, int acc);

    /* ---- multi-head softmax attention: padding mask, optional causal mask, grouped KV ----
     * q, out: [B,T,NH*HS]; k, v: [B,T,NKV*HS] with NH a multiple of NKV: query head h reads
     * KV head h / (NH/NKV) (grouped-query attention; NKV = NH is plain multi-head). Forward's
     * q rows lie ldq apart and k's and v's ldkv (NH*HS and NKV*HS, or one GEMM's [q | k | v]
     * rows: linear_outputs_join); backward's q and dq rows its ldq, k, v, dk and dv its ldkv
     * (forward's, or others: gradient rows [dq | dk | dv] that one linear's backward reads).
     * mask [B,T] int32 or NULL: 1 = token, 0 = padding (never attended); with causal, query i never
     * attends to a key j > i either, and with a window W > 0 (sliding-window attention, causal
     * only: Mistral's, Qwen2's sliding layers) nor to a key j <= i - W: it sees its last W
     * positions, itself included (transformers' sliding_window); window 0: no such limit. With
     * scores s = q_h k^T scored by score (AttnScore: scaled, maybe soft-capped) over the allowed
     * keys:
     *   lse[B,NH,T] = log sum_j exp(s[i,j]) per query row, saved; a row with no allowed key has
     *   lse = +INFINITY, so exp(s - lse) = 0 for every key of it (model.attention cudnn: -INFINITY,
     *   cuDNN's own stats, which only its backward reads);
     *   P[b,h,i,j] = exp(s[i,j] - lse[b,h,i]) on allowed keys, 0 elsewhere (the softmax);
     *   out = dropout(P; p, seed) @ v, heads concatenated.
     * No backend keeps P [B,NH,T,T]: backward recomputes it from q, k and lse. P[b,h,i,j]'s
     * dropout multiplier is rng_row_dropout(seed, (b*NH + h)*T + i, j, p) (rng.h: a draw per
     * two keys, so that the masks cost the kernels little).
     * rope with half = HS/2 (Llama's rotary embedding, HF's rotate_half layout) first rotates
     * each head of q and k: in place where backward reads them (attention_saved 0: the CPU,
     * fp32, tf32); where forward saves copies (bf16 on the GPU) only in the pass that makes them,
     * q and k left as given (turned in place first where a half is not whole chunks of 8), so a
     * caller reads neither after forward: at position p (= t) and i < HS/2, with angle = p *
     * rope->inv_freq[i] in float, c =
     * cos(angle) * rope->scale, s = sin(angle) * rope->scale (each rounded to float):
     *   (x[i], x[i + HS/2]) <- (x[i] c - x[i + HS/2] s, x[i + HS/2] c + x[i] s);  NULL: none.
     * scratch: ops->attention_scratch(B, T, NH, NKV, HS) floats (forward and backward).
     * saved: ops->attention_saved(precision, B, T, NH, NKV, HS) floats (NULL when 0), which
     * forward fills and backward reads: kept from one to the other, like lse. out_bf16 (not
     * NULL) = bf16(out), rows ldo apart, for the bf16 GEMM that reads out next: its place in saved
     * (attention_saved_out), or an adapted linear's input copy (lora_down_bf16), which backward
     * is then given too, to read out there. out may be NULL where out_bf16 is not, under bf16
     * on the GPU (which keeps bf16(out)); the CPU, which saves nothing, always needs out. */
    void (*attention_forward)(float *out, uint16_t *out_bf16, int ldo, float *lse, float *saved,
                              float *q, int ldq, float *k, const float *v, int ldkv,
                              const int32_t *mask, int causal, int window, const RopeFreqs *rope,
                              AttnScore score, float p, uint64_t seed, float *scratch, int B, int T,
                              int NH, int NKV, int HS);
    /* dq [B,T,NH*HS], dk, dv [B,T,NKV*HS] (+)= gradients (acc 0: =; each may be NULL). out and lse
     * are this forward's (same q, k, v, mask, causal, window, rope, score, p, seed). With M the
     * dropout multipliers of P (rng_row_dropout of P's row and key), dP = dout_h v^T and D =
     * rowsum(dout * out) per row: dS = P * (M * dP - D), times 1 - (s / softcap)^2 where
     * soft-capped (tanh's derivative); dq += scale dS k, dk += scale dS^T q, dv += (M * P)^T dout,
     * grouped query heads adding up in their KV head. When the backend saves anything
     * (attention_saved > 0), q, k, v and out are read from saved (out as bf16(out), so D of the
     * rounded out; from forward's out_bf16 where given, ldo) and may be NULL here; elsewhere
     * (the CPU, fp32, tf32) out is read. With forward's rope, q and k are the rotated ones
     * and what dq and dk receive the gradients of the unrotated (the transposed rotation). */
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, int ldq, int ldkv, const float *out,
                               const uint16_t *out_bf16, int ldo, const float *lse,
                               const float *saved, const int32_t *mask, int causal, int window,
                               const RopeFreqs *rope, AttnScore score, float p, uint64_t seed,
                               float *scratch, int B, int T, int NH, int NKV, int HS, int acc);
    /* Floats of scratch attention_forward / attention_backward need for these shapes: the
     * backend's own (the CPU holds rows of scores; the GPU no O(T^2) memory at all, but D and a
     * bf16 copy of dout, head by head). */
    size_t (*attention_scratch)(int B, int T, int NH, int NKV, int HS);
    /* Floats forward saves for backward in precision p beside lse: 0 on the CPU and for fp32 /
     * tf32; under bf16 the GPU's bf16 copies of q, k and v (head by head, as its tensor cores
     * read them) and of out, so the model need not keep the f32 q, k, v and out for backward.
     * out_apart: every forward with this saved is given an out_bf16 of the caller's (not
     * attention_saved_out's place), which backward reads: no room for out then, but where the
     * backend keeps its own anyway (cuDNN). */
    size_t (*attention_saved)(Precision p, int B, int T, int NH, int NKV, int HS, int out_apart);
    /* Where in saved forward leaves bf16(out) [B*T, NH*HS] (token-major, rows NH*HS apart) when
     * given no out_bf16, for a bf16 GEMM that reads out next: the same place for every batch
     * shape (the model asks once, for its largest); NULL when the backend saves none (then out
     * is needed). */
    uint16_t *(*attention_saved_out)(Precision p, float *saved);

    /* ---- attention of new queries over a KV cache (generation) ----
     * q, out [n, NH*HS] (q's rows ldq apart): the queries of positions pos[0] .. pos[n-1] (pos: [n]
     * int32 on the device). One sequence (seq NULL): k, v [L, NKV*HS] are its cache's first L
     * keys (rotated) and values, L > pos[n-1]. Several (seq [n] on the device): query i is of
     * sequence seq[i], whose cache starts stride rows into k and v ([sequences, stride, NKV*HS]),
     * L > pos[i] bounds the keys any query reads. The new keys and values are written first
     * (cache_write). Query i attends keys j <= pos[i] of its sequence (the later ones of the L may
     * hold anything finite), and with a window W > 0 only those with j > pos[i] - W
     * (attention_forward's sliding window), grouped heads as attention_forward, no dropout:
     * out = softmax(q_h k^T scored by score) @ v, and out_bf16 (not NULL) = bf16(out), rows ldo
     * apart, for a bf16 GEMM that reads it (as attention_forward's). The positions and sequences
     * are read on the device, so a recorded decode step (CUDA graph) replays at the next
     * positions with L the cache's length. scratch: ops->attention_cached_scratch(n, L, NH, HS)
     * floats for n queries of one sequence or one query each of n sequences. */
    void (*attention_cached)(float *out, uint16_t *out_bf16, int ldo, const float *q, int ldq,
                             const float *k, const float *v, const int32_t *pos, const int32_t *seq,
                             int stride, int window, AttnScore score, float *scratch, int n, int L,
                             int NH, int NKV, int HS);
    /* Floats of scratch attention_cached needs for at most n queries over at most L keys: the
     * backend's own (the CPU holds the scores [NH,n,L]; the GPU partial sums of key splits). */
    size_t (*attention_cached_scratch)(int n, int L, int NH, int HS);
    /* Row i of k and of v [n, NKV*HS] (rows ld apart) to row pos[i] of kc and of vc (the KV cache
     * of one layer; of sequence seq[i] stride rows in when seq is not NULL; pos and seq [n] on the
     * device, as above). rope (not NULL): k is rotated on the way (as attention_forward's, at
     * positions pos), and so are the queries q [n, NH*HS] (rows ldq apart), in place, ready for
     * attention_cached; rope NULL: q is not read (may be NULL). */
    void (*cache_write)(float *kc, float *vc, float *q, int ldq, const float *k, const float *v,
                        int ld, const int32_t *pos, const int32_t *seq, int stride,
                        const RopeFreqs *rope, int n, int NH, int NKV, int HS);

    /* ---- element-wise ---- */
    /* out = act(x) [n/F, F]; x = inp (saved, not NULL, = bf16(inp)), or, inp NULL, saved's
     * values + bias (F of them, or NULL: none): a bf16 GEMM wrote x there without its bias
     * (matmul_forward_bf16's out_bf16). out_bf16 (not NULL) = bf16(out) for a bf16 GEMM, rows ldb
     * apart (F, or an adapted linear's input copy: lora_down_bf16), out may then be NULL; out ==
     * inp allowed */
    void (*activation_forward)(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                               const float *inp, const float *bias, Activation act, size_t n,
                               int F);
    /* dinp (+)= act'(x) * dout (acc 0: =), x as activation_forward's: inp, or (NULL) saved's
     * values + bias; dout, or (NULL) its bf16 values in dout_bf16 (matmul_backward_bf16's
     * dinp_bf16); dinp_bf16 (not NULL) = bf16 of dinp's new value for a bf16 GEMM, dinp may
     * then be NULL under acc OPS_SET */
    void (*activation_backward)(float *dinp, uint16_t *dinp_bf16, const float *inp,
                                const uint16_t *saved, const float *bias, const float *dout,
                                const uint16_t *dout_bf16, Activation act, size_t n, int F,
                                int acc);
    /* out = inp * rng_dropout_scale(seed, i, p); out == inp allowed. */
    void (*dropout_forward)(float *out, const float *inp, float p, uint64_t seed, size_t n);
    /* x[i] += bound * rng_symmetric(seed, i), the product rounded on its own (NEFTune's noise,
     * uniform in [-bound, bound)); the seed XORed with the step's as a dropout seed is */
    void (*uniform_noise)(float *x, float bound, uint64_t seed, size_t n);
    /* dinp (+)= dout * rng_dropout_scale(seed, i, p) (acc 0: =); dinp_bf16 (not NULL) = bf16 of
     * dinp's new value for a bf16 GEMM, dinp may then be NULL under acc OPS_SET */
    void (*dropout_backward)(float *dinp, uint16_t *dinp_bf16, const float *dout, float p,
                             uint64_t seed, size_t n, int acc);
    /* out = a + b */
    void (*add)(float *out, const float *a, const float *b, size_t n);
    /* dst += alpha * src */
    void (*axpy)(float *dst, const float *src, float alpha, size_t n);
    /* x *= s */
    void (*scale)(float *x, float s, size_t n);

    /* ---- pooling: the first token ([CLS]) of every sequence ----
     * out[B,C] = inp[b,0,:] of inp [B,T,C]; backward: dinp[b,0,:] += dout[b,:]. */
    void (*first_token_forward)(float *out, const float *inp, int B, int T, int C);
    void (*first_token_backward)(float *dinp, const float *dout, int B, int T, int C);

    /* ---- softmax cross-entropy, forward and backward in one pass ----
     * logits [N,V], labels [N] int32; rows with label < 0 are ignored (HF's -100).
     * losses[N] = -log softmax(logits)[label] (0 for ignored rows);
     * dlogits[N,V] = (softmax - onehot(label)) * grad_scale (0 for ignored rows), skipped
     * when dlogits is NULL; dlogits == logits (in place) is allowed. grad_scale here, as in
     * every loss below, is the one given times the step's (set_step): the model gives 1 and
     * sets the step's to 1 / (valid rows * accumulation steps). */
    void (*cross_entropy)(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                          float grad_scale, int N, int V);

    /* ---- LM head + softmax cross-entropy over a vocabulary, in chunks of rows ----
     * h [N,C] (final hidden states), W [V,C] (the head, or the tied token embedding),
     * labels [N] int32 as cross_entropy's. For each chunk of `chunk` rows (the last may be
     * shorter), logits[rows,V] = h @ W^T are formed in scratch, never all N rows at once, and
     * mapped by map (OpsLogitMap: soft-capped, then divided by the temperature):
     *   losses[N] = logsumexp(logits[n]) - logits[n][label] (0 for ignored rows), overwritten;
     *   dh[N,C] += dlogits @ W and dW[V,C] += dlogits^T @ h, where dlogits = (softmax -
     *   onehot(label)) * grad_scale * row_scale[n] (0 for ignored rows), times the map's
     *   derivative: 1 / temperature, times 1 - (capped logit / softcap)^2 where soft-capped
     *   (tanh's); a NULL dh / dW skips that GEMM, and with both NULL this is the evaluation
     *   forward (losses only).
     * row_scale [N] or NULL (all 1): a weight per row, for losses that are not a plain mean of
     * the token losses (DPO weighs each sequence's tokens by its pair's gradient).
     * entropy (NULL: none): each row's entropy and its term's gradient (OpsEntropy).
     * rows [N] or NULL: row i of the computation is row rows[i] of h, labels, losses, dh,
     * row_scale and entropy's (NULL: row i), so that a caller whose batch ignores many rows (SFT's
     * prompts, DPO's, padding) forms the logits of the others alone; the rows not listed keep their
     * losses and dh untouched.
     * Equal to matmul_forward + cross_entropy + matmul_backward on the whole [N,V] logits.
     * lora (NULL: none): logits += scale * u @ B^T before the map; du += scale * dlogits @ B
     * (at the rows computed) and dB += scale * dlogits^T @ u (each NULL: skipped), from which the
     * caller's lora_backward (B NULL) adds dA and dh's term. With Wb its GEMMs take
     * bf16(u) and bf16(B): logits = bf16(bf16(h @ Wb^T) + scale * bf16(u) @ bf16(B)^T), rounded
     * twice as autocast adds the branch's bf16 output to the base's, and du, dB from the bf16
     * dlogits; the scratch is ops_lm_head_scratch's with R.
     * Wb [V,C] or NULL: the head in bf16, a frozen head under model.precision bf16 (stored so
     * alone: W is not read, and may be NULL; dW must be NULL then: the GPU reports an error, the
     * CPU, whose ops cannot fail, runs without Wb).
     * With it the GEMMs run on bf16 operands: logits = bf16(bf16(h) @ Wb^T) (f32 sums rounded
     * once: PyTorch's autocast returns the head's logits in bf16 too) and dh += bf16(dlogits) @
     * Wb, products of bf16 values summed in f32; the losses and dlogits are computed in f32 from
     * the logits, as without it.
     * chunk >= 1 rows (OPS_LM_HEAD_CHUNK unless memory says otherwise); scratch:
     * ops_lm_head_scratch(N, C, V, chunk, Wb != NULL, lora ? lora->R : 0) floats. Generation's
     * next-token logits are a plain matmul_forward of the last row (and an adapter's
     * lora_forward), soft-capped on the host (model_lm_logits). */
    void (*lm_head_cross_entropy)(float *losses, float *dh, float *dW, const float *h,
                                  const float *W, const uint16_t *Wb, const OpsHeadLora *lora,
                                  const int32_t *labels, const int32_t *rows, float grad_scale,
                                  const float *row_scale, const OpsEntropy *entropy,
                                  OpsLogitMap map, float *scratch, int N, int C, int V, int chunk);

    /* ---- preference pairs: the loss over a batch of B rows, row 2i chosen, 2i+1 rejected ----
     * P = B / 2 pairs. Each pair's math is pair_loss.h's (in double, on every backend); the sums
     * over pairs, stats[4] (doubles, overwritten), are added in pair order: the loss, the chosen
     * and the rejected rewards, the pairs whose chosen reward is above the rejected one. The
     * gradients are of grad_scale times the mean loss over pairs, times the step's gradient scale
     * (set_step) where they are the op's own (reward_loss's dscores); a row_scale (DPO's)
     * leaves it out: lm_head_cross_entropy applies it to row_scale. Nothing leaves the device: the
     * model reads stats with the step's loss.
     * DPO (TRL 0.12.0's DPOTrainer.dpo_loss): losses, labels [B,T] the LM head's per-token losses
     * (0 where ignored) and labels (< 0: not a response token);
     *   logps[B] = -(sum over t of losses[b,t]), summed in double: each row's log-prob;
     *   ref [B] the reference policy's log-probs, or NULL: logps only, stats 0;
     *   with n_b the row's labelled tokens under ipo (1 otherwise) and
     *   x = (logps_c / n_c - logps_r / n_r) - (ref_c / n_c - ref_r / n_r), the pair's loss is
     *   -(1 - eps) log sigmoid(beta x) - eps log sigmoid(-beta x) (eps = label_smoothing), or under
     *   ipo (x - 1 / (2 beta))^2; its rewards beta (logps_b - ref_b) / n_b;
     *   row_scale [B,T] (NULL: skipped; needs ref) = d loss / d losses[b,t], the same for every
     *   token of a row: lm_head_cross_entropy's row_scale for the backward. */
    void (*dpo_loss)(double *stats, float *logps, float *row_scale, const float *losses,
                     const int32_t *labels, const float *ref, float beta, float label_smoothing,
                     int ipo, float grad_scale, int B, int T);
    /* Reward model (TRL's RewardTrainer): scores [B,T] every token's score, pos [B] the token
     * each row is scored at (0 <= pos < T); rewards[B] = scores[b, pos[b]]; the pair's loss is
     * -log sigmoid(r_c - r_r); dscores [B,T] (NULL: skipped) = d loss / d scores, zero but at the
     * pooled tokens, overwritten. */
    void (*reward_loss)(double *stats, float *rewards, float *dscores, const float *scores,
                        const int32_t *pos, float grad_scale, int B, int T);
    /* GRPO's and RLOO's token weights where the forward decides them (grpo.c; grpo_token.h has
     * the formula, TRL 1.16's GRPOTrainer and RLOOTrainer): with a KL penalty (ref, the reference's
     * per-token losses; NULL: beta 0) or a policy that moved since it sampled (old, the sampling
     * policy's per-token losses, num_iterations > 1; NULL: the ratio 1). B rows of T tokens, each
     * token's share of the loss in share (0 off the completions: row_scale 0 there and nothing
     * summed), its row's advantage in adv, the policy's losses in losses, all [B*T], B <=
     * OPS_RL_MAX_ROWS. row_scale [B*T] (overwritten) = d loss / d losses[i]; stats[7] (overwritten)
     * the sums, in double, of the loss, the bias-corrected KL ratio * kl, the completion tokens and
     * the tokens (at sequence level: the rows) clipped low and high, then of the entropies of the
     * completion tokens the entropy mask keeps and their count (TRL's effective mask).
     * entropy [B*T] (NULL: t.entropy_quantile and t.entropy_coef 0, stats[5..6] 0) the LM head's
     * (OpsEntropy.out): the entropy mask's, and the bonus's, -entropy_coef times the mean over the
     * kept tokens, which the loss includes; entropy_scale [B*T] (NULL where entropy_coef is 0;
     * overwritten) its d loss / d entropy[i], the LM head's OpsEntropy.scale for the backward. */
    void (*grpo_weights)(double *stats, float *row_scale, float *entropy_scale, const float *share,
                         const float *adv, const float *losses, const float *entropy,
                         const float *ref, const float *old, OpsGrpoTerms t, int B, int T);

    /* ---- optimizer: one step over every trainable tensor, one call ----
     * grads, m, v [n] (backend memory): the trainable tensors' gradients and AdamW moments,
     * concatenated; tensors [n_tensors] (backend memory, built once): where each tensor, or a
     * piece of one, lies in them (offset, n), its values and whether it decays. Then:
     *   norm = sqrt(sum of grads^2), accumulated in double (the GPU adds per-block partials in
     *   an order fixed by n: the same bits every run), written to *norm (backend memory; the
     *   host reads it when it needs it);
     *   c = (float)(max_norm / (norm + 1e-6)) when max_norm > 0 and that is below 1, and each g
     *   below is grad * c (torch.nn.utils.clip_grad_norm_); else g = grad, unscaled;
     *   torch.optim.AdamW, step counted from 1, wd = weight_decay on decaying tensors, else 0:
     *     param *= 1 - lr * wd
     *     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
     *     param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
     * grads are not changed. When norm is not finite nothing is updated: the caller stops on it.
     * scratch: OPS_ADAMW_SCRATCH doubles of backend memory. */
    void (*adamw_step)(const AdamWTensor *tensors, int n_tensors, const float *grads, float *m,
                       float *v, size_t n, AdamWHyper h, double *norm, double *scratch);

    /* CUDA Graphs; NULL on a backend without them (the CPU). graph_begin starts recording the
     * ops that follow instead of running them; graph_end(slot) ends the recording and runs it
     * as one graph launch, keeping it in slot (0..OPS_GRAPH_SLOTS-1): the slot's executable
     * graph updated in place when only the ops' arguments changed, instantiated anew otherwise;
     * slot -1 drops the recording (an op failed on the host). graph_replay(slot) runs the
     * slot's recording again, as it was recorded but for the step's scalars (set_step): 1 when
     * the slot holds none (never recorded, or dropped since), else as graph_end. graph_drop
     * empties every slot: a recording keeps the buffers it was recorded with, so whoever frees
     * or moves one (a model freed, cuDNN's workspace grown) drops them.
     * Between begin and end only ops that queue work: no alloc, free, upload, download or
     * status. 0, or -1 with the error kept for status() (the recording has not run then).
     * graph_counts: what the graphs did since the start, for tests. */
    int (*graph_begin)(void);
    int (*graph_end)(int slot);
    int (*graph_replay)(int slot);
    void (*graph_drop)(void);
    void (*graph_counts)(OpsGraphCounts *out);

    /* Data parallel: one process a device, each a rank of a group (NCCL); NULL on a backend
     * without it (the CPU, a CUDA build without NCCL). group_id writes a new group's id
     * (OPS_GROUP_ID bytes), which one process makes and hands to the others; group_join
     * makes this process rank of ranks on device `rank` and must come before anything else
     * touches the device; group_sum sums x[0..n) (backend memory) over the ranks in place,
     * queued like any op, every rank ending with the same bits (the gradients), and
     * group_sum_f64 the same in doubles (totals: counts stay exact); group_leave ends it. */
    int (*group_id)(void *id, LfError *err);
    int (*group_join)(int rank, int ranks, const void *id, LfError *err);
    void (*group_sum)(float *x, size_t n);
    void (*group_sum_f64)(double *x, size_t n);
    void (*group_leave)(void);
} Ops;
/* The bytes of a group's id (NCCL_UNIQUE_ID_BYTES). */
#define OPS_GROUP_ID 128

/* The op scratch each op may use, in floats: one contract for every backend, so the model
 * sizes its scratch from these and nothing else (attention's depends on the backend:
 * Ops.attention_scratch, Ops.attention_cached_scratch). LoRA: drop(inp) [N,C], then du [N,R];
 * LM head: a chunk of logits, then their gradient in place. */
static inline size_t ops_lora_scratch(size_t N, size_t C, size_t R) {
    return N * C + N * R;
}
/* A packed frozen weight dequantised for its GEMM: all rows x cols of it (the matmul ops take
 * contiguous operands, so a tile is the whole matrix; for SmolLM2 3.5 MB). */
static inline size_t ops_dequantize_scratch(size_t rows, size_t cols) {
    return rows * cols;
}
/* model.precision bf16: a packed weight of another type dequantised to bf16 (rows x cols
 * halves, rounded up to 64 floats so the GEMM's scratch after it stays aligned; the GEMM's own
 * is Ops.matmul_bf16_scratch). */
static inline size_t ops_floats64(size_t floats) { /* rounded up to 64 floats (256 bytes) */
    return (floats + 63) / 64 * 64;
}
static inline size_t ops_dequantize_bf16_scratch(size_t rows, size_t cols) {
    return ops_floats64((rows * cols + 1) / 2);
}
/* lora_backward_bf16's weight gradients on the GPU: at most this many splits of the N rows, at
 * least 64 rows each, each summed into partials [R, OC] and [R, C] (the CPU sums in place). */
static inline size_t ops_lora_grad_splits(size_t N) {
    size_t s = (N + 63) / 64;
    return s < 128 ? s : 128;
}
/* lora_backward_bf16: the weight gradients' partial sums. */
static inline size_t ops_lora_bf16_scratch(size_t N, size_t C, size_t OC, size_t R) {
    return ops_lora_grad_splits(N) * R * (C + OC);
}
/* bias_backward: the partial sums, one row of OC a split of the N rows. */
static inline size_t ops_bias_scratch(size_t N, size_t OC) {
    return ops_lora_grad_splits(N) * OC;
}
/* dora_backward: dmag's partial sums, one row of OC a split of the N rows. */
static inline size_t ops_dora_scratch(size_t N, size_t OC) {
    return ops_lora_grad_splits(N) * OC;
}
/* lora_down_bf16: the most linears of one group (q, k, v), and the floats its xb takes: the
 * input's copy [N, ld] in bf16, ld = C + n*R (rounded up to 64 floats, as above). */
#define OPS_LORA_GROUP_MAX 3
static inline size_t ops_lora_copy_scratch(size_t N, size_t ld) {
    return ops_dequantize_bf16_scratch(N, ld);
}
/* LM head: one chunk of logits [min(N, chunk), V] (their gradient written over them), f32, or
 * bf16 for a head run on its bf16 copy (bf16: half the room), then that path's rows of h in
 * bf16. The default chunk of 1024 rows keeps cuBLAS's GEMMs large (K = C, 1024 x V outputs)
 * while SmolLM2's chunk (V = 49,152) is 201 MB in f32, 100 MB in bf16, instead of the 6.4 GB of
 * logits and their gradient for 8 x 2048 tokens. */
#define OPS_LM_HEAD_CHUNK 1024
/* The rows of f32 logits the scratch holds: under bf16 half a chunk's (the CPU's reference of
 * the bf16 head, whose logits are f32, runs half chunks; so does model_lm_logits). */
static inline size_t ops_lm_head_rows(size_t N, size_t chunk, int bf16) {
    size_t rows = N < chunk ? N : chunk;
    return bf16 ? (rows + 1) / 2 : rows;
}
static inline size_t ops_lm_head_logits(size_t N, size_t V, size_t chunk, int bf16) {
    return ops_floats64(ops_lm_head_rows(N, chunk, bf16) * V); /* where h's bf16 rows begin */
}
/* After the logits (and h's bf16 rows): a chunk's rows of h and of dh gathered by `rows`, f32 */
static inline size_t ops_lm_head_gathered(size_t N, size_t C, size_t V, size_t chunk, int bf16) {
    size_t hb = bf16 ? ops_dequantize_bf16_scratch(N < chunk ? N : chunk, C) : 0;
    return ops_lm_head_logits(N, V, chunk, bf16) + hb;
}
/* After those: a LoRA on the head's (R > 0) rows of u and du gathered by `rows` (f32), then under
 * bf16 a chunk's u and B rounded to bf16 (the CPU holds the values in f32) */
static inline size_t ops_lm_head_lora_at(size_t N, size_t C, size_t V, size_t chunk, int bf16) {
    return ops_lm_head_gathered(N, C, V, chunk, bf16) +
           ops_floats64(2 * (N < chunk ? N : chunk) * C);
}
static inline size_t ops_lm_head_scratch(size_t N, size_t C, size_t V, size_t chunk, int bf16,
                                         size_t R) {
    size_t rows = N < chunk ? N : chunk;
    size_t lora = !R ? 0 : ops_floats64(2 * rows * R) + (bf16 ? ops_floats64((rows + V) * R) : 0);
    return ops_lm_head_lora_at(N, C, V, chunk, bf16) + lora;
}

/* The backends. ops_cuda exists only in builds with CUDA (LORAFT_HAVE_CUDA). */
extern const Ops ops_cpu;
#ifdef LORAFT_HAVE_CUDA
extern const Ops ops_cuda;
#endif

/* "cpu", "cuda" or "auto" (cuda when a device is present, else cpu). */
const Ops *ops_by_name(const char *device, LfError *err);

/* Called first thing in main(): when OpenBLAS fell back to its slowest kernels on a CPU it
 * does not recognise, sets OPENBLAS_CORETYPE and re-executes the program (see backend.c). */
void ops_cpu_select_blas_kernels(char **argv);

/* Number of usable CUDA devices: 0 in CPU-only builds and on machines without a GPU or
 * without an NVIDIA driver; -1 (err filled) when a driver is there but cannot run this
 * build, e.g. one older than the CUDA toolkit loraft was built with. */
int ops_cuda_device_count(LfError *err);

#ifdef __cplusplus
}
#endif
