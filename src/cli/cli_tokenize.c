/* cli_tokenize.c: `loraft tokenize`: token ids for each line of stdin, one JSON object per line
 * on stdout. A line starting with '{' is JSON with a "text" field, read as the JSONL loader reads
 * it (so the ids are the ones training uses); any other line is the text itself. The tokenizer
 * is BERT WordPiece or byte-level BPE, whichever --tokenizer holds (text.h). For checking
 * tokenizers against Hugging Face, not for training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/cli.h"
#include "loraft/data.h"
#include "loraft/text.h"

typedef struct TokenizeOpts {
    const char *dir, *side;
    int max_length, no_special;
} TokenizeOpts;

/* The text of one input line[0..len): the line itself, or the "text" of a JSON object read
 * as the JSONL loader reads it (\u0000 included). *owned is the text to free afterwards. */
static int line_text(const char *line, size_t len, long lineno, const char **text, size_t *text_len,
                     char **owned, LfError *err) {
    *owned = NULL;
    if (len && line[len - 1] == '\n') len--;
    if (line[0] != '{') {
        *text = line;
        *text_len = len;
        return 0;
    }
    const DatasetSpec spec = {.path = "stdin", .text_column = "text"};
    int label;
    if (jsonl_record(&spec, line, len, lineno, owned, text_len, &label, err)) return -1;
    *text = *owned;
    return 0;
}

/* Encodes text and writes {"ids":[...]}, with the special tokens ([CLS]/[SEP] for WordPiece,
 * the tokenizer's BOS/EOS for BPE) and truncation as asked. */
static int write_ids(const TextTokenizer *tok, const TokenizeOpts *o, const char *text, size_t len,
                     IdList *ids, IdList *buf, LfError *err) {
    int left = !strcmp(o->side, "left"), bpe = tok->kind == TEXT_BPE;
    ids->n = 0;
    if (bpe ? bpe_encode(tok->bpe, text, len, !o->no_special, ids, err)
            : text_encode(tok, text, len, ids, err))
        return -1;
    int n = (int)ids->n, max = o->max_length > 0 ? o->max_length : n + 2;
    const int32_t *out = ids->ids;
    if (!o->no_special && !bpe) {
        buf->n = 0;
        for (int i = 0; i < max; i++)
            if (idlist_push(buf, 0, err)) return -1;
        n = tokenizer_build_inputs(tok->wordpiece, ids->ids, (int)ids->n, NULL, 0, max, left,
                                   buf->ids, NULL);
        if (n < 0) return lf_fail(err, "--max-length %d cannot hold [CLS] and [SEP]", max);
        out = buf->ids;
    } else if (o->max_length > 0 && n > o->max_length) {
        out += left ? n - o->max_length : 0;
        n = o->max_length;
    }
    fputs("{\"ids\":[", stdout);
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", out[i]);
    fputs("]}\n", stdout);
    return 0;
}

static int tokenize_stdin(const TextTokenizer *tok, const TokenizeOpts *o) {
    IdList ids = {0}, buf = {0};
    LfError err;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    for (long lineno = 1; !rc && (len = getline(&line, &cap, stdin)) >= 0; lineno++) {
        const char *text;
        char *owned;
        size_t text_len;
        if (line_text(line, (size_t)len, lineno, &text, &text_len, &owned, &err)) {
            fprintf(stderr, "loraft tokenize: %s\n", err.msg);
            rc = -1;
        } else if (write_ids(tok, o, text, text_len, &ids, &buf, &err)) {
            fprintf(stderr, "loraft tokenize: stdin:%ld: %s\n", lineno, err.msg);
            rc = -1;
        }
        free(owned);
    }
    free(line);
    idlist_free(&ids);
    idlist_free(&buf);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    TokenizeOpts o = {.side = "right"};
    const CliOpt opts[] = {
        {"tokenizer", OPT_STR, &o.dir,
         "a directory (tokenizer.json, vocab.json + merges.txt, or vocab.txt), a tokenizer.json "
         "or a .gguf file"},
        {"max-length", OPT_INT, &o.max_length, "truncate to N ids, special tokens included"},
        {"truncation-side", OPT_STR, &o.side, "right (default) or left"},
        {"no-special", OPT_FLAG, &o.no_special,
         "do not add [CLS]/[SEP] (WordPiece), BOS/EOS (BPE)"},
    };
    int rc = cli_parse("loraft tokenize --tokenizer DIR|FILE [options] < lines", opts, 4, NULL,
                       argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.dir || (strcmp(o.side, "left") && strcmp(o.side, "right")) || o.max_length < 0) {
        fprintf(stderr, "loraft tokenize: need --tokenizer DIR; --truncation-side is left or "
                        "right; --max-length >= 0\n");
        return 2;
    }
    TextTokenizer tok;
    LfError err;
    if (text_tokenizer_open(&tok, o.dir, &err)) {
        fprintf(stderr, "loraft tokenize: %s\n", err.msg);
        return 1;
    }
    rc = tokenize_stdin(&tok, &o);
    text_tokenizer_close(&tok);
    if (fflush(stdout)) rc = -1;
    return rc ? 1 : 0;
}
