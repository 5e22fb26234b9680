/* gguf_export.h: a loraft model as llama.cpp files: its LoRA adapter in llama.cpp's LoRA GGUF
 * format (what convert_lora_to_gguf.py writes and `llama-cli --lora` loads), or the model with
 * LoRA merged in as a GGUF model.
 *
 * Both follow llama.cpp's converter: GGUF tensor names (blk.N.attn_q.weight, gguf.h), ggml's
 * dimension order (ne[0] is a row's length: a HF [out, in] weight has ne [in, out]), and
 * Llama's q_proj / k_proj rows permuted to llama.cpp's RoPE layout (gguf_permute_rows with
 * num_heads / num_kv_heads; not Qwen2's); in an adapter only lora_b is permuted, since
 * P (W + s B A) = P W + s (P B) A. Decoders only: the Llama family (Qwen, Mistral, SmolLM3, Gemma,
 * Phi-3) and GPT-2. */
#pragma once
#include "loraft/bpe.h"
#include "loraft/error.h"
#include "loraft/model.h"
#include "loraft/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The LoRA adapter of m (loaded with model_open(..., adapter_dir, ...)) as a llama.cpp LoRA
 * adapter: general.type "adapter", adapter.type "lora", general.architecture, and
 * adapter.lora.alpha = gguf_adapter_alpha (llama.cpp scales each pair by alpha / its r, which
 * then equals loraft's alpha / r or rsLoRA's alpha / sqrt(r)); per adapted linear W, F32 tensors
 * `W.lora_a` (ne [in, r]) and `W.lora_b` (ne [r, out]), B multiplied by the module's scale * r /
 * alpha where rank_pattern or alpha_pattern make that other than 1 (llama.cpp has one alpha). An
 * adapter with trained modules_to_save has tensors llama.cpp's format cannot hold and is
 * refused. Atomic. */
int gguf_export_adapter(Model *m, const char *path, LfError *err);

/* The adapter.lora.alpha of m's export: its first module's scale * r. */
double gguf_adapter_alpha(const Model *m);

/* m's base weights with its LoRA merged in (W += scale * B A), as a llama.cpp model file:
 * every 2-D weight of type (any quant_quantize writes: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1; a weight whose rows are not whole blocks is written F16, as llama.cpp's converter
 * does), 1-D weights F32; the `llama.*` hyper-parameters from m->cfg. source_gguf (NULL for
 * none): the GGUF file m was loaded from, whose tokenizer.* and general.* metadata (name,
 * license, ...) are copied unchanged; without one, vocab's tokenizer.ggml.* keys
 * (bpe_to_arrays; `loraft init --gguf`), or with vocab NULL tokenizer.ggml.model "none" and the
 * vocabulary size (llama.cpp runs it on token ids). Atomic. */
int gguf_export_model(Model *m, const char *path, GgmlType type, const char *source_gguf,
                      const BpeArrays *vocab, LfError *err);

#ifdef __cplusplus
}
#endif
