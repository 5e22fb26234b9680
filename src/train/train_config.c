/* train_config.c: the table of every TrainConfig key and all that derives from it:
 * defaults, JSON loading (with "did you mean" for typos), "section.key=value" overrides,
 * atomic saving and the Markdown reference. It checks values, not whether the files or
 * model they name exist: that is the loaders' job. */
#include "loraft/train_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "loraft/checkpoint.h" /* CHECKPOINT_METRICS */
#include "loraft/fileio.h"

/* T_LIST: strings; T_INTS: integers (or one); T_FLOATS: numbers (or one); T_MAP: an object of
 * regular expressions and numbers (LoraPattern), in the key's range, integers where whole. */
typedef enum {
    T_STR,
    T_CHOICE,
    T_INT,
    T_FLOAT,
    T_BOOL,
    T_U64,
    T_LIST,
    T_INTS,
    T_FLOATS,
    T_MAP
} KeyType;

typedef struct Key {
    const char *section, *name;
    KeyType type;
    size_t off, size;       /* field offset; char capacity of a string or of one list item */
    size_t count_off;       /* T_LIST, T_INTS, T_FLOATS, T_MAP: offset of the item count */
    int max_items;          /* T_LIST, T_INTS, T_FLOATS, T_MAP: capacity */
    int whole;              /* T_MAP: its values are integers */
    const char *def;        /* default, as JSON text */
    int ranged;             /* T_INT, T_FLOAT, T_U64: min/max apply */
    double min, max;        /* max = INFINITY: no upper bound */
    int min_open, max_open; /* bounds are exclusive */
    const char *choices;    /* "a|b|c": allowed strings; T_CHOICE stores the index */
    const char *later;      /* strings recognised but not supported yet */
    const char *help;
} Key;

#define MEMBER(f) (((TrainConfig *)0)->f)
#define AT(f) .off = offsetof(TrainConfig, f), .size = sizeof MEMBER(f)
#define AT_LIST(f, n)                                                                              \
    .off = offsetof(TrainConfig, f), .size = sizeof MEMBER(f)[0],                                  \
    .count_off = offsetof(TrainConfig, n),                                                         \
    .max_items = (int)(sizeof MEMBER(f) / sizeof MEMBER(f)[0])
#define RANGE(lo, hi) .ranged = 1, .min = (lo), .max = (hi)

static const Key keys[] = {
    {"model", "model", T_STR, AT(model), .def = "\"\"",
     .help = "Hugging Face model directory (config.json, model.safetensors, tokenizer) or a "
             "Llama-family .gguf file. Required."},
    {"model", "tokenizer", T_STR, AT(tokenizer), .def = "\"\"",
     .help = "Tokenizer directory or file; empty = the model's."},
    {"model", "task", T_STR, AT(task), .def = "\"classification\"",
     .choices = "classification|causal-lm|sft|dpo|reward|rloo|grpo",
     .help = "classification: a label per text (encoders); causal-lm: next-token prediction on "
             "a corpus (decoders); sft: instruction / answer pairs, the loss on the answer only "
             "(decoders); dpo: direct preference optimisation on prompt / chosen / rejected pairs "
             "(decoders, LoRA); reward: a reward model (a scalar score head) on the same pairs "
             "(decoders); rloo: reinforcement learning from a reward model (REINFORCE "
             "leave-one-out, TRL's RLOOTrainer) on prompts (decoders, LoRA); grpo: the same by "
             "group relative policy optimisation (TRL's GRPOTrainer)."},
    {"model", "reward_model", T_STR, AT(reward_model), .def = "\"\"",
     .help = "rloo, grpo: the reward model that scores the completions: a merged reward model "
             "(`loraft merge` of a model.task reward run) or, with reward_adapter, its base. It "
             "reads the policy's token ids: it must share the policy's tokenizer. Required for "
             "rloo and grpo."},
    {"model", "reward_adapter", T_STR, AT(reward_adapter), .def = "\"\"",
     .help = "rloo, grpo: the reward model's PEFT SEQ_CLS adapter (a model.task reward run's "
             "checkpoint) on reward_model; empty = reward_model is merged."},
    {"model", "device", T_STR, AT(device), .def = "\"auto\"", .choices = "auto|cpu|cuda",
     .help = "Where to train; auto = cuda when a GPU is usable, else cpu."},
    {"model", "devices", T_INT, AT(devices), .def = "1", RANGE(1, 64),
     .help = "cuda: train data-parallel on this machine's GPUs 0 .. N-1, a process each (NCCL). "
             "Each optimizer step's batches are dealt to the devices in turn, each batch "
             "train.batch_size rows, and the gradients summed before the step: a step sees "
             "batch_size x devices x gradient_accumulation_steps rows, and trains as one device "
             "with gradient_accumulation_steps times N would, up to the order of the sums. "
             "Evaluation batches are dealt the same way (`loraft eval` too), and their sums "
             "summed; logs and checkpoints are device 0's."},
    {"model", "base_dtype", T_STR, AT(base_dtype), .def = "\"f32\"",
     .choices = "f32|bf16|q|q8_0|q5_1|q5_0|q4_1|q4_0|nf4",
     .help = "How frozen dense-layer weights are stored: f32; bf16 (rounded at load, half the "
             "memory); q (a .gguf file's own quantised blocks, QLoRA-style, dequantised for each "
             "GEMM); q8_0, q5_1, q5_0, q4_1, q4_0 (any checkpoint quantised at load to that "
             "llama.cpp block type, 8.5 to 4.5 bits a weight; a GGUF tensor already of the type "
             "kept as it is; a weight whose rows are not whole 32-value blocks stays bf16); nf4 "
             "(bitsandbytes' 4-bit NormalFloat, QLoRA's type: 64-value blocks with an f32 absmax, "
             "4.5 bits a weight, the values bitsandbytes' quantize_4bit gives). Embeddings, norms, "
             "biases, the LM head and everything that trains stay f32 (precision bf16 keeps a "
             "decoder's frozen LM head and embedding in bf16); all but f32 need a frozen base (not "
             "lora.strategy full)."},
    {"model", "precision", T_STR, AT(precision), .def = "\"auto\"",
     .choices = "auto|fp32|tf32|bf16",
     .help = "How the GEMMs compute. fp32; tf32 (cuBLAS's f32 GEMMs on TF32 tensor cores); bf16 "
             "(frozen dense weights stored in bf16, or as base_dtype q's blocks dequantised to "
             "bf16, their GEMMs on bf16 tensor cores with f32 accumulation; attention's "
             "products on bf16 tensor cores, softmax in f32; the other GEMMs as tf32); auto = "
             "bf16 on a GPU of compute capability 8.0+, fp32 on older GPUs and the CPU. Norms, "
             "LoRA A/B, the logits, "
             "gradients and AdamW state stay f32 (a frozen LM head's GEMMs run on a bf16 copy "
             "of it); activations are computed in f32, and what "
             "backward keeps of them is stored as bf16 copies. The CPU computes "
             "fp32 only: tf32 and bf16 there are an error. bf16 converts f32 frozen weights "
             "under LoRA only (lora.strategy head saves the whole model, so its weights stay as "
             "loaded)."},
    {"model", "attention", T_STR, AT(attention), .def = "\"loraft\"", .choices = "loraft|cudnn",
     .help = "Whose kernels attention runs under precision bf16: loraft's own (every device, "
             "the default), or cuDNN's fused attention (the cuda device, in a build that found "
             "cuDNN 9 and cudnn-frontend; scripts/setup.sh fetches the latter). cudnn draws "
             "cuDNN's own dropout masks and needs right-padded batches."},
    {"model", "num_labels", T_INT, AT(num_labels), .def = "0", RANGE(0, MAX_LABELS),
     .help = "Number of classes; 0 = from `labels`, else from the model's config.json."},
    {"model", "labels", T_LIST, AT_LIST(labels, n_labels), .def = "[]",
     .help = "Label names in id order, e.g. [\"neg\", \"pos\"]."},

    {"data", "train_file", T_STR, AT(train_file), .def = "\"\"", .help = "Training examples."},
    {"data", "validation_file", T_STR, AT(validation_file), .def = "\"\"",
     .help = "Validation examples; empty = no evaluation."},
    {"data", "format", T_STR, AT(format), .def = "\"auto\"", .choices = "auto|jsonl|csv|imdb|txt",
     .help = "File format; auto = from the file name's extension (causal-lm: jsonl, txt, or a "
             "directory of .txt files)."},
    {"data", "text_unit", T_STR, AT(text_unit), .def = "\"file\"", .choices = "file|line|paragraph",
     .help = "causal-lm: how a .txt is cut into texts (one document, each line, each "
             "paragraph); training packs them, evaluation scores each alone."},
    {"data", "holdout_file", T_STR, AT(holdout_file), .def = "\"\"",
     .help = "causal-lm: a .txt of train_file whose chapter holdout_chapter is the validation "
             "set (and is left out of training)."},
    {"data", "holdout_chapter", T_INT, AT(holdout_chapter), .def = "0", RANGE(0, 1 << 20),
     .help = "causal-lm: the N-th chapter heading of holdout_file (\"CHAPTER I\", ...); 0 = none."},
    {"data", "instruction_column", T_STR, AT(instruction_column), .def = "\"instruction\"",
     .help = "sft: the field of the instruction (the user turn)."},
    {"data", "input_column", T_STR, AT(input_column), .def = "\"input\"",
     .help = "sft: the optional field of an input, appended to the instruction after a blank "
             "line when not empty."},
    {"data", "output_column", T_STR, AT(output_column), .def = "\"output\"",
     .help = "sft: the field of the answer (the assistant turn)."},
    {"data", "messages_column", T_STR, AT(messages_column), .def = "\"messages\"",
     .help = "sft: a field of [{\"role\", \"content\"}, ...] ending with the answer; a record "
             "that has it is read as a conversation."},
    {"data", "prompt_template", T_STR, AT(prompt_template), .def = "\"\"",
     .help = "sft: for base models, a text with {instruction}, {input} and {output} instead of "
             "a chat template; EOS follows the answer."},
    {"data", "packing", T_BOOL, AT(packing), .def = "false",
     .help = "sft: pack several examples into each training row of max_length tokens (they "
             "attend to the ones before them in the row; the loss stays on each answer)."},
    {"data", "text_column", T_STR, AT(text_column), .def = "\"text\"",
     .help = "Field (JSONL) or column (CSV) holding the text."},
    {"data", "label_column", T_STR, AT(label_column), .def = "\"label\"",
     .help = "Field or column holding the label (an id or a name from `model.labels`)."},
    {"data", "max_length", T_INT, AT(max_length), .def = "512", RANGE(2, 1 << 20),
     .help = "Tokens per example, special tokens included; longer texts are truncated. "
             "causal-lm: the training block size."},
    {"data", "max_prompt_length", T_INT, AT(max_prompt_length), .def = "128", RANGE(0, 1 << 20),
     .help = "dpo, reward: when prompt + the longer response exceed max_length, the prompt keeps "
             "its last max_prompt_length tokens, then each response its first max_length - "
             "max_prompt_length (TRL 0.12's DPOTrainer defaults: 512 and 128). rloo: a prompt "
             "keeps its last max_prompt_length tokens."},
    {"data", "holdout_examples", T_INT, AT(holdout_examples), .def = "0", RANGE(0, 1 << 30),
     .help = "sft, dpo, reward, rloo: without a validation_file, the last N records of "
             "train_file are the validation set (and are left out of training)."},
    {"data", "chat_template", T_STR, AT(chat_template), .def = "\"\"",
     .help =
         "sft: the chat template that renders the examples (chatml, smollm2, qwen2, qwen2.5, "
         "qwen3, qwen3-nothink (Qwen3 with enable_thinking false), smollm3, smollm3-nothink "
         "(SmolLM3 with enable_thinking false), llama3, llama3.1, llama3.2, llama2, mistral, "
         "mistral-v0.3, mistral-legacy, mistral-nemo, zephyr, gemma (Gemma 3's), gemma2 "
         "(Gemma 1's and 2's), phi3 (Phi-3.5-mini's), phi4-mini (Phi-4-mini's) or plain); empty = "
         "the one the model "
         "carries. dpo, reward: render each prompt with this built-in chat template (an "
         "Anthropic HH prompt is split into its turns) and end the "
         "response with EOS; empty = prompt + \" \" + response + EOS as plain text."},
    {"data", "truncation_side", T_CHOICE, AT(truncate_left), .def = "\"right\"",
     .choices = "right|left", .help = "Which end of a long text is cut off."},
    {"data", "train_limit", T_INT, AT(train_limit), .def = "0", RANGE(0, INFINITY),
     .help = "Use only the first N training examples (sft: records); 0 = all."},
    {"data", "validation_limit", T_INT, AT(validation_limit), .def = "0", RANGE(0, INFINITY),
     .help = "Use only the first N validation examples (sft: of the held-out records too); "
             "0 = all."},
    {"data", "bucket_by_length", T_INT, AT(bucket_by_length), .def = "0", RANGE(0, INFINITY),
     .help = "0 = off; N = sort each window of N shuffled batches by length (less padding)."},
    {"data", "pad_to_multiple_of", T_INT, AT(pad_to_multiple_of), .def = "0", RANGE(0, 65536),
     .help = "0 = pad each batch to its longest sequence; N = round that up to a multiple of N "
             "(at most max_length; transformers' pad_to_multiple_of): fewer sequence lengths, "
             "each of which model.attention cudnn plans once, for some padding."},

    {"lora", "strategy", T_STR, AT(strategy), .def = "\"lora\"", .choices = "lora|head|full|tokens",
     .help = "lora = adapters + head; head = classifier head only; full = every weight; tokens = "
             "the rows of trainable_token_indices alone (peft's TrainableTokens, saved as its "
             "adapter; a language model's objective)."},
    {"lora", "r", T_INT, AT(r), .def = "8", RANGE(1, LORA_MAX_R), .help = "LoRA rank."},
    {"lora", "alpha", T_FLOAT, AT(alpha), .def = "8", RANGE(0, INFINITY), .min_open = 1,
     .help = "LoRA scale numerator: the update is scaled by alpha/r."},
    {"lora", "dropout", T_FLOAT, AT(dropout), .def = "0", RANGE(0, 1), .max_open = 1,
     .help = "Dropout on the LoRA input (PEFT's lora_dropout)."},
    {"lora", "target_modules", T_LIST, AT_LIST(target_modules, n_targets), .def = "[]",
     .help = "Layers that get adapters, by PEFT module name (a module whose name is one "
             "or ends in \".\" one): linear layers, the token embedding (embed_tokens, GPT-2's "
             "wte, BERT's word_embeddings) and the LM head (lm_head, tied or not); empty = PEFT's "
             "default for the architecture (q_lin, v_lin for DistilBERT; query, value for BERT); "
             "[\"all-linear\"] = PEFT's all-linear: every linear layer but the output layer (the "
             "LM head, a classifier or score head), which the adapter then lists by name."},
    {"lora", "exclude_modules", T_LIST, AT_LIST(exclude_modules, n_exclude), .def = "[]",
     .help = "PEFT's exclude_modules: modules (a name, or one ending in \".\" it) that get no "
             "adapter though target_modules names them, e.g. [\"model.layers.0.mlp.down_proj\"]."},
    {"lora", "use_rslora", T_BOOL, AT(use_rslora), .def = "false",
     .help = "Scale by alpha/sqrt(r) (rank-stabilised LoRA) instead of alpha/r."},
    {"lora", "use_dora", T_BOOL, AT(use_dora), .def = "false",
     .help = "DoRA (PEFT's use_dora): each adapted linear's output, without its bias, scaled per "
             "output feature by a trained magnitude over the row norm of W + scale B A. The "
             "magnitudes are saved in the adapter (lora_magnitude_vector). Under lora.dropout, "
             "as PEFT, the base's term on what the dropout removed stays out of the scale: one "
             "more GEMM each way per adapted linear."},
    {"lora", "init_lora_weights", T_STR, AT(init_lora_weights), .def = "\"default\"",
     .choices = "default|gaussian|pissa|olora",
     .help =
         "How A and B start (PEFT's init_lora_weights): default (PEFT's true: A ~ "
         "U(+-1/sqrt(in)), B 0); gaussian (A ~ N(0, 1/r), B 0); pissa (PiSSA: each adapted "
         "weight's r principal singular directions, A = sqrt(S_r / scale) Vh_r and B = U_r "
         "sqrt(S_r / scale), the weight keeping W - scale B A, which packed weights store: a "
         "file's own quantised blocks (model.base_dtype q) are dequantised, split and the rest "
         "quantised back, as peft does for 4-bit weights; peft rebuilds the same residual when it "
         "loads the adapter); olora (OLoRA: W = Q R, A = R's first r rows, B = Q's "
         "first r columns, the weight keeping W - scale B A likewise; not on GPT-2's Conv1D "
         "weights, where peft's fails too). PiSSA trains with lora.dropout 0, as its paper does: "
         "dropout on the principal directions is noise on the main signal (docs/BENCHMARKS.md)."},
    {"lora", "bias", T_STR, AT(bias), .def = "\"none\"", .choices = "none|all|lora_only",
     .help = "Which biases train beside the adapters, saved in them (PEFT's bias): none; all "
             "(every parameter named bias, the norms' too); lora_only (those of the adapted "
             "linears)."},
    {"lora", "modules_to_save", T_LIST, AT_LIST(modules_to_save, n_modules_to_save), .def = "[]",
     .help = "Modules trained in full besides the adapters; empty = the "
             "classification head (PEFT's SEQ_CLS default)."},
    {"lora", "rank_pattern", T_MAP, AT_LIST(rank_pattern, n_rank_pattern), .def = "{}",
     RANGE(1, LORA_MAX_R), .whole = 1,
     .help = "PEFT's rank_pattern: {regular expression: r}. A module whose name (after a '.', "
             "or whole) ends in a match of the first key that matches takes that rank instead "
             "of lora.r, e.g. {\"v_proj\": 16} or {\"layers\\\\.0\\\\..*\": 4}. On the "
             "command line also `lora.rank_pattern=v_proj:16,o_proj:4`."},
    {"lora", "alpha_pattern", T_MAP, AT_LIST(alpha_pattern, n_alpha_pattern), .def = "{}",
     RANGE(0, INFINITY), .min_open = 1,
     .help = "PEFT's alpha_pattern: {regular expression: alpha}, matched as rank_pattern; the "
             "module's scale is its alpha over its rank (or its square root: use_rslora)."},
    {"lora", "layers_to_transform", T_INTS, AT_LIST(layers_to_transform, n_layers), .def = "[]",
     RANGE(0, INT_MAX),
     .help = "PEFT's layers_to_transform: only the target modules in these layers get "
             "adapters; empty = every layer. A module's layer is the number after a "
             "layers_pattern segment (\"model.layers.3.mlp.up_proj\": 3)."},
    {"lora", "trainable_token_indices", T_INTS, AT_LIST(trainable_token_indices, n_token_indices),
     .def = "[]", RANGE(0, INT_MAX),
     .help = "PEFT's trainable_token_indices: token ids whose rows of the token embedding train "
             "in place of the table's, and of the LM head's where it is tied to the embedding "
             "(unless lm_head_token_indices gives it rows of its own; new or special tokens learnt "
             "without training the whole table). Saved in the "
             "adapter as peft's trainable_tokens_delta; merging writes them into the table."},
    {"lora", "lm_head_token_indices", T_INTS, AT_LIST(lm_head_token_indices, n_head_token_indices),
     .def = "[]", RANGE(0, INT_MAX),
     .help = "PEFT's trainable_token_indices {\"lm_head\": ids}: token ids whose rows of the LM "
             "head train apart from the embedding's (an untied head's, or on a tied model the "
             "head's alone, where they differ from trainable_token_indices; the same list ties "
             "them as peft does). Merging writes them into the head, untying a tied one."},
    {"lora", "layers_pattern", T_LIST, AT_LIST(layers_pattern, n_layers_pattern), .def = "[]",
     .help = "PEFT's layers_pattern: the names (regular expressions) of the segment before a "
             "layer's number, e.g. [\"layers\"]; empty = the first number after two or more "
             "segments. Needs layers_to_transform."},

    {"train", "learning_rate", T_FLOAT, AT(lr), .def = "5e-05", RANGE(0, INFINITY), .min_open = 1,
     .help = "Peak learning rate of AdamW."},
    {"train", "batch_size", T_INT, AT(batch_size), .def = "8", RANGE(1, 1 << 20),
     .help = "Examples per micro-batch."},
    {"train", "eval_batch_size", T_INT, AT(eval_batch_size), .def = "0", RANGE(0, 1 << 20),
     .help = "Examples per evaluation batch; 0 = 2 * batch_size."},
    {"train", "num_epochs", T_INT, AT(epochs), .def = "3", RANGE(1, 1 << 20),
     .help = "Passes over the training data (unless max_steps is set)."},
    {"train", "max_steps", T_INT, AT(max_steps), .def = "0", RANGE(0, INFINITY),
     .help = "Stop after this many optimizer steps; 0 = num_epochs decides."},
    {"train", "weight_decay", T_FLOAT, AT(weight_decay), .def = "0", RANGE(0, INFINITY),
     .help = "AdamW decoupled weight decay."},
    {"train", "neftune_noise_alpha", T_FLOAT, AT(neftune_noise_alpha), .def = "0", RANGE(0, 1e4),
     .help = "NEFTune (HF Trainer's neftune_noise_alpha; its paper uses 5 to 15): in training, "
             "uniform noise in +-alpha / sqrt(T x hidden) added to the input embeddings (T: the "
             "batch's padded length); never in evaluation or generation. 0 = none."},
    {"train", "loraplus_lr_ratio", T_FLOAT, AT(loraplus_lr_ratio), .def = "0", RANGE(0, 1e6),
     .help = "LoRA+ (PEFT's create_loraplus_optimizer; its paper suggests 16): every LoRA B and "
             "every 1-d trainable tensor (biases, norm weights) learns at this many times "
             "learning_rate, the rest at learning_rate; weight decay as weight_decay says "
             "(create_loraplus_optimizer's loraplus_weight_decay). 0 = plain LoRA. Needs "
             "lora.strategy lora."},
    {"train", "warmup_ratio", T_FLOAT, AT(warmup_ratio), .def = "0", RANGE(0, 1),
     .help = "Warmup length as a fraction of all steps."},
    {"train", "warmup_steps", T_INT, AT(warmup_steps), .def = "0", RANGE(0, INFINITY),
     .help = "Warmup length in steps; wins over warmup_ratio when > 0."},
    {"train", "lr_scheduler", T_STR, AT(lr_scheduler), .def = "\"linear\"",
     .choices = "linear|constant|cosine", .help = "Learning-rate decay after warmup."},
    {"train", "max_grad_norm", T_FLOAT, AT(max_grad_norm), .def = "1", RANGE(0, INFINITY),
     .help = "Clip the global gradient norm to this; 0 = no clipping."},
    {"train", "gradient_accumulation_steps", T_INT, AT(grad_accum), .def = "1", RANGE(1, 1 << 20),
     .help = "Micro-batches per optimizer step."},
    {"train", "adam_beta1", T_FLOAT, AT(adam_beta1), .def = "0.9", RANGE(0, 1), .max_open = 1,
     .help = "AdamW first-moment decay."},
    {"train", "adam_beta2", T_FLOAT, AT(adam_beta2), .def = "0.999", RANGE(0, 1), .max_open = 1,
     .help = "AdamW second-moment decay."},
    {"train", "adam_eps", T_FLOAT, AT(adam_eps), .def = "1e-08", RANGE(0, 1), .min_open = 1,
     .help = "AdamW epsilon."},
    {"train", "seed", T_U64, AT(seed), .def = "42", RANGE(0, 9007199254740992.0),
     .help = "Seeds initialisation, shuffling and dropout."},
    {"train", "output_dir", T_STR, AT(output_dir), .def = "\"\"",
     .help =
         "Run directory; empty = runs/NAME where NAME is the config file name without extension."},
    {"train", "dpo_beta", T_FLOAT, AT(dpo_beta), .def = "0.1", RANGE(0, INFINITY), .min_open = 1,
     .help = "dpo: beta, the strength of the pull towards the reference policy (the model with "
             "the adapters off)."},
    {"train", "dpo_loss", T_STR, AT(dpo_loss), .def = "\"sigmoid\"", .choices = "sigmoid|ipo",
     .help = "dpo: the loss of a pair, as TRL 0.12: sigmoid (DPO) or ipo (IPO, on length-averaged "
             "log-probs)."},
    {"train", "dpo_label_smoothing", T_FLOAT, AT(dpo_label_smoothing), .def = "0", RANGE(0, 0.5),
     .max_open = 1,
     .help = "dpo, sigmoid loss: the assumed share of mislabelled pairs (conservative DPO)."},
    {"train", "num_generations", T_INT, AT(num_generations), .def = "2", RANGE(2, 1024),
     .help = "rloo, grpo: completions sampled per prompt; each is judged against the mean "
             "reward of the others (rloo) or of its group (grpo). A batch is batch_size prompts "
             "x num_generations rows (at most 1024)."},
    {"train", "rloo_beta", T_FLOAT, AT(rloo_beta), .def = "0.05", RANGE(0, INFINITY),
     .help = "rloo: the weight of the KL penalty subtracted from each completion's reward "
             "(its log-prob minus the reference policy's, the model with the adapters off, both "
             "taken as it is sampled: two forwards more a batch); 0 = none, and no reference."},
    {"train", "normalize_advantages", T_BOOL, AT(normalize_advantages), .def = "false",
     .help = "rloo: scale the advantages of an optimizer step's batches to mean 0 and standard "
             "deviation 1."},
    {"train", "grpo_beta", T_FLOAT, AT(grpo_beta), .def = "0", RANGE(0, INFINITY),
     .help = "grpo: the weight of the KL penalty to the reference policy (the model with the "
             "adapters off) in each completion token's loss, TRL's bias-corrected k3 estimate; "
             "0 (TRL's default) = none, and no reference forward."},
    {"train", "grpo_loss_type", T_STR, AT(grpo_loss_type), .def = "\"dapo\"",
     .choices = "dapo|grpo|bnpo|dr_grpo|cispo|sapo|luspo|vespo",
     .help = "grpo: how the completions' token losses add up (TRL's loss_type): dapo over an "
             "optimizer step's completion tokens (TRL's default), bnpo over each micro-batch's, "
             "grpo over each completion's then the micro-batch's rows, dr_grpo over rows x "
             "max_completion_length, each on the clipped ratio; cispo (MiniMax-M1) as dapo, on "
             "the ratio capped at epsilon_high and detached, times the log-prob (ScaleRL's "
             "epsilon_high: 5); sapo (soft adaptive) as grpo, the ratio's sigmoid in place of "
             "its clip (sapo_temperature_pos, _neg); luspo (length-unbiased GSPO: with "
             "importance_sampling_level sequence) each completion's tokens summed, then the "
             "mean over the micro-batch's rows; vespo (variational sequence-level soft PO) as "
             "dapo, the log-prob times a completion's gamma weight of its probability ratio "
             "(vespo_k_pos, _lambda_pos, _k_neg, _lambda_neg), detached."},
    {"train", "scale_rewards", T_STR, AT(scale_rewards), .def = "\"group\"",
     .choices = "group|batch|none",
     .help = "grpo: each reward less its group's mean, divided by the group's standard "
             "deviation (group), that of all the rewards of an optimizer step's batches (batch) "
             "or by nothing (none), as TRL's scale_rewards."},
    {"train", "mask_truncated_completions", T_BOOL, AT(mask_truncated_completions), .def = "false",
     .help = "grpo: completions cut at max_completion_length without a stop token add nothing "
             "to the loss (DAPO's practice); they still count in their group's rewards."},
    {"train", "num_iterations", T_INT, AT(num_iterations), .def = "1", RANGE(1, 1024),
     .help = "rloo, grpo: optimizer steps on each generation (TRL's num_iterations, GRPO's "
             "mu): the batches of a step are sampled together and trained on num_iterations "
             "times, each token's loss (rloo: each completion's) weighed by its probability's "
             "ratio to the sampling policy's, clipped (epsilon). An epoch takes num_iterations "
             "times the steps."},
    {"train", "epsilon", T_FLOAT, AT(epsilon), .def = "0.2", RANGE(0, 1), .max_open = 1,
     .help = "rloo, grpo: the ratio is clipped below at 1 - epsilon (TRL's epsilon); it acts "
             "from a generation's second step (num_iterations > 1)."},
    {"train", "epsilon_high", T_FLOAT, AT(epsilon_high), .def = "-1", RANGE(-1, INFINITY),
     .help = "rloo, grpo: the ratio is clipped above at 1 + epsilon_high (DAPO's clip-higher: "
             "TRL's epsilon_high); -1 = epsilon."},
    {"train", "importance_sampling_level", T_STR, AT(importance_sampling_level), .def = "\"token\"",
     .choices = "token|sequence",
     .help = "grpo: the ratio to the sampling policy each token's (token, TRL's default) or one "
             "a completion, the exp of its tokens' mean log-ratio, clipped as a whole (sequence: "
             "GSPO, Zheng et al. 2025, whose paper clips at epsilon 3e-4, epsilon_high 4e-4)."},
    {"train", "delta", T_FLOAT, AT(delta), .def = "0", RANGE(0, INFINITY),
     .help = "grpo: two-sided clipping (INTELLECT-2, TRL's delta): the ratio is also capped at "
             "delta where the advantage is negative; above 1 + epsilon_high, or 0 = none."},
    {"train", "sapo_temperature_pos", T_FLOAT, AT(sapo_temperature_pos), .def = "1",
     RANGE(0, INFINITY), .min_open = 1, .max_open = 1,
     .help = "grpo, sapo: the sigmoid's temperature for positive advantages (TRL's)."},
    {"train", "sapo_temperature_neg", T_FLOAT, AT(sapo_temperature_neg), .def = "1.05",
     RANGE(0, INFINITY), .min_open = 1, .max_open = 1,
     .help = "grpo, sapo: the sigmoid's temperature for the other advantages (TRL's)."},
    {"train", "vespo_k_pos", T_FLOAT, AT(vespo_k[0]), .def = "2", RANGE(0, INFINITY),
     .help = "grpo, vespo: the gamma weight's power for advantages >= 0 (TRL's)."},
    {"train", "vespo_lambda_pos", T_FLOAT, AT(vespo_lambda[0]), .def = "3", RANGE(0, INFINITY),
     .help = "grpo, vespo: the gamma weight's decay for advantages >= 0 (TRL's; at least "
             "1e-4 in use)."},
    {"train", "vespo_k_neg", T_FLOAT, AT(vespo_k[1]), .def = "3", RANGE(0, INFINITY),
     .help = "grpo, vespo: the gamma weight's power for negative advantages (TRL's)."},
    {"train", "vespo_lambda_neg", T_FLOAT, AT(vespo_lambda[1]), .def = "2", RANGE(0, INFINITY),
     .help = "grpo, vespo: the gamma weight's decay for negative advantages (TRL's)."},
    {"train", "off_policy_mask_threshold", T_FLOAT, AT(off_policy_mask_threshold), .def = "0",
     RANGE(0, INFINITY),
     .help = "grpo: the off-policy sequence mask (DeepSeek-V3.2, TRL's): a completion whose "
             "advantage is negative and whose tokens' mean log-prob under the sampling policy "
             "less the policy's is above this (as num_iterations' later steps drift from it) "
             "adds nothing to the policy term of the loss (its KL term stays); 0 = none (TRL's "
             "None; it suggests 0.5)."},
    {"train", "top_entropy_quantile", T_FLOAT, AT(top_entropy_quantile), .def = "1", RANGE(0, 1),
     .help = "grpo: the entropy mask (\"Beyond the 80/20 rule\", Wang et al. 2025; TRL's): the "
             "policy term of the loss only at the completion tokens whose entropy is among the "
             "top share of the batch's (at least its 1 - top_entropy_quantile quantile; the "
             "paper's 0.2); 1 = every token, 0 = the highest entropy's alone."},
    {"train", "entropy_coef", T_FLOAT, AT(entropy_coef), .def = "0",
     .help = "grpo: the entropy bonus (TRL's): the loss less entropy_coef times the mean "
             "entropy of the tokens the policy term trains (all completion tokens, or the "
             "entropy mask's); 0 = none; with use_adaptive_entropy its starting value."},
    {"train", "use_adaptive_entropy", T_BOOL, AT(use_adaptive_entropy), .def = "false",
     .help = "grpo: Skywork-OR1's adaptive entropy control (TRL's): after each optimizer step "
             "entropy_coef rises by entropy_coef_delta where the step's mean entropy (over the "
             "tokens the bonus acts on) is at most entropy_target, else falls, within "
             "[entropy_coef_min, entropy_coef_max]; the bonus applies only while the last "
             "step's entropy is at most the target. Not kept across --resume (TRL's is not)."},
    {"train", "entropy_coef_min", T_FLOAT, AT(entropy_coef_min), .def = "0", RANGE(0, INFINITY),
     .help = "grpo, use_adaptive_entropy: the coefficient's floor."},
    {"train", "entropy_coef_max", T_FLOAT, AT(entropy_coef_max), .def = "1", RANGE(0, INFINITY),
     .help = "grpo, use_adaptive_entropy: the coefficient's ceiling."},
    {"train", "entropy_coef_delta", T_FLOAT, AT(entropy_coef_delta), .def = "0.005",
     RANGE(0, INFINITY), .help = "grpo, use_adaptive_entropy: the coefficient's step."},
    {"train", "entropy_target", T_FLOAT, AT(entropy_target), .def = "0.2", RANGE(0, INFINITY),
     .help = "grpo, use_adaptive_entropy: the mean entropy (nats a token) at or below which "
             "the bonus applies and its coefficient rises (TRL's 0.2: set it near the entropy "
             "logged early in training)."},
    {"train", "use_bias_correction_kl", T_BOOL, AT(use_bias_correction_kl), .def = "true",
     .help = "grpo: the KL penalty's term times the ratio to the sampling policy (TRL's, "
             "DeepSeek-V3.2's unbiased estimate: it changes the KL's gradient even at ratio 1); "
             "false: the plain k3 estimate."},
    {"train", "reward_funcs", T_LIST, AT_LIST(reward_funcs, n_reward_funcs), .def = "[]",
     .help = "rloo, grpo: the functions whose rewards add up to a completion's (TRL's "
             "reward_funcs): model (model.reward_model's score), command (train.reward_command's "
             "program) and TRL's built-in think_format_reward (1 for \"<think>...</think>\" "
             "then the answer, else 0), soft_overlong_punishment_reward (DAPO's: from 0 down to "
             "-1 over the last soft_punish_cache tokens of max_completion_length) and "
             "repetition_penalty_reward (repeated n-grams' share of the completion's times "
             "repetition_max_penalty); [] = [\"model\"]."},
    {"train", "reward_weights", T_FLOATS, AT_LIST(reward_weights, n_reward_weights), .def = "[]",
     .help = "rloo, grpo: each reward function's weight in the sum, in reward_funcs' order "
             "(TRL's reward_weights); [] = 1 each."},
    {"train", "reward_clip_range", T_FLOATS, AT_LIST(reward_clip_range, n_reward_clip_range),
     .def = "[]",
     .help = "rloo: [min, max]: each completion's reward (the weighted sum) clamped into it "
             "before the KL penalty and the baselines (TRL's reward_clip_range); [] = none."},
    {"train", "multi_objective_aggregation", T_STR, AT(multi_objective_aggregation),
     .def = "\"sum_then_normalize\"", .choices = "sum_then_normalize|normalize_then_sum",
     .help = "grpo: the weighted sum of the rewards, then the advantages as scale_rewards says "
             "(sum_then_normalize), or each function's rewards normalised over their group "
             "first, then summed and the sums normalised over the optimizer step's batches "
             "(normalize_then_sum: GDPO, Liu et al. 2026; scale_rewards unused), as TRL's."},
    {"train", "reward_command", T_STR, AT(reward_command), .def = "\"\"",
     .help = "rloo, grpo: the program of reward function command, run by /bin/sh once for the "
             "run: for each batch it reads a line of JSON, {\"prompts\": [...], \"completions\": "
             "[...], \"completion_ids\": [[...]], and each other field of the prompts' records "
             "as a list}, a row a completion, and writes a line, a JSON array of one number or "
             "null (no reward) a completion: TRL's reward function's arguments and result."},
    {"train", "soft_punish_cache", T_INT, AT(soft_punish_cache), .def = "0", RANGE(0, 1 << 20),
     .help = "soft_overlong_punishment_reward: the last tokens of max_completion_length over "
             "which the punishment grows (DAPO's L_cache); needed by that function."},
    {"train", "repetition_ngram_size", T_INT, AT(repetition_ngram_size), .def = "3", RANGE(1, 1024),
     .help = "repetition_penalty_reward: the n-grams' n."},
    {"train", "repetition_max_penalty", T_FLOAT, AT(repetition_max_penalty), .def = "-1",
     RANGE(-INFINITY, 0),
     .help = "repetition_penalty_reward: the reward of a completion of one n-gram repeated."},
    {"train", "max_completion_length", T_INT, AT(max_completion_length), .def = "256",
     RANGE(1, 1 << 20),
     .help = "rloo, grpo: the most tokens a sampled completion may have (its stop token "
             "included)."},
    {"train", "temperature", T_FLOAT, AT(temperature), .def = "1", RANGE(0, INFINITY),
     .min_open = 1, .max_open = 1,
     .help = "rloo, grpo: the completions are sampled at this temperature, and the log-probs "
             "that train on them are taken from the logits divided by it (the policy's and the "
             "reference's), as TRL's temperature."},
    {"train", "top_k", T_INT, AT(top_k), .def = "0", RANGE(0, INFINITY),
     .help = "rloo, grpo: sample among the k most probable tokens only (after the temperature); "
             "0 = all."},
    {"train", "top_p", T_FLOAT, AT(top_p), .def = "1", RANGE(0, 1), .min_open = 1,
     .help = "rloo, grpo: sample from the smallest set of most probable tokens whose probability "
             "reaches top_p (nucleus sampling, after top_k); 1 = all."},
    {"train", "min_p", T_FLOAT, AT(min_p), .def = "0", RANGE(0, 1),
     .help = "rloo, grpo: sample among the tokens whose probability is at least min_p times the "
             "most probable one's (after top_p); 0 = all."},
    {"train", "repetition_penalty", T_FLOAT, AT(repetition_penalty), .def = "1", RANGE(0, INFINITY),
     .min_open = 1, .max_open = 1,
     .help = "rloo, grpo: the sampled logit of each token already in the prompt or the "
             "completion divided by it where positive, multiplied where negative (transformers'); "
             "1 = none. The log-probs that train are the policy's own."},
    {"train", "eval_strategy", T_STR, AT(eval_strategy), .def = "\"epoch\"",
     .choices = "epoch|steps|no", .help = "When to evaluate."},
    {"train", "eval_steps", T_INT, AT(eval_steps), .def = "0", RANGE(0, INFINITY),
     .help = "Evaluate every N optimizer steps (eval_strategy \"steps\")."},
    {"train", "save_strategy", T_STR, AT(save_strategy), .def = "\"epoch\"",
     .choices = "epoch|steps|no", .help = "When to write a checkpoint."},
    {"train", "save_steps", T_INT, AT(save_steps), .def = "0", RANGE(0, INFINITY),
     .help = "Save every N optimizer steps (save_strategy \"steps\")."},
    {"train", "metric_for_best", T_STR, AT(metric_for_best), .def = "\"eval_loss\"",
     .choices = CHECKPOINT_METRICS,
     .help = "Picks the best checkpoint: eval_loss lower is better, accuracy, f1 and reward "
             "higher (accuracy: classification, and dpo / reward, where it is the reward "
             "accuracy; f1: classification only; reward: rloo's and grpo's, which pick by it "
             "alone, the "
             "reward model's mean score of the completions sampled for the held-out prompts)."},
    {"train", "eval_before_training", T_BOOL, AT(eval_before_training), .def = "true",
     .help = "Evaluate once before the first step (the untrained baseline)."},
    {"train", "logging_steps", T_INT, AT(logging_steps), .def = "10", RANGE(0, INFINITY),
     .help = "Log loss and speed every N optimizer steps; 0 = only at evaluations."},
    {"train", "threads", T_INT, AT(threads), .def = "0", RANGE(0, 4096),
     .help = "CPU threads; 0 = all cores."},
    {"train", "eval_answers", T_INT, AT(eval_answers), .def = "3", RANGE(0, 1 << 20),
     .help = "sft: at each evaluation, the greedy answers to the first N validation prompts "
             "are printed and logged."},
    {"train", "max_new_tokens", T_INT, AT(max_new_tokens), .def = "64", RANGE(1, 1 << 20),
     .help = "sft: the most tokens an evaluation answer may have."},
    {"train", "cuda_graphs", T_CHOICE, AT(cuda_graphs), .def = "\"auto\"", .choices = "auto|on|off",
     .help = "cuda: run each training micro-batch's forward and backward as one CUDA graph "
             "launch, recorded once per batch shape (B, T, padding; four kept) and replayed "
             "with the step's dropout seed and loss scale read on the device (AdamW runs op by "
             "op after it). auto = a shape is recorded when it repeats in a row; on = at once "
             "(under model.attention cudnn at its second micro-batch, as auto); off = launch op "
             "by op. The results are the same bits either way; on an H200, auto ran 0.1-1.2 % "
             "faster than off end to end (docs/BENCHMARKS.md). The cpu ignores this."},
    {"train", "gradient_checkpointing", T_BOOL, AT(gradient_checkpointing), .def = "false",
     .help = "Keep only each layer's input through the forward and recompute the layer's "
             "forward just before its backward (HF's gradient_checkpointing): the activations "
             "of one layer instead of all, for about a third more compute. The gradients are "
             "the same bits (dropout masks are drawn again from the same seeds)."},
};
#define N_KEYS (sizeof keys / sizeof keys[0])
static const char *const sections[] = {"model", "data", "lora", "train"};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Names people bring from PEFT / HF Trainer configs, suggested by their loraft spelling. */
static const char *const aliases[][2] = {
    {"lora_alpha", "alpha"},
    {"lora_dropout", "dropout"},
    {"num_train_epochs", "num_epochs"},
    {"per_device_train_batch_size", "batch_size"},
    {"lr", "learning_rate"},
    {"epochs", "num_epochs"},
};

/* ---- table look-ups ---- */

static const Key *key_find(const char *section, const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

static int section_known(const char *section) {
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (!strcmp(sections[i], section)) return 1;
    return 0;
}

/* Levenshtein distance, names cut at 63 characters. */
static int edit_distance(const char *a, const char *b) {
    int n = (int)strnlen(a, 63), m = (int)strnlen(b, 63), row[64];
    for (int j = 0; j <= m; j++) row[j] = j;
    for (int i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[m];
}

/* Index of the closest of n names (name pointers `stride` bytes apart) within a third of
 * the name's length (at least 2 edits), or -1. */
static int closest(const char *name, const char *const *names, size_t n, size_t stride) {
    int best = -1, best_d = INT_MAX, limit = (int)strlen(name) / 3;
    if (limit < 2) limit = 2;
    for (size_t i = 0; i < n; i++) {
        int d = edit_distance(name, *(const char *const *)((const char *)names + i * stride));
        if (d <= limit && d < best_d) best = (int)i, best_d = d;
    }
    return best;
}

static int unknown_section(const char *section, LfError *err) {
    int s = closest(section, sections, N_SECTIONS, sizeof sections[0]);
    if (s >= 0) return lf_fail(err, "%s: unknown section (did you mean %s?)", section, sections[s]);
    return lf_fail(err, "%s: unknown section (known: model, data, lora, train)", section);
}

/* "train.learning_rte: unknown key (did you mean learning_rate?)". Tries, in order: a
 * PEFT/HF alias, a close name in the same section, a close name in another section. */
static int unknown_key(const char *section, const char *name, LfError *err) {
    const char *want = NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(name, aliases[i][0])) want = aliases[i][1];
    const char *here[N_KEYS];
    size_t n = 0;
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section)) here[n++] = keys[i].name;
    int h = want ? -1 : closest(name, here, n, sizeof here[0]);
    if (h >= 0)
        return lf_fail(err, "%s.%s: unknown key (did you mean %s?)", section, name, here[h]);
    int k = closest(want ? want : name, &keys[0].name, N_KEYS, sizeof keys[0]);
    if (k >= 0 && !strcmp(keys[k].section, section))
        return lf_fail(err, "%s.%s: unknown key (did you mean %s?)", section, name, keys[k].name);
    if (k >= 0)
        return lf_fail(err, "%s.%s: unknown key (did you mean %s.%s?)", section, name,
                       keys[k].section, keys[k].name);
    return lf_fail(err, "%s.%s: unknown key (see docs/CONFIG.md)", section, name);
}

/* The i-th entry of "a|b|c" into buf; 0 when there is no such entry. */
static int choice_at(const char *choices, int i, char *buf, size_t cap) {
    for (; i > 0 && choices; i--) {
        choices = strchr(choices, '|');
        if (choices) choices++;
    }
    if (!choices) return 0;
    size_t len = strcspn(choices, "|");
    if (len >= cap) len = cap - 1;
    memcpy(buf, choices, len);
    buf[len] = 0;
    return 1;
}

/* Index of s in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *s) {
    char buf[64];
    for (int i = 0; choices && choice_at(choices, i, buf, sizeof buf); i++)
        if (!strcmp(buf, s)) return i;
    return -1;
}

/* ---- applying one JSON value to one key ---- */

static const char *json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

static const char *type_name(KeyType t) {
    static const char *const names[] = {
        "string",           "string",           "integer",          "number",
        "boolean",          "integer",          "array of strings", "array of integers",
        "array of numbers", "object of numbers"};
    return names[t];
}

/* Allowed range as text: ">= 1", "(0, 1)", "[0, 1]". */
static void range_text(const Key *k, char *buf, size_t cap) {
    if (isinf(k->max))
        snprintf(buf, cap, "%s %.16g", k->min_open ? ">" : ">=", k->min);
    else
        snprintf(buf, cap, "%c%.16g, %.16g%c", k->min_open ? '(' : '[', k->min, k->max,
                 k->max_open ? ')' : ']');
}

static int in_range(const Key *k, double x) {
    if (!k->ranged) return 1;
    int low = k->min_open ? x <= k->min : x < k->min;
    int high = k->max_open ? x >= k->max : x > k->max;
    return !low && !high;
}

/* x, and for a float key the float it is stored as (5e-47 is 0 there), within the key's range */
static int check_range(const Key *k, double x, LfError *err) {
    int as_float = k->type == T_FLOAT && in_range(k, x);
    if (in_range(k, as_float ? (float)x : x)) return 0;
    char r[96];
    range_text(k, r, sizeof r);
    if (as_float)
        return lf_fail(err, "%s.%s: %.16g is %g as a float, out of range (allowed: %s)", k->section,
                       k->name, x, (double)(float)x, r);
    return lf_fail(err, "%s.%s: %.16g is out of range (allowed: %s)", k->section, k->name, x, r);
}

static int set_string(char *dst, size_t cap, const Key *k, const char *s, LfError *err) {
    size_t len = strlen(s);
    if (len >= cap)
        return lf_fail(err, "%s.%s: \"%.40s...\" is longer than %zu characters", k->section,
                       k->name, s, cap - 1);
    memset(dst, 0, cap);
    memcpy(dst, s, len);
    return 0;
}

static int choices_error(const Key *k, const char *s, LfError *err) {
    char list[128], one[64];
    list[0] = 0;
    for (int i = 0; choice_at(k->choices, i, one, sizeof one); i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", one);
    if (choice_index(k->later, s) >= 0)
        return lf_fail(err, "%s.%s: \"%s\" is not supported yet (supported: %s)", k->section,
                       k->name, s, list);
    return lf_fail(err, "%s.%s: \"%s\" is not one of %s", k->section, k->name, s, list);
}

/* Checks every item before writing any, so a failed override leaves the list as it was. */
static int apply_list(TrainConfig *c, const Key *k, const cJSON *v, LfError *err) {
    int n = cJSON_GetArraySize(v), i = 0;
    if (n > k->max_items)
        return lf_fail(err, "%s.%s: %d entries, at most %d allowed", k->section, k->name, n,
                       k->max_items);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e))
            return lf_fail(err, "%s.%s[%d]: expected a string, got %s", k->section, k->name, i,
                           json_kind(e));
        if (!e->valuestring[0] || strlen(e->valuestring) >= k->size)
            return lf_fail(err, "%s.%s[%d]: \"%.40s\" must have 1 to %zu characters", k->section,
                           k->name, i, e->valuestring, k->size - 1);
    }
    char *items = (char *)c + k->off;
    memset(items, 0, k->size * (size_t)k->max_items);
    i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++)
        memcpy(items + (size_t)i * k->size, e->valuestring, strlen(e->valuestring));
    *(int *)((char *)c + k->count_off) = n;
    return 0;
}

/* A T_INTS or T_FLOATS value: numbers (T_INTS: integers) in the key's range, or one. */
static int apply_numbers(TrainConfig *c, const Key *k, const cJSON *v, LfError *err) {
    int one = cJSON_IsNumber(v), n = one ? 1 : cJSON_GetArraySize(v), i = 0,
        ints = k->type == T_INTS;
    if (n > k->max_items)
        return lf_fail(err, "%s.%s: %d entries, at most %d allowed", k->section, k->name, n,
                       k->max_items);
    double got[LORA_MAX_TOKENS]; /* max_items at most */
    for (const cJSON *e = one ? v : v->child; e; e = one ? NULL : e->next, i++) {
        if (!cJSON_IsNumber(e) || (ints && e->valuedouble != floor(e->valuedouble)))
            return lf_fail(err, "%s.%s[%d]: expected %s, got %s", k->section, k->name, i,
                           ints ? "an integer" : "a number",
                           cJSON_IsNumber(e) ? "a fraction" : json_kind(e));
        if (!ints && fabs(e->valuedouble) > FLT_MAX)
            return lf_fail(err, "%s.%s[%d]: %.16g does not fit a float", k->section, k->name, i,
                           e->valuedouble);
        if (check_range(k, e->valuedouble, err)) return -1;
        got[i] = e->valuedouble;
    }
    char *items = (char *)c + k->off;
    size_t size = ints ? sizeof(int) : sizeof(float);
    memset(items, 0, (size_t)k->max_items * size); /* saved and loaded alike */
    for (i = 0; i < n; i++)
        if (ints)
            ((int *)items)[i] = (int)got[i];
        else
            ((float *)items)[i] = (float)got[i];
    *(int *)((char *)c + k->count_off) = n;
    return 0;
}

/* A T_MAP value: keys that compile as lora_targets.h's regular expressions, numbers in the key's
 * range. */
static int apply_map(TrainConfig *c, const Key *k, const cJSON *v, LfError *err) {
    int n = cJSON_GetArraySize(v), i = 0;
    if (n > k->max_items)
        return lf_fail(err, "%s.%s: %d keys, at most %d allowed", k->section, k->name, n,
                       k->max_items);
    LoraPattern got[LORA_MAX_PATTERNS];
    memset(got, 0, sizeof got); /* every byte, so that a saved config loads back equal */
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (strlen(e->string) >= sizeof got->key)
            return lf_fail(err, "%s.%s: key \"%.40s...\" is longer than %zu characters", k->section,
                           k->name, e->string, sizeof got->key - 1);
        if (lora_pattern_check(e->string, err))
            return lf_wrap(err, "%s.%s: key \"%.40s\"", k->section, k->name, e->string);
        if (!cJSON_IsNumber(e) || (k->whole && e->valuedouble != floor(e->valuedouble)))
            return lf_fail(err, "%s.%s: \"%s\": expected %s, got %s", k->section, k->name,
                           e->string, k->whole ? "an integer" : "a number",
                           cJSON_IsNumber(e) ? "a fraction" : json_kind(e));
        double as_kept = k->whole ? e->valuedouble : (double)(float)e->valuedouble;
        if (!isfinite(as_kept) || !in_range(k, as_kept)) {
            char r[96];
            range_text(k, r, sizeof r);
            return lf_fail(err, "%s.%s: \"%s\": %.16g is out of range (allowed: %s)", k->section,
                           k->name, e->string, e->valuedouble, r);
        }
        snprintf(got[i].key, sizeof got->key, "%s", e->string);
        got[i].value = (float)e->valuedouble;
    }
    memcpy((char *)c + k->off, got, (size_t)k->max_items * sizeof *got);
    *(int *)((char *)c + k->count_off) = n;
    return 0;
}

static int apply_number(TrainConfig *c, const Key *k, double x, LfError *err) {
    if (k->type != T_FLOAT && x != floor(x))
        return lf_fail(err, "%s.%s: expected an integer, got %.16g", k->section, k->name, x);
    if (k->type == T_INT && (x < INT_MIN || x > INT_MAX))
        return lf_fail(err, "%s.%s: %.16g does not fit an int", k->section, k->name, x);
    if (k->type == T_FLOAT && fabs(x) > FLT_MAX)
        return lf_fail(err, "%s.%s: %.16g does not fit a float", k->section, k->name, x);
    if (check_range(k, x, err)) return -1;
    void *dst = (char *)c + k->off;
    if (k->type == T_INT)
        *(int *)dst = (int)x;
    else if (k->type == T_FLOAT)
        *(float *)dst = (float)x;
    else
        *(uint64_t *)dst = (uint64_t)x;
    return 0;
}

static int key_apply(TrainConfig *c, const Key *k, const cJSON *v, LfError *err) {
    int ok = k->type == T_STR || k->type == T_CHOICE    ? cJSON_IsString(v)
             : k->type == T_BOOL                        ? cJSON_IsBool(v)
             : k->type == T_LIST                        ? cJSON_IsArray(v)
             : k->type == T_INTS || k->type == T_FLOATS ? cJSON_IsArray(v) || cJSON_IsNumber(v)
             : k->type == T_MAP                         ? cJSON_IsObject(v)
                                                        : cJSON_IsNumber(v);
    if (!ok) {
        const char *t = type_name(k->type);
        return lf_fail(err, "%s.%s: expected %s %s, got %s", k->section, k->name,
                       strchr("aeiou", t[0]) ? "an" : "a", t, json_kind(v));
    }
    char *dst = (char *)c + k->off;
    switch (k->type) {
    case T_STR:
        if (k->choices && choice_index(k->choices, v->valuestring) < 0)
            return choices_error(k, v->valuestring, err);
        return set_string(dst, k->size, k, v->valuestring, err);
    case T_CHOICE: {
        int i = choice_index(k->choices, v->valuestring);
        if (i < 0) return choices_error(k, v->valuestring, err);
        *(int *)dst = i;
        return 0;
    }
    case T_BOOL:
        *(int *)dst = cJSON_IsTrue(v);
        return 0;
    case T_LIST:
        return apply_list(c, k, v, err);
    case T_INTS:
    case T_FLOATS:
        return apply_numbers(c, k, v, err);
    case T_MAP:
        return apply_map(c, k, v, err);
    default:
        return apply_number(c, k, v->valuedouble, err);
    }
}

void train_config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) {
        cJSON *v = cJSON_Parse(keys[i].def);
        (void)key_apply(c, &keys[i], v, NULL); /* defaults are valid: tests check them */
        cJSON_Delete(v);
    }
}

/* ---- loading ---- */

/* 1-based line of `pos` in text. */
static int line_at(const char *text, const char *pos) {
    int line = 1;
    for (const char *p = text; p < pos && *p; p++) line += *p == '\n';
    return line;
}

/* Line of "key" after "section" in text (0 = not found): good enough for messages. */
static int line_of_key(const char *text, const char *section, const char *key) {
    char q[160];
    snprintf(q, sizeof q, "\"%s\"", section);
    const char *p = strstr(text, q);
    if (p && key) {
        snprintf(q, sizeof q, "\"%s\"", key);
        p = strstr(p, q);
    }
    return p ? line_at(text, p) : 0;
}

static char *read_text(const char *path, LfError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf_fail(err, "%s: cannot open: %s", path, strerror(errno)), NULL;
    char *text = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len < 0 || len > (16l << 20) || fseek(f, 0, SEEK_SET) != 0)
        lf_fail(err, "%s: not a regular file of at most 16 MiB", path);
    else if (!(text = malloc((size_t)len + 1)))
        lf_fail(err, "%s: out of memory", path);
    else if (fread(text, 1, (size_t)len, f) != (size_t)len)
        lf_fail(err, "%s: read error", path), free(text), text = NULL;
    else
        text[len] = 0;
    fclose(f);
    return text;
}

static int has_earlier(const cJSON *first, const cJSON *item) {
    for (const cJSON *e = first; e != item; e = e->next)
        if (!strcmp(e->string, item->string)) return 1;
    return 0;
}

/* Applies every section.key of root; on error returns the key's message (no location). */
static int apply_object(TrainConfig *c, const cJSON *root, const char **sec, const char **key,
                        LfError *err) {
    for (const cJSON *s = root->child; s; s = s->next) {
        *sec = s->string, *key = NULL;
        if (!section_known(s->string)) return unknown_section(s->string, err);
        if (has_earlier(root->child, s)) return lf_fail(err, "%s: duplicate section", s->string);
        if (!cJSON_IsObject(s))
            return lf_fail(err, "%s: expected an object of keys, got %s", s->string, json_kind(s));
        for (const cJSON *v = s->child; v; v = v->next) {
            *key = v->string;
            const Key *k = key_find(s->string, v->string);
            if (!k) return unknown_key(s->string, v->string, err);
            if (has_earlier(s->child, v))
                return lf_fail(err, "%s.%s: duplicate key", s->string, v->string);
            if (key_apply(c, k, v, err)) return -1;
        }
    }
    return 0;
}

/* "runs/<file name without extension>" */
static int default_output_dir(TrainConfig *c, const char *path, LfError *err) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    int n = snprintf(c->output_dir, sizeof c->output_dir, "runs/%.*s", stem, base);
    if (n < 0 || (size_t)n >= sizeof c->output_dir)
        return lf_fail(err, "%s: file name too long for train.output_dir", path);
    return 0;
}

int train_config_load(TrainConfig *c, const char *path, LfError *err) {
    train_config_defaults(c);
    char *text = read_text(path, err);
    if (!text) return -1;
    const char *end = NULL, *sec = NULL, *key = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    int rc = 0;
    if (!root)
        rc = lf_fail(err, "%s:%d: invalid JSON near \"%.20s\"", path,
                     line_at(text, end ? end : text), end ? end : "");
    else if (!cJSON_IsObject(root))
        rc =
            lf_fail(err, "%s: expected a JSON object with sections model, data, lora, train", path);
    else if (apply_object(c, root, &sec, &key, err))
        rc = lf_wrap(err, "%s:%d", path, line_of_key(text, sec, key));
    else if (!c->output_dir[0])
        rc = default_output_dir(c, path, err);
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- overrides ---- */

/* A T_MAP override's "key:value,key:value" (each split at its last ':') as the JSON object; a
 * key with a ',' needs the JSON form. An item that is not so: the text, which key_apply refuses. */
static cJSON *map_override(const char *text) {
    cJSON *map = cJSON_CreateObject();
    for (const char *p = text; map && *p;) {
        size_t len = strcspn(p, ",");
        char item[256], *end;
        snprintf(item, sizeof item, "%.*s", (int)(len < 255 ? len : 255), p);
        char *colon = strrchr(item, ':');
        double x = colon ? strtod(colon + 1, &end) : 0;
        if (!colon || colon == item || end == colon + 1 || *end) {
            cJSON_Delete(map);
            return cJSON_CreateString(text);
        }
        *colon = 0;
        cJSON_AddNumberToObject(map, item, x);
        p += len + (p[len] == ',');
    }
    return map;
}

/* The JSON value an override's text stands for (see train_config_set). */
static cJSON *override_value(const Key *k, const char *text) {
    cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
    int textual = k->type == T_STR || k->type == T_CHOICE;
    if (v && (!textual || cJSON_IsString(v))) return v;
    cJSON_Delete(v);
    if (k->type == T_INTS || k->type == T_FLOATS) { /* 0,1,2 */
        char list[1024];
        snprintf(list, sizeof list, "[%.1000s]", text);
        v = cJSON_ParseWithOpts(list, NULL, 1);
        return v ? v : cJSON_CreateString(text);
    }
    if (k->type == T_MAP) return map_override(text);
    if (k->type != T_LIST) return cJSON_CreateString(text);
    cJSON *list = cJSON_CreateArray();
    for (const char *p = text; list && *p;) {
        size_t len = strcspn(p, ",");
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)(len < 255 ? len : 255), p);
        cJSON_AddItemToArray(list, cJSON_CreateString(item));
        p += len + (p[len] == ',');
    }
    return list;
}

int train_config_set(TrainConfig *c, const char *assignment, LfError *err) {
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    if (!dot) return lf_fail(err, "override \"%s\": expected section.key=value", assignment);
    char sec[64], name[64];
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    const Key *k = key_find(sec, name);
    int rc;
    if (!section_known(sec))
        rc = unknown_section(sec, err);
    else if (!k)
        rc = unknown_key(sec, name, err);
    else {
        cJSON *v = override_value(k, eq + 1);
        rc = v ? key_apply(c, k, v, err) : lf_fail(err, "out of memory");
        cJSON_Delete(v);
    }
    return rc ? lf_wrap(err, "override \"%s\"", assignment) : 0;
}

/* Function i of train.reward_funcs into f, and what it needs. */
static int reward_func_check(const TrainConfig *c, int i, RewardFuncs *f, LfError *err) {
    const char *name = c->n_reward_funcs ? c->reward_funcs[i] : "model"; /* [] = ["model"] */
    int kind = reward_kind_named(name);
    if (kind < 0)
        return lf_fail(err,
                       "train.reward_funcs[%d]: unknown reward function \"%s\" (model, command, "
                       "think_format_reward, soft_overlong_punishment_reward, "
                       "repetition_penalty_reward)",
                       i, name);
    for (int j = 0; j < i; j++)
        if (!strcmp(c->reward_funcs[j], name))
            return lf_fail(err, "train.reward_funcs lists %s twice", name);
    if (kind == REWARD_MODEL && !c->reward_model[0])
        return lf_fail(err, "reward function model needs model.reward_model: the reward model that "
                            "scores the completions (a model.task reward run, merged or as "
                            "model.reward_adapter on its base)");
    if (kind == REWARD_COMMAND && !c->reward_command[0])
        return lf_fail(err, "reward function command needs train.reward_command: the program "
                            "that scores the completions");
    if (kind == REWARD_SOFT_OVERLONG &&
        !(c->soft_punish_cache >= 1 && c->soft_punish_cache <= c->max_completion_length))
        return lf_fail(err,
                       "soft_overlong_punishment_reward needs train.soft_punish_cache from 1 to "
                       "max_completion_length %d (it is %d)",
                       c->max_completion_length, c->soft_punish_cache);
    f->kind[i] = (RewardKind)kind;
    f->weight[i] = c->n_reward_weights ? c->reward_weights[i] : 1.0f;
    return 0;
}

int train_config_reward_funcs(const TrainConfig *c, RewardFuncs *f, LfError *err) {
    int n = c->n_reward_funcs ? c->n_reward_funcs : 1;
    *f = (RewardFuncs){.n = n,
                       .normalize_then_sum =
                           !strcmp(c->multi_objective_aggregation, "normalize_then_sum"),
                       .max_completion = c->max_completion_length,
                       .soft_cache = c->soft_punish_cache,
                       .ngram = c->repetition_ngram_size,
                       .max_penalty = c->repetition_max_penalty};
    if (c->n_reward_weights && c->n_reward_weights != n)
        return lf_fail(err, "train.reward_weights has %d weights for %d reward functions",
                       c->n_reward_weights, n);
    if (f->normalize_then_sum && strcmp(c->task, "grpo"))
        return lf_fail(err, "train.multi_objective_aggregation normalize_then_sum is GRPO's");
    for (int i = 0; i < f->n; i++)
        if (reward_func_check(c, i, f, err)) return -1;
    return 0;
}

/* model.task rloo's and grpo's settings, which the other tasks ignore. */
static int rl_check(const TrainConfig *c, LfError *err) {
    const char *t = c->task;
    RewardFuncs f;
    if (train_config_reward_funcs(c, &f, err)) return -1;
    if ((long)c->batch_size * c->num_generations > 1024)
        return lf_fail(err,
                       "train.batch_size %d x train.num_generations %d: a %s batch holds at "
                       "most 1024 rows",
                       c->batch_size, c->num_generations, t);
    if (c->max_prompt_length < 1)
        return lf_fail(err, "model.task %s needs data.max_prompt_length >= 1", t);
    if (c->devices > 1)
        return lf_fail(err, "model.task %s runs on one device (model.devices 1)", t);
    if (!strcmp(c->grpo_loss_type, "vespo") && strcmp(c->importance_sampling_level, "token"))
        return lf_fail(err, "train.grpo_loss_type vespo weighs whole completions itself: "
                            "train.importance_sampling_level must be token");
    if (c->delta != 0 && !(c->delta > 1))
        return lf_fail(err, "train.delta %g: the ratio's cap must be above 1 (0: none)",
                       (double)c->delta);
    if (c->epsilon_high < 0 && c->epsilon_high != -1)
        return lf_fail(err, "train.epsilon_high %g must be >= 0 (or -1: epsilon's value)",
                       (double)c->epsilon_high);
    const float *clip = c->reward_clip_range;
    if (c->n_reward_clip_range &&
        (strcmp(t, "rloo") || c->n_reward_clip_range != 2 || clip[0] > clip[1]))
        return lf_fail(err, "train.reward_clip_range is RLOO's [min, max], min at most max");
    int entropy_terms =
        c->top_entropy_quantile < 1 || c->entropy_coef != 0 || c->use_adaptive_entropy;
    if (strcmp(t, "grpo") && entropy_terms)
        return lf_fail(err, "train.top_entropy_quantile, entropy_coef and use_adaptive_entropy "
                            "are GRPO's (TRL's RLOO has no entropy mask or bonus)");
    if (c->use_adaptive_entropy && c->entropy_coef_min > c->entropy_coef_max)
        return lf_fail(err, "train.entropy_coef_min %g is above train.entropy_coef_max %g",
                       (double)c->entropy_coef_min, (double)c->entropy_coef_max);
    return 0;
}

int train_config_check(const TrainConfig *c, LfError *err) {
    if (!c->model[0])
        return lf_fail(err, "model.model is required (the Hugging Face model directory)");
    if (c->n_labels && c->num_labels && c->n_labels != c->num_labels)
        return lf_fail(err, "model.labels has %d names but model.num_labels is %d", c->n_labels,
                       c->num_labels);
    if (!strcmp(c->eval_strategy, "steps") && c->eval_steps < 1)
        return lf_fail(err, "train.eval_strategy \"steps\" needs train.eval_steps >= 1");
    if (!strcmp(c->save_strategy, "steps") && c->save_steps < 1)
        return lf_fail(err, "train.save_strategy \"steps\" needs train.save_steps >= 1");
    if (!strcmp(c->dpo_loss, "ipo") && c->dpo_label_smoothing > 0)
        return lf_fail(err, "train.dpo_label_smoothing applies to the sigmoid loss, not ipo");
    if ((!strcmp(c->task, "dpo") || !strcmp(c->task, "reward")) &&
        c->max_prompt_length >= c->max_length)
        return lf_fail(err, "data.max_prompt_length %d must be below data.max_length %d",
                       c->max_prompt_length, c->max_length);
    if ((!strcmp(c->task, "rloo") || !strcmp(c->task, "grpo")) && rl_check(c, err)) return -1;
    if (c->devices > 1 && !strcmp(c->device, "cpu"))
        return lf_fail(err,
                       "model.devices %d needs model.device cuda (one process a GPU); the "
                       "cpu trains on all its cores in one process",
                       c->devices);
    if (c->chat_template[0] && c->prompt_template[0])
        return lf_fail(err, "data.chat_template and data.prompt_template: set one");
    if (c->loraplus_lr_ratio > 0 && strcmp(c->strategy, "lora"))
        return lf_fail(err, "train.loraplus_lr_ratio is LoRA+: it needs lora.strategy lora, not %s",
                       c->strategy);
    if (c->use_dora && strcmp(c->strategy, "lora"))
        return lf_fail(err, "lora.use_dora is DoRA: it needs lora.strategy lora, not %s",
                       c->strategy);
    if ((c->n_rank_pattern || c->n_alpha_pattern || c->n_layers) && strcmp(c->strategy, "lora"))
        return lf_fail(err,
                       "lora.rank_pattern, alpha_pattern and layers_to_transform shape LoRA's "
                       "adapters: they need lora.strategy lora, not %s",
                       c->strategy);
    int tokens = !strcmp(c->strategy, "tokens");
    if ((c->n_token_indices || c->n_head_token_indices) && strcmp(c->strategy, "lora") && !tokens)
        return lf_fail(err,
                       "lora.trainable_token_indices and lm_head_token_indices are adapters' "
                       "rows: they need lora.strategy lora or tokens, not %s",
                       c->strategy);
    if (tokens && (c->n_targets || c->n_modules_to_save))
        return lf_fail(err, "lora.target_modules and modules_to_save are LoRA's: lora.strategy "
                            "tokens trains the token rows alone");
    if (tokens && !c->n_token_indices && !c->n_head_token_indices)
        return lf_fail(err, "lora.strategy tokens trains the rows of "
                            "lora.trainable_token_indices: give their token ids");
    for (int i = 0; i < c->n_targets && c->n_targets > 1; i++)
        if (!strcasecmp(c->target_modules[i], LORA_ALL_LINEAR))
            return lf_fail(err, "lora.target_modules: \"%s\" stands alone (every linear layer)",
                           c->target_modules[i]);
    if (c->n_layers_pattern && !c->n_layers)
        return lf_fail(err, "lora.layers_pattern needs lora.layers_to_transform");
    for (int i = 0; i < c->n_layers_pattern; i++)
        if (lora_pattern_check(c->layers_pattern[i], err))
            return lf_wrap(err, "lora.layers_pattern");
    if ((!strcmp(c->init_lora_weights, "pissa") || !strcmp(c->init_lora_weights, "olora")) &&
        c->use_dora)
        return lf_fail(err, "lora.init_lora_weights %s with lora.use_dora is not supported",
                       c->init_lora_weights);
    if (strcmp(c->bias, "none") && strcmp(c->strategy, "lora"))
        return lf_fail(err,
                       "lora.bias %s trains biases beside LoRA's adapters: it needs "
                       "lora.strategy lora, not %s",
                       c->bias, c->strategy);
    return 0;
}

/* ---- saving ---- */

/* The shortest decimal that reads back as the same float (5e-05, not 4.99999987e-05). */
static void float_text(float x, char *buf, size_t cap) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

static cJSON *key_to_json(const TrainConfig *c, const Key *k) {
    const char *src = (const char *)c + k->off;
    char buf[64];
    switch (k->type) {
    case T_STR:
        return cJSON_CreateString(src);
    case T_CHOICE:
        return choice_at(k->choices, *(const int *)src, buf, sizeof buf) ? cJSON_CreateString(buf)
                                                                         : NULL;
    /* numbers as raw text: cJSON's own printing rounds 2^53 to 15 digits */
    case T_INT:
        snprintf(buf, sizeof buf, "%d", *(const int *)src);
        return cJSON_CreateRaw(buf);
    case T_FLOAT:
        float_text(*(const float *)src, buf, sizeof buf);
        return cJSON_CreateRaw(buf);
    case T_U64:
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)*(const uint64_t *)src);
        return cJSON_CreateRaw(buf);
    case T_BOOL:
        return cJSON_CreateBool(*(const int *)src);
    case T_LIST: {
        cJSON *list = cJSON_CreateArray();
        int n = *(const int *)((const char *)c + k->count_off);
        for (int i = 0; list && i < n; i++)
            cJSON_AddItemToArray(list, cJSON_CreateString(src + (size_t)i * k->size));
        return list;
    }
    case T_INTS:
        return cJSON_CreateIntArray((const int *)src,
                                    *(const int *)((const char *)c + k->count_off));
    case T_FLOATS: {
        cJSON *list = cJSON_CreateArray();
        int n = *(const int *)((const char *)c + k->count_off);
        for (int i = 0; list && i < n; i++) {
            float_text(((const float *)src)[i], buf, sizeof buf);
            cJSON_AddItemToArray(list, cJSON_CreateRaw(buf));
        }
        return list;
    }
    case T_MAP: {
        cJSON *map = cJSON_CreateObject();
        const LoraPattern *p = (const LoraPattern *)src;
        for (int i = 0, n = *(const int *)((const char *)c + k->count_off); map && i < n; i++) {
            float_text(p[i].value, buf, sizeof buf);
            cJSON_AddItemToObject(map, p[i].key, cJSON_CreateRaw(buf));
        }
        return map;
    }
    }
    return NULL;
}

static char *config_to_text(const TrainConfig *c) {
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; root && i < N_KEYS; i++) {
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, keys[i].section);
        if (!sec) sec = cJSON_AddObjectToObject(root, keys[i].section);
        cJSON *v = key_to_json(c, &keys[i]);
        if (!sec || !v || !cJSON_AddItemToObject(sec, keys[i].name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(root);
            return NULL;
        }
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return text;
}

int train_config_save(const TrainConfig *c, const char *path, LfError *err) {
    char *text = config_to_text(c);
    if (!text) return lf_fail(err, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print's buffer ends in one NUL we may reuse */
    int rc = file_write_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

/* ---- docs/CONFIG.md ---- */

static void doc_allowed(const Key *k, FILE *out) {
    char buf[96];
    if (k->choices)
        for (int i = 0; choice_at(k->choices, i, buf, sizeof buf); i++)
            fprintf(out, "%s`%s`", i ? ", " : "", buf);
    else if (k->ranged) {
        range_text(k, buf, sizeof buf);
        fprintf(out, "%s%s",
                k->type == T_MAP || k->type == T_INTS || k->type == T_FLOATS ? "values " : "", buf);
    } else if (k->type == T_LIST)
        fprintf(out, "at most %d names of < %zu characters", k->max_items, k->size);
}

void train_config_write_docs(FILE *out) {
    fputs("# Training configuration\n\n"
          "<!-- Generated by `loraft config-docs > docs/CONFIG.md` from the key table in\n"
          "     src/train_config.c; edit the table, not this file. -->\n\n"
          "A config is one JSON object with up to four sections, `model`, `data`, `lora`\n"
          "and `train`. Every key is optional except `model.model`; a missing key keeps\n"
          "the default below. Unknown sections or keys, values of the wrong type and\n"
          "values out of range are errors that name the file, line and key, and suggest\n"
          "the closest known key for a typo.\n\n"
          "Relative paths (model, tokenizer, data files, output_dir) are resolved against\n"
          "the current working directory, as in Hugging Face scripts, not against the\n"
          "config file's directory.\n\n"
          "Any key can be overridden on the command line as `section.key=value`, e.g.\n"
          "`train.learning_rate=1e-3` or `lora.target_modules=q_lin,v_lin`. The value is\n"
          "read as JSON when it parses (numbers, `true`/`false`, `[\"q_lin\",\"v_lin\"]`),\n"
          "else as text; string keys always take the text as is. The trainer saves the\n"
          "effective config, overrides applied, in the run directory.\n\n"
          "## The run directory\n\n"
          "`loraft train` checks the config, model, data and any `--resume` state before\n"
          "it writes anything; a rejected run leaves no trace. Then it locks\n"
          "`train.output_dir` (`flock` on `OUT/.lock`, which holds the owner's pid): a\n"
          "second run into the same directory is refused with that pid. A new run needs an\n"
          "empty (or absent) directory; `--overwrite` removes an earlier run's files first\n"
          "(only loraft's: `train_config.json`, `metrics.jsonl`, `checkpoints/`, `head`,\n"
          "`last`, `best`), and `--resume OUT/last` continues it, appending to its log.\n\n"
          "```\n"
          "OUT/train_config.json         the effective config\n"
          "OUT/metrics.jsonl             one JSON object per log step and evaluation\n"
          "OUT/checkpoints/step-N/       one complete checkpoint per save (adapter or model,\n"
          "                              training state, trainer_state.json)\n"
          "OUT/checkpoints/step-N.links/ last -> ../step-N, best -> ../step-M\n"
          "OUT/head -> checkpoints/step-N.links   moved atomically at every commit\n"
          "OUT/last -> head/last         the latest checkpoint (--resume OUT/last)\n"
          "OUT/best -> head/best         the best one by metric_for_best\n"
          "```\n\n"
          "A checkpoint is written at every save point and whenever an evaluation finds a\n"
          "new best. It is complete and fsynced before `head` moves to it, and that one\n"
          "atomic rename moves `last` and `best` together, so a crash at any moment leaves\n"
          "both complete and in agreement with `last/trainer_state.json`. Checkpoints\n"
          "`head` no longer reaches are deleted afterwards. `last` and `best` are symbolic\n"
          "links: copy them with `cp -rL`. With no `data.validation_file` (or\n"
          "`eval_strategy` \"no\") nothing is evaluated and there is no `best`. Resuming\n"
          "keeps the best checkpoint only when the resumed state is one of `OUT`'s own,\n"
          "and refuses a different `metric_for_best` (an accuracy does not compare with a\n"
          "loss).\n\n"
          "A NaN or infinite training loss or gradient norm stops the run; so does an\n"
          "evaluation with a NaN or infinite loss or logit (`loraft eval` then exits 1).\n"
          "A finite loss above 1e4 (chance level is ln(num_labels), under 9) prints a\n"
          "warning: the weights are diverging.\n",
          out);
    for (size_t s = 0; s < N_SECTIONS; s++) {
        fprintf(out,
                "\n## %s\n\n| key | type | default | allowed | meaning |\n"
                "|---|---|---|---|---|\n",
                sections[s]);
        for (size_t i = 0; i < N_KEYS; i++) {
            const Key *k = &keys[i];
            if (strcmp(k->section, sections[s])) continue;
            fprintf(out, "| `%s` | %s | `%s` | ", k->name, type_name(k->type), k->def);
            doc_allowed(k, out);
            fprintf(out, " | %s |\n", k->help);
        }
    }
}
