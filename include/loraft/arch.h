/* arch.h: the contract between the model core (src/model.c) and an architecture
 * (src/bert.c: DistilBERT and BERT; src/llama.c: Llama-family decoders, Qwen2 among them;
 * src/gpt2.c: GPT-2).
 *
 * An architecture owns its modules, the activations its backward needs and its forward and
 * backward, written out by hand side by side. The core owns the parameter table, LoRA (which
 * modules get adapters, the adapted linear's forward and backward), the activation memory
 * plan with its guards, the op scratch, loading, saving and merging. An architecture adds
 * its tensors with model_param / model_linear / model_norm, lays out its activations with
 * PLAN_TAKE, and runs every dense layer through linear_forward / linear_backward, so LoRA
 * applies wherever PEFT's target names match. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dropout rates of one pass (all 0 in eval mode). */
typedef struct Drop {
    float hidden, attention, classifier, lora;
    float embedding; /* GPT-2's embd_pdrop (BERT drops its embeddings at `hidden`) */
    float neftune;   /* NEFTune's alpha (model_embedding_noise) */
} Drop;

/* The activation plan, run twice: sizing (base NULL), then assigning. */
enum { PLAN_LAYER_TAKES = 64 };
typedef struct Plan {
    float *base;
    size_t used;
    ActGuard *guards; /* NULL while sizing */
    int n_guards;
    /* plan_layer: the takes of the first recomputed layer (offset, floats), recorded, and the
     * next one of the layer being replayed */
    int layer, recorded, n_ref, at;
    size_t ref[PLAN_LAYER_TAKES][2];
} Plan;

/* One ArchImpl may serve several Arch values (arch_llama: llama and qwen2); messages and GGUF
 * name the model by its model_type (arch_name). */
struct ArchImpl {
    const char *prefix; /* the base model's name prefix: what head-only training leaves out */
    const char *default_targets[2]; /* PEFT's default target_modules (or NULL) */
    Task task;                      /* what its head is for by default: the objective it serves */
    unsigned tasks;                 /* every task it can build a head for: bit 1u << Task */
    int (*max_params)(const ModelConfig *cfg); /* tensors build() adds, at most */
    /* Allocates m->body and adds the tensors in checkpoint order. */
    int (*build)(Model *m, LfError *err);
    void (*free)(Model *m);
    /* Lays out the activations (PLAN_TAKE), knowing which parameters train. */
    void (*plan)(Model *m, Plan *pl);
    /* ids, types, mask -> m->logits. */
    void (*forward)(Model *m, Drop d);
    /* m->dlogits -> the gradients of the trainable parameters. */
    void (*backward)(Model *m, Drop d);
    /* Decoders (NULL otherwise), for generation: the floats one position takes of one layer's
     * cached keys (as many of its values: the KV cache, model_cache_layer), and the cached
     * forward in eval mode: m->ids[0..n) at positions m->positions[0..n) of the sequences
     * model_cache_layer names -> m->hidden rows 0..n-1, their keys and values written into the
     * cache (Ops.cache_write), attention over its first m->cache_keys positions
     * (m->cache_scratch). Every argument of its ops is the same at every position, so that a
     * decode step recorded as a CUDA graph replays at the next (model_decode). */
    size_t (*cache_width)(const Model *m);
    void (*decode)(Model *m, int n);
};

extern const ArchImpl arch_distilbert, arch_bert, arch_llama, arch_phi3, arch_gpt2;

/* ---- what the core offers an architecture ---- */

/* Adds "fmt..." [d0] (d1 == 0) or [d0,d1] to the table; decay: AdamW weight decay applies. */
Param *model_param(Model *m, int decay, int d0, int d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A dense layer "module.weight" [out,in] (+ "module.bias" [out] with bias). */
void model_linear(Model *m, Linear *l, const char *module, int in, int out, int bias);
/* model_linear for a module HF stores as a Conv1D (GPT-2): the same [out,in] weight and LoRA
 * here, its checkpoint tensor [in,out]. */
void model_conv1d(Model *m, Linear *l, const char *module, int in, int out);
/* A norm "module.weight" [C] (+ "module.bias" [C] with bias). */
void model_norm(Model *m, Norm *n, const char *module, int C, int bias);
/* An RMS norm that multiplies by 1 + its weight (Gemma's: its weights are 1's offsets, 0 at
 * initialisation); the norm ops are given model_norm_weight. */
void model_norm_plus_one(Model *m, Norm *n, const char *module, int C);
/* What norm n multiplies by: its weight's values, or 1 + them (model_norm_plus_one). */
const float *model_norm_weight(const Model *m, const Norm *n);

/* Floats attention saves for backward (Ops.attention_saved) in the model's precision at its
 * largest batch. When nonzero, a layer that backward reaches keeps these, not its f32 q, k, v.
 * out_apart: the layer's o keeps its input copy (linear_keeps_copy), where attention writes
 * bf16(out) instead (linear_reads_attention_out). */
size_t model_attention_saved(const Model *m, int out_apart);
/* Gradient checkpointing (TrainSpec.gradient_checkpointing): a layer that backward reaches
 * keeps only its input through the forward (the residual stream, planned as its own buffer), and
 * layers_backward recomputes the layer's forward just before its backward. Between
 * plan_layer(pl, 1) and plan_layer(pl, 0) a layer's kept buffers are planned as usual, but every
 * such layer's land where the first one's did, take by take (one of another size gets its own):
 * one layer's activations instead of all. Such a buffer is written by forward and recompute alike
 * and read by the layer's backward, so it must not be one a gradient carried from layer to layer
 * lives in (Llama's and GPT-2's shared set: their d_out gets its own buffer). */
int model_recomputes(const Model *m);
void plan_layer(Plan *pl, int recomputed);
/* Assigns the next n floats to *slot when keep, else points it at shared. */
void plan_take(Plan *pl, float **slot, size_t n, int keep, float *shared, const char *name);
#define PLAN_TAKE(pl, slot, n, keep, shared) plan_take(pl, slot, n, keep, shared, #slot)
/* The same for n bf16 values (NULL when not kept). */
void plan_take_bf16(Plan *pl, uint16_t **slot, size_t n, int keep, const char *name);
#define PLAN_TAKE_BF16(pl, slot, n, keep) plan_take_bf16(pl, slot, n, keep, #slot)
/* Under model.precision bf16 a layer keeps what only backward reads again as the bf16 copies
 * the forward ops write (ops.h): the norms' xhat, the activations' inputs; not on the CPU. */
int model_keeps_bf16(const Model *m);
/* ... and its LM head, frozen, is stored in bf16 alone (Model.head_bf16), its logits bf16. */
int model_head_bf16(const Model *m);
/* Plans the input [N, in] of the linears ls[0..n) (one linear_forward_group's, or one linear's)
 * for their backward, where the layer keeps it (keep) and only they read it again: nothing when
 * none trains; when each that trains is an adapted linear on bf16 tensor cores, the bf16 copy
 * of the input its forward writes anyway (Lora.xb; backward reads that and ignores the input it
 * is given), and *slot points at shared; else PLAN_TAKE's f32 buffer at *slot. slot NULL: the
 * caller keeps the input itself (a checkpoint: plan_layer), only the bf16 copy is planned. The
 * adapted linears' saved u are planned here too, with their layer's buffers (the core plans the
 * others'). */
void plan_take_input(Plan *pl, const Model *m, Linear *const *ls, int n, float **slot, int keep,
                     float *shared, const char *name);
#define PLAN_TAKE_INPUT(pl, m, ls, n, slot, keep, shared)                                          \
    plan_take_input(pl, m, ls, n, slot, keep, shared, #slot)

/* Under precision bf16 a linear without LoRA on bf16 tensor cores reads its input forward
 * (Linear.in_bf16) and its output's gradient backward (dout_bf16) as bf16 that the op before
 * or after it writes (the FFN's activation: Ops.activation_forward's out_bf16,
 * activation_backward's dinp_bf16, SwiGLU's; the norm before it: residual_norm_forward's
 * out_bf16; the dropout before a residual: linear_dout; the norm after it, where no dropout
 * is between: layernorm_backward's and rmsnorm_backward's dinp_bf16), where the arch points
 * them (at buffers free between the two ops), instead of rounding f32 in a pass of its own. A
 * group's in_bf16 (on its first member) serves every member when none is adapted; its members'
 * dout_bf16 are the column blocks of one [N, sum of outs] matrix (SwiGLU's [dgate | dup]
 * rows), which backward's one GEMM for the group reads. */
int linear_reads_bf16(const Model *m, const Linear *l);
/* The same for the linears ls[0..n) (a group, whole, or one linear) after an op that writes its
 * bf16 output at a row stride (residual_norm_forward, swiglu_forward, activation_forward,
 * attention_forward), adapted ones too: points
 * every member's in_bf16 at shared where none has LoRA; at the adapted members' kept input copy
 * (Lora.xb: [x | s u_0 ..], whose x columns the op writes and lora_down_bf16 then reads instead
 * of the f32 input); else (something not on bf16 tensor cores, a copy not kept) at NULL. The op
 * writes its rows linear_input_ld apart. */
void linear_input_bf16(const Model *m, Linear *const *ls, int n, uint16_t *shared);
/* Whether plan_take_input(ls, n, .., keep) keeps the linears' bf16 input copy (Lora.xb) for
 * backward: some train, and every one that does is adapted on bf16 tensor cores. The same in
 * every planning pass (the copy's pointer is NULL in the first). */
int linear_keeps_copy(const Model *m, Linear *const *ls, int n, int keep);
/* The row stride of l->in_bf16: l's input width, and R more a LoRA of its group. */
int linear_input_ld(const Model *m, const Linear *l);
/* Points ls[0]->out_bf16 at `at` where the linears ls[0..n) (a group, whole, or one linear)
 * join their outputs in one bf16 GEMM (linear_outputs_join), else at NULL: the GEMM then
 * writes them there as [N, sum of outs] bf16 rows, rounded once, without the bias (as PyTorch's
 * bf16 autocast writes a linear's output, bias aside), and the activation after it
 * (swiglu_forward's saved, activation_forward's saved and bias) reads them there and keeps
 * them for backward: 2 bytes an element written and read instead of an f32 output's 4 + 4 and
 * the activation's own bf16 copy. `at` is the activation's saved buffer, or where no layer
 * keeps it one the activation's output does not overlap (unless in place, element for
 * element). */
void linear_output_bf16(const Model *m, Linear *const *ls, int n, uint16_t *at);
/* The bias the activation after l adds to the values it reads: l's, where l's GEMM writes them
 * in bf16 without it (out_bf16), else NULL (an f32 output holds its bias). */
const float *linear_output_bias(const Linear *l);
/* The same backward: points l->din_bf16 at `at` where l, a lone linear on bf16 tensor cores,
 * writes its input gradient in bf16 (matmul_backward_bf16's dinp_bf16, and under lora dropout
 * the masked LoRA term added to it there: lora_dinp_bf16's; its linear_backward's acc must be
 * OPS_SET), for the activation's backward before it (dout_bf16), else at NULL: 2 bytes an
 * element written and read instead of 4 and 4 (and under dropout 2 + 2 more instead of 4 + 4),
 * as PyTorch's autocast hands the activation a bf16 gradient. `at`: the f32 dinp's own place. */
void linear_input_grad_bf16(const Model *m, Linear *l, uint16_t *at);
/* Points l->in_bf16 where attention writes bf16(out) for l (its out_bf16, which backward reads
 * too): linear_input_bf16 with attention's saved bf16(out) as the shared place
 * (Ops.attention_saved_out: saved is the attention's saved buffer), so an adapted l's kept input
 * copy, else that place where the backend saves one; NULL otherwise. Where it is not NULL
 * attention writes no f32 out. */
void linear_reads_attention_out(const Model *m, Linear *l, float *saved);

/* out[N,out] = inp @ W^T + b, plus the LoRA branch with dropout p when l has one (or, with
 * l->out_bf16, the sums there, out ignored). out NULL: only what l's backward reads of its
 * forward (a replay's last linear: the LoRA branch's u and input copy), no GEMM. */
void linear_forward(Model *m, Linear *l, float *out, const float *inp, int N, float p,
                    uint64_t seed);
/* l's trainable gradients += from dout; dinp (may be NULL) += (acc OPS_ADD) or = (OPS_SET: its
 * first writer, the buffer need not be zeroed). */
void linear_backward(Model *m, Linear *l, float *dinp, const float *dout, const float *inp, int N,
                     float p, uint64_t seed, int acc);
/* The linears ls[0..n) that read one input [N,in] (q, k, v; gate, up), outs[i] [N,ls[i]->out],
 * seeds[i] their LoRA dropout seeds: each as linear_forward, but under precision bf16 the input
 * is read once for the group, rounded once and every LoRA down-projection computed from that one
 * read (Ops.lora_down_bf16), and where the outputs are the column blocks of one [N, sum of outs]
 * matrix (linear_outputs_join) one GEMM writes them. Backward: dinp (+)= every member's input
 * gradient (acc as linear_backward's, for the first member). */
void linear_forward_group(Model *m, Linear *const *ls, float *const *outs, int n, const float *inp,
                          int N, float p, const uint64_t *seeds);
void linear_backward_group(Model *m, Linear *const *ls, float *dinp, const float *const *douts,
                           int n, const float *inp, int N, float p, const uint64_t *seeds, int acc);
/* Whether one GEMM can write the outputs of the n linears ls of a group (precision bf16, bf16
 * weights, biases none or side by side in memory, as BERT's q, k, v are where C is a multiple
 * of 16): then the arch may lay them side by side, and the ops after them read their rows as one
 * matrix's column blocks. */
int linear_outputs_join(const Model *m, Linear *const *ls, int n);
/* Declares ls[0..n) a group for linear_forward_group, at build: sizes the op scratch for their
 * input's copies. A group the build did not declare runs one by one, and a larger one than
 * OPS_LORA_GROUP_MAX in pieces of that many. */
void model_share_input(Linear *const *ls, int n);
int linear_trains(const Linear *l); /* W, b or a LoRA branch has a gradient */

/* Layer l's KV cache as the decode's ops take it (Ops.cache_write, Ops.attention_cached): the
 * keys and values of the sequence being decoded, or with seq (the device's [n]) those of all
 * sequences, stride positions each. */
typedef struct CacheLayer {
    float *k, *v;
    const int32_t *seq;
    int stride;
} CacheLayer;
CacheLayer model_cache_layer(const Model *m, int l);

/* The mask attention is given: the batch's, or NULL when it hides no token (every key
 * visible: the kernels skip the mask, and cuDNN runs without a padding mask). */
const int32_t *model_attention_mask(const Model *m);
/* The dropout seed of one (layer, site) pair, the same every step: the ops XOR the step's seed
 * into it (Ops.set_step, from model_step), so that a recorded step replays with new masks. */
uint64_t model_site(int layer, int which);
/* The site of NEFTune's noise, at layer num_layers (past the architectures' own sites there). */
enum { SITE_NEFTUNE = 15 };
/* The site of the LM head's lora dropout (lm_head_run), at layer num_layers too. */
enum { SITE_HEAD_LORA = 14 };
/* NEFTune (HF Trainer's neftune_noise_alpha) on x, the input embeddings [B, T, C] as the
 * embedding module gives them: + uniform noise in [-a, a), a = d.neftune / sqrt(T C) over the
 * padded batch; nothing when d.neftune is 0 (evaluation). Additive: backward is unchanged. */
void model_embedding_noise(const Model *m, float *x, Drop d);
/* The token embedding's adapters (Model.embedding_lora, Model.token_rows), which the
 * architectures run beside their gather: out [n,C] (the word embeddings of m->ids' first n,
 * before any scale, noise or norm) += their terms, where there are any and the adapters are on;
 * backward adds their gradients from dout [B*T,C], the gradient of that output.
 * model_embedding_trains: whether backward must reach that output (the table or an adapter of it
 * trains). */
void model_embedding_lora(Model *m, float *out, int n);
void model_embedding_lora_backward(Model *m, const float *dout);
int model_embedding_trains(const Model *m);
/* The LM head's low-rank branch, ops.h OpsHeadLora's (the head's logits += scale * u @ B^T, u =
 * drop(h) A^T): the head's adapter, or its trained token rows (Model.head_branch_rows: A their
 * delta, B one-hot, no dropout); model_head_branch fills hb and returns 1 where there is
 * one and the adapters are on. */
typedef struct HeadBranch {
    float *u, *du;      /* [N,r] backend: u, and (training) its gradient */
    const float *A, *B; /* A [r,C], B [V,r] */
    float *dA, *dB;     /* their gradients; NULL: none */
    float scale, p;     /* p: the lora dropout on h in training */
    int r;
} HeadBranch;
int model_head_branch(const Model *m, HeadBranch *hb);
/* The seeds of n consecutive sites first.. of one layer, into s (returned): a group's. */
const uint64_t *model_sites(uint64_t *s, int n, int layer, int first);

/* The gradient through a dropout(p, seed) of n elements: g itself when p is 0, else
 * scratch = drop'(g) (overwritten). */
const float *dropout_grad(Model *m, float *scratch, const float *g, float p, uint64_t seed,
                          size_t n);
/* The same as l's output gradient for linear_backward: that, or where l reads it in bf16
 * (Linear.dout_bf16) drop'(g) written there in bf16 instead, and NULL returned. */
const float *linear_dout(Model *m, const Linear *l, float *scratch, const float *g, float p,
                         uint64_t seed, size_t n);

/* One layer's backward, in place: grad [N,C] holds the gradient of the layer's output on entry
 * and, when need_input, that of its input on return. The layer reads the output's gradient
 * before it writes there, and adds the residual stream's share where it lies: no copy, no add
 * pass of its own. */
typedef void (*LayerBackward)(Model *m, int l, float *grad, int need_input, Drop d);
/* One layer's forward; replay: recomputed for backward (model_recomputes), its input complete
 * (the forward applied the residual the layer before left to this layer's norm). */
typedef void (*LayerForward)(Model *m, int l, Drop d, int replay);
/* Backward through layers L-1 down to `lowest`, grad [N,C] holding the top layer's output
 * gradient and at the end the lowest layer's input gradient, when need_input (the embeddings
 * train); each layer's forward replayed first when the model recomputes, but the top one's
 * right after a forward (Model.top_fresh: the shared buffers still hold it). */
void layers_backward(Model *m, LayerForward forward, LayerBackward layer, int lowest,
                     int need_input, float *grad, Drop d);

#ifdef __cplusplus
}
#endif
