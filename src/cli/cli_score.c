/* cli_score.c: `loraft score` prints a reward model's score of each prompt / response record of
 * a JSONL file, one per line in file order: the score head at the row's last non-pad token, rows
 * built and truncated as in training (pref_data.h). */
#include <stdio.h>
#include <stdlib.h>

#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/objective.h"
#include "loraft/pref_data.h"

/* Scores every row of the loader's set in order. */
static int score_rows(Model *m, PrefLoader *l, LfError *err) {
    Batch b;
    float loss, score;
    while (pref_loader_next(l, &b)) {
        if (model_set_batch(m, b.ids, NULL, b.mask, NULL, b.B, b.T, err) ||
            model_forward(m, 0, &loss, err))
            return -1;
        for (int i = 0; i < b.B; i++) {
            int t = reward_last_token(b.labels + (size_t)i * b.T, b.T, m->cfg.pad_token_id);
            if (model_lm_logits(m, i * b.T + t, 1, &score, err)) return -1;
            printf("%.6f\n", score);
        }
    }
    return 0;
}

/* The model's tokenizer and the records as rows. */
static int load_rows(const Model *m, const char *model, const char *path, const char *chat_name,
                     int max_len, int max_prompt, TextTokenizer *tok, PrefSet *set, LfError *err) {
    ChatTemplate chat;
    LmSpecials sp;
    if (chat_name && chat_template_by_name(chat_name, &chat, err))
        return lf_wrap(err, "--chat-template");
    if (text_tokenizer_open(tok, model, err) || lm_specials(&sp, tok, err)) return -1;
    if (chat_name && tok->kind == TEXT_BPE) /* the tokenizer's BOS / EOS text, where rendered */
        chat_template_set_vocab_specials(&chat, tok->bpe);
    if (m->cfg.eos_token_id >= 0) sp.eos = m->cfg.eos_token_id;
    PrefSpec spec = {.path = path,
                     .kind = PREF_SINGLE,
                     .max_length = max_len,
                     .max_prompt_length = max_prompt,
                     .chat = chat_name ? &chat : NULL,
                     .sp = &sp};
    return pref_set_load(set, &spec, tok, err);
}

int cmd_score(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *chat = NULL;
    CliRuntime rt = CLI_RUNTIME_DEFAULTS;
    int max_len = 512, max_prompt = 128, batch = 8;
    CliList files = {0};
    const CliOpt opts[] = {
        {"model", OPT_STR, &model, "base HF model directory or .gguf file [required]"},
        {"adapter", OPT_STR, &adapter,
         "reward-model adapter (PEFT SEQ_CLS); none for a merged reward model"},
        {"max-length", OPT_INT, &max_len, "tokens per row (default 512)"},
        {"max-prompt-length", OPT_INT, &max_prompt, "tokens a long prompt keeps (default 128)"},
        {"chat-template", OPT_STR, &chat, "render prompts with this built-in chat template"},
        {"batch-size", OPT_INT, &batch, "rows per forward pass (default 8)"},
        CLI_RUNTIME_OPTS(rt),
    };
    int rc = cli_parse("loraft score --model M [--adapter A] FILE.jsonl (records {\"prompt\", "
                       "\"response\"}; prints one score per line)",
                       opts, sizeof opts / sizeof *opts, &files, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model || files.n != 1 || batch < 1 || max_len < 2)
        return fprintf(stderr, "loraft score: --model and one FILE.jsonl are required; "
                               "--batch-size >= 1, --max-length >= 2\n"),
               2;
    LfError err;
    Model m;
    TextTokenizer tok = {0};
    PrefSet set = {0};
    PrefLoader l = {0};
    const Ops *ops;
    BaseDtype dtype;
    Precision prec;
    if (cli_runtime(&rt, &ops, &dtype, &prec, &err) ||
        model_open(&m, model, adapter, dtype, prec, ops, batch, max_len, &err)) {
        fprintf(stderr, "loraft score: %s\n", err.msg);
        return 1;
    }
    rc = m.spec.task == TASK_REWARD
             ? 0
             : lf_fail(&err,
                       "%s is not a reward model (a PEFT SEQ_CLS adapter on a decoder, or a "
                       "merged LlamaForSequenceClassification)",
                       adapter ? adapter : model);
    if (!rc) rc = load_rows(&m, model, files.items[0], chat, max_len, max_prompt, &tok, &set, &err);
    if (!rc) /* padding is masked: any id the model embeds */
        rc = pref_loader_init(&l, &set, batch, m.cfg.eos_token_id > 0 ? m.cfg.eos_token_id : 0, 0,
                              &err);
    if (!rc) rc = score_rows(&m, &l, &err);
    if (rc) fprintf(stderr, "loraft score: %s\n", err.msg);
    pref_loader_free(&l);
    pref_set_free(&set);
    text_tokenizer_close(&tok);
    model_free(&m);
    return rc ? 1 : 0;
}
