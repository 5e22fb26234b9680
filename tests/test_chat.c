/* test_chat.c: chat templates against transformers' apply_chat_template
 * (tests/golden/chat_templates.json, from scripts/make-chat-goldens.py): every golden rendering
 * byte for byte (some with the tokenizer's own BOS / EOS text), every golden error (the
 * template's raise_exception message, or loraft's refusal of what mistral-v0.3 and mistral-nemo
 * would drop), each golden Jinja text recognised as its template (also written with "\n" escapes
 * and a trailing newline), the prompt-is-a-prefix property SFT relies on (and where Qwen3's
 * breaks it), the date of today of Llama 3.2's and of SmolLM3's (when unset), stop strings, and
 * the errors: unknown and missing templates, unknown names, bad roles, empty conversations. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "loraft/chat.h"
#include "loraft/fileio.h"

enum { MAX_MSGS = 8 };

static cJSON *read_json(const char *path) {
    char *text;
    size_t len;
    LfError err;
    if (file_read_all(path, &text, &len, &err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static int messages_of(const cJSON *arr, ChatMessage *msgs) {
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr) {
        if (n == MAX_MSGS) break;
        msgs[n].role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        msgs[n].content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        n++;
    }
    return n;
}

/* Renders and compares with the golden; prints the first differing byte on a mismatch. */
static void check_rendering(const ChatTemplate *t, const ChatMessage *msgs, int n, int gen,
                            const char *want) {
    char *got = NULL;
    size_t len = 0;
    LfError err;
    CHECK_OK(chat_render(t, msgs, n, gen, &got, &len, &err), &err);
    if (!got) return;
    int same = len == strlen(want) && !memcmp(got, want, len) && got[len] == '\0';
    CHECK(same);
    if (!same) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        fprintf(stderr,
                "  %s, %d messages, gen %d: differs at byte %zu:\n  got  \"%s\"\n  want "
                "\"%s\"\n",
                t->name, n, gen, i, got + i, want + i);
    }
    free(got);
}

/* The case's template: by name, with its date (llama3.2) and BOS / EOS text when it has them. */
static int case_template(const cJSON *c, ChatTemplate *t) {
    LfError err;
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
    CHECK_OK(chat_template_by_name(name, t, &err), &err);
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(c, "date"); /* llama3.2's */
    if (cJSON_IsString(date)) t->date = date->valuestring;
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(c, "bos");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(c, "eos");
    if (cJSON_IsString(bos) && cJSON_IsString(eos)) {
        const char *stop = t->stops[0]; /* EOS ends the turns of those that render it */
        chat_template_set_specials(t, bos->valuestring, eos->valuestring);
        CHECK(!strcmp(t->stops[0], t->eos ? eos->valuestring : stop) && !t->stops[1]);
    }
    return t->name != NULL;
}

/* A golden error: the rendering fails, naming the template, with the message. */
static void check_error(const ChatTemplate *t, const ChatMessage *msgs, int n, int gen,
                        const char *want) {
    char *got = NULL;
    size_t len = 0;
    LfError err = {{0}};
    int rc = chat_render(t, msgs, n, gen, &got, &len, &err);
    CHECK(rc == -1 && got == NULL);
    CHECK(strstr(err.msg, want) != NULL && strstr(err.msg, t->name) != NULL);
    if (rc != -1 || !strstr(err.msg, want))
        fprintf(stderr, "  %s, %d messages: want the error \"%s\", got \"%s\"\n", t->name, n, want,
                rc ? err.msg : got);
    free(got);
}

static void test_goldens(const cJSON *root) {
    const cJSON *c;
    int cases = 0, errors = 0, specials = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        ChatTemplate t = {0};
        if (!case_template(c, &t)) continue;
        ChatMessage msgs[MAX_MSGS];
        int n = messages_of(cJSON_GetObjectItemCaseSensitive(c, "messages"), msgs);
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(c, "error");
        if (cJSON_IsString(error))
            check_error(&t, msgs, n, gen, error->valuestring), errors++;
        else
            check_rendering(&t, msgs, n, gen,
                            cJSON_GetObjectItemCaseSensitive(c, "rendered")->valuestring);
        specials += cJSON_GetObjectItemCaseSensitive(c, "bos") != NULL;
        cases++;
    }
    CHECK(cases >= 1064 && errors >= 120 && specials >= 16);
}

/* s with every newline written as the two characters \n, as in a JSON-escaped template. */
static char *escape_newlines(const char *s) {
    char *o = malloc(2 * strlen(s) + 1), *p = o;
    for (; *s; s++) {
        if (*s == '\n')
            *p++ = '\\', *p++ = 'n';
        else
            *p++ = *s;
    }
    *p = '\0';
    return o;
}

static void expect_detected(const char *jinja, const char *name) {
    ChatTemplate t = {0};
    LfError err;
    CHECK_OK(chat_template_detect(jinja, &t, &err), &err);
    CHECK(t.name && !strcmp(t.name, name));
}

static void expect_unrecognised(const char *jinja) {
    ChatTemplate t;
    LfError err = {{0}};
    CHECK(chat_template_detect(jinja, &t, &err) == -1);
    CHECK(strstr(err.msg, "chatml, smollm2, qwen2, qwen2.5, qwen3, qwen3-nothink, smollm3, "
                          "smollm3-nothink, llama3, llama3.1, llama3.2, llama2, mistral, "
                          "mistral-v0.3, mistral-legacy, mistral-nemo, zephyr, gemma, gemma2, "
                          "phi3, phi4-mini, plain") != NULL);
}

static void test_detect(const cJSON *root) {
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(root, "templates")) {
        const char *jinja = t->valuestring;
        expect_detected(jinja, t->string);
        char *escaped = escape_newlines(jinja);
        expect_detected(escaped, t->string);
        free(escaped);
        size_t len = strlen(jinja);
        char *s = malloc(len + 3);
        len -= len && jinja[len - 1] == '\n'; /* Qwen2.5's ends with one */
        memcpy(s, jinja, len);
        s[len] = '\0';
        expect_detected(s, t->string);
        memcpy(s + len, "\n", 2);
        expect_detected(s, t->string); /* Jinja drops one trailing newline */
        memcpy(s + len, "\n\n", 3);
        expect_unrecognised(s); /* but not two */
        memcpy(s, jinja, len);
        s[len] = '\0';
        s[len / 2] = s[len / 2] == 'x' ? 'y' : 'x';
        expect_unrecognised(s);
        free(s);
        n++;
    }
    CHECK(n == 20);
    expect_unrecognised("{{ bos_token }}{% for message in messages %}{{ message['content'] }}"
                        "{% endfor %}");
    ChatTemplate tt;
    LfError err = {{0}};
    CHECK(chat_template_detect(NULL, &tt, &err) == -1 && strstr(err.msg, "no chat template"));
    CHECK(chat_template_detect("", &tt, &err) == -1 && strstr(err.msg, "plain"));
}

static void test_names(void) {
    static const char *names[] = {"chatml",    "smollm2",       "qwen2",          "qwen2.5",
                                  "qwen3",     "qwen3-nothink", "smollm3",        "smollm3-nothink",
                                  "llama3",    "llama3.1",      "llama3.2",       "llama2",
                                  "mistral",   "mistral-v0.3",  "mistral-legacy", "mistral-nemo",
                                  "zephyr",    "gemma",         "gemma2",         "phi3",
                                  "phi4-mini", "plain"};
    for (int i = 0; i < 22; i++) {
        ChatTemplate t;
        LfError err;
        CHECK_OK(chat_template_by_name(names[i], &t, &err), &err);
        CHECK(!strcmp(t.name, names[i]) && t.stops[0] != NULL);
        CHECK(strstr(chat_template_names(), names[i]) != NULL);
    }
    ChatTemplate t;
    LfError err = {{0}};
    CHECK(chat_template_by_name("ChatML", &t, &err) == -1 && strstr(err.msg, "smollm2"));
    CHECK(chat_template_by_name(NULL, &t, &err) == -1);
    CHECK_OK(chat_template_by_name("smollm2", &t, &err), &err);
    CHECK(!strcmp(t.stops[0], "<|im_end|>") && !t.stops[1]);
    CHECK_OK(chat_template_by_name("llama3", &t, &err), &err);
    CHECK(!strcmp(t.stops[0], "<|eot_id|>") && !strcmp(t.stops[1], "<|end_of_text|>"));
    CHECK_OK(chat_template_by_name("llama3.1", &t, &err), &err);
    CHECK(!strcmp(t.stops[1], "<|eom_id|>") && !strcmp(t.stops[2], "<|end_of_text|>") &&
          !t.stops[3] && !strcmp(t.date, "26 Jul 2024"));
    CHECK_OK(chat_template_by_name("llama3.2", &t, &err), &err);
    CHECK(t.date == NULL);
    CHECK_OK(chat_template_by_name("qwen3", &t, &err), &err);
    CHECK(!strcmp(t.stops[0], "<|im_end|>") && !t.stops[1] && !t.default_system);
    for (int i = 0; i < 2; i++) { /* dated SmolLM3's release day, not today */
        CHECK_OK(chat_template_by_name(i ? "smollm3-nothink" : "smollm3", &t, &err), &err);
        CHECK(!strcmp(t.stops[0], "<|im_end|>") && !t.stops[1] && !strcmp(t.date, "08 July 2025"));
        chat_template_set_specials(&t, "<B>", "<E>"); /* renders no BOS / EOS text */
        CHECK(!t.bos && !t.eos && !strcmp(t.stops[0], "<|im_end|>"));
    }
    static const char *eos_ended[] = {"llama2",         "mistral",      "mistral-v0.3",
                                      "mistral-legacy", "mistral-nemo", "zephyr"};
    for (int i = 0; i < 6; i++) { /* their turns end with EOS: "</s>", or the tokenizer's */
        CHECK_OK(chat_template_by_name(eos_ended[i], &t, &err), &err);
        CHECK(!strcmp(t.stops[0], "</s>") && !t.stops[1] && !t.bos && !t.eos);
        chat_template_set_specials(&t, NULL, NULL);
        CHECK(!strcmp(t.stops[0], "</s>") && !t.bos && !t.eos);
        chat_template_set_specials(&t, "<B>", "<E>");
        CHECK(!strcmp(t.eos, "<E>") && !strcmp(t.stops[0], "<E>"));
        CHECK(i < 5 ? t.bos && !strcmp(t.bos, "<B>") : !t.bos); /* zephyr renders no BOS */
    }
    for (int i = 0; i < 2; i++) { /* Gemma's: BOS "<bos>" or the tokenizer's; no EOS */
        CHECK_OK(chat_template_by_name(i ? "gemma2" : "gemma", &t, &err), &err);
        CHECK(!strcmp(t.stops[0], "<end_of_turn>") && !t.stops[1] && !strcmp(t.bos, "<bos>"));
        chat_template_set_specials(&t, "<B>", "<E>");
        CHECK(!strcmp(t.bos, "<B>") && !t.eos && !strcmp(t.stops[0], "<end_of_turn>"));
    }
    /* Phi-3's and Phi-4-mini's: EOS "<|endoftext|>" or the tokenizer's ends a conversation, not
     * a turn */
    for (int i = 0; i < 2; i++) {
        CHECK_OK(chat_template_by_name(i ? "phi4-mini" : "phi3", &t, &err), &err);
        CHECK(!strcmp(t.stops[0], "<|end|>") && !t.stops[1] && !t.bos &&
              !strcmp(t.eos, "<|endoftext|>"));
        chat_template_set_specials(&t, "<B>", "<E>");
        CHECK(!t.bos && !strcmp(t.eos, "<E>") && !strcmp(t.stops[0], "<|end|>") && !t.stops[1]);
    }
    CHECK_OK(chat_template_by_name("chatml", &t, &err), &err); /* renders no BOS / EOS text */
    chat_template_set_specials(&t, "<B>", "<E>");
    CHECK(!t.bos && !t.eos && !strcmp(t.stops[0], "<|im_end|>"));
}

/* t dates its system turn today, as strftime(want_fmt) writes it (local time); a render across
 * midnight is tried once more. */
static void check_today(const ChatTemplate *t, const char *want_fmt) {
    ChatMessage m = {"user", "hi"};
    char *got = NULL, want[96], before[96];
    size_t len = 0;
    LfError err;
    for (int tries = 0; tries < 2; tries++) {
        time_t now = time(NULL);
        struct tm tm;
        strftime(before, sizeof before, want_fmt, localtime_r(&now, &tm));
        free(got);
        CHECK_OK(chat_render(t, &m, 1, 0, &got, &len, &err), &err);
        now = time(NULL);
        strftime(want, sizeof want, want_fmt, localtime_r(&now, &tm));
        if (!strcmp(want, before)) break;
    }
    CHECK(got && strstr(got, want));
    free(got);
}

/* Llama 3.2 dates its system turn today (transformers' strftime_now("%d %b %Y")), and so does
 * SmolLM3's ("%d %B %Y") when its date is unset; Llama 3.1's template writes its own date, loraft's
 * smollm3 SmolLM3's release day unless another is set. */
static void test_today(void) {
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("llama3.2", &t, &err), &err);
    check_today(&t, "Today Date: %d %b %Y\n\n<|eot_id|>");
    CHECK_OK(chat_template_by_name("smollm3", &t, &err), &err);
    t.date = NULL;
    check_today(&t, "\nToday Date: %d %B %Y\nReasoning Mode: /think\n\n");
    ChatMessage m = {"user", "hi"};
    char *got = NULL;
    size_t len = 0;
    CHECK_OK(chat_template_by_name("llama3.1", &t, &err), &err);
    CHECK_OK(chat_render(&t, &m, 1, 0, &got, &len, &err), &err);
    CHECK(got && strstr(got, "\nToday Date: 26 Jul 2024\n\n<|eot_id|>"));
    free(got);
    CHECK_OK(chat_template_by_name("smollm3-nothink", &t, &err), &err);
    t.date = "31 December 2030";
    CHECK_OK(chat_render(&t, &m, 1, 0, &got, &len, &err), &err);
    CHECK(got && strstr(got, "\nToday Date: 31 December 2030\nReasoning Mode: /no_think\n\n"));
    free(got);
}

/* Qwen3 renders a turn by where it stands, so two assistant turns at the end are no longer a
 * prompt and its answer (SFT refuses such an example). */
static void test_qwen3_prefix_break(void) {
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("qwen3", &t, &err), &err);
    ChatMessage msgs[] = {{"user", "Q"}, {"assistant", "A1"}, {"assistant", "A2"}};
    char *prompt = NULL, *full = NULL;
    size_t plen = 0, flen = 0;
    CHECK_OK(chat_render(&t, msgs, 2, 1, &prompt, &plen, &err), &err);
    CHECK_OK(chat_render(&t, msgs, 3, 0, &full, &flen, &err), &err);
    CHECK(prompt && full && memcmp(prompt, full, plen) != 0);
    CHECK(full &&
          !strcmp(full, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                        "<|im_start|>assistant\n<think>\n\n</think>\n\nA2<|im_end|>\n"));
    free(prompt);
    free(full);
}

/* The rendering of a conversation up to an assistant turn starts with the rendering of the
 * turns before it plus the generation prompt; but for qwen3-nothink's answers with reasoning of
 * their own, whose think block is not the prompt's empty one (chat.h). */
static void test_prefix(const cJSON *root) {
    const cJSON *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        ChatMessage msgs[MAX_MSGS];
        int n = messages_of(cJSON_GetObjectItemCaseSensitive(c, "messages"), msgs);
        if (n < 2 || strcmp(msgs[n - 1].role, "assistant") ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")) ||
            cJSON_GetObjectItemCaseSensitive(c, "error"))
            continue;
        ChatTemplate t = {0};
        LfError err;
        if (!case_template(c, &t)) continue;
        char *prompt = NULL, *full = NULL;
        size_t plen = 0, flen = 0;
        CHECK_OK(chat_render(&t, msgs, n - 1, 1, &prompt, &plen, &err), &err);
        CHECK_OK(chat_render(&t, msgs, n, 0, &full, &flen, &err), &err);
        int reasons = 0; /* qwen3-nothink: the last answer's think block is not empty */
        const char *open = "<|im_start|>assistant\n", *empty = "<think>\n\n</think>\n\n";
        for (const char *a = full; t.format == CHAT_FORMAT_QWEN3_NO_THINKING && a;
             a = strstr(a + 1, open))
            if (!strncmp(a, open, strlen(open)))
                reasons = strncmp(a + strlen(open), empty, strlen(empty)) != 0;
        CHECK(prompt && full && plen < flen && !memcmp(prompt, full, plen) == !reasons);
        /* the answer ends its turn: with the end-of-turn token, or plain's blank line; Phi-3's
         * and Phi-4-mini's conversation then ends with EOS */
        const char *end = t.format == CHAT_FORMAT_PLAIN ? "\n\n" : t.stops[0];
        int phi = t.format == CHAT_FORMAT_PHI3 || t.format == CHAT_FORMAT_PHI4_MINI;
        size_t eos = phi ? strlen(t.eos) : 0;
        CHECK(full && flen > strlen(end) + eos &&
              strstr(full + flen - eos - strlen(end) - 1, end) &&
              !strcmp(full + flen - eos, eos ? t.eos : ""));
        free(prompt);
        free(full);
        checked++;
    }
    CHECK(checked >= 100);
}

static void test_errors(void) {
    ChatTemplate t;
    LfError err = {{0}};
    CHECK_OK(chat_template_by_name("chatml", &t, &err), &err);
    char *out = NULL;
    size_t len = 0;
    ChatMessage bad_role[] = {{"user", "hi"}, {"tool", "42"}};
    CHECK(chat_render(&t, bad_role, 2, 1, &out, &len, &err) == -1);
    CHECK(strstr(err.msg, "message 1") && strstr(err.msg, "\"tool\""));
    ChatMessage no_content[] = {{"user", NULL}};
    CHECK(chat_render(&t, no_content, 1, 1, &out, &len, &err) == -1);
    ChatMessage no_role[] = {{NULL, "x"}};
    CHECK(chat_render(&t, no_role, 1, 1, &out, &len, &err) == -1);
    CHECK(chat_render(&t, bad_role, 0, 1, &out, &len, &err) == -1 && strstr(err.msg, "empty"));
    CHECK(out == NULL);
}

/* The [INST] and Gemma templates' errors name the template and the message, then quote the
 * template. */
static void test_inst_errors(void) {
    static const struct {
        const char *name;
        ChatMessage msgs[3];
        int n;
        const char *want;
    } cases[] = {
        {"llama2",
         {{"user", "a"}, {"user", "b"}},
         2,
         "chat template llama2: message 1 (user): Conversation roles must alternate "
         "user/assistant/user/assistant/..."},
        {"llama2",
         {{"system", "s"}, {"assistant", "a"}},
         2,
         "chat template llama2: message 1 (assistant): Conversation roles must alternate"},
        {"mistral",
         {{"user", "q"}, {"system", "s"}},
         2,
         "chat template mistral: message 1 (system): Only user and assistant roles are supported, "
         "with the exception of an initial optional system message!"},
        {"mistral",
         {{"assistant", "a"}},
         1,
         "chat template mistral: message 0 (assistant): After the optional system message, "
         "conversation roles must alternate user/assistant/user/assistant/..."},
        {"mistral-legacy",
         {{"system", "s"}, {"user", "q"}},
         2,
         "chat template mistral-legacy: message 0 (system): Conversation roles must alternate"},
        {"mistral-legacy",
         {{"user", "q"}, {"system", "s"}},
         2,
         "chat template mistral-legacy: message 1 (system): Only user and assistant roles are "
         "supported!"},
        /* v3 checks the alternation of every turn first: message 2's error, not message 1's */
        {"mistral-v0.3",
         {{"user", "q"}, {"system", "s"}, {"system", "t"}},
         3,
         "chat template mistral-v0.3: message 2 (system): After the optional system message"},
        {"mistral-v0.3",
         {{"system", "s"}, {"user", "q"}, {"assistant", "a"}},
         3,
         "chat template mistral-v0.3: message 0 (system): the template renders the system "
         "message only in a conversation that ends with a user turn"},
        {"mistral-nemo",
         {{"user", "q"}, {"system", "s"}, {"system", "t"}},
         3,
         "chat template mistral-nemo: message 2 (system): After the optional system message"},
        {"mistral-nemo",
         {{"system", "s"}, {"assistant", "a"}},
         2,
         "chat template mistral-nemo: message 1 (assistant): After the optional system message"},
        {"mistral-nemo",
         {{"system", "s"}},
         1,
         "chat template mistral-nemo: message 0 (system): the template renders the system "
         "message only in a conversation that ends with a user turn"},
        /* Gemma 2 refuses a system turn before it checks the turns after it */
        {"gemma2",
         {{"system", "s"}, {"assistant", "a"}},
         2,
         "chat template gemma2: message 0 (system): System role not supported"},
        {"gemma2",
         {{"user", "q"}, {"assistant", "a"}, {"assistant", "b"}},
         3,
         "chat template gemma2: message 2 (assistant): Conversation roles must alternate"},
        {"gemma",
         {{"system", "s"}, {"assistant", "a"}},
         2,
         "chat template gemma: message 1 (assistant): Conversation roles must alternate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ChatTemplate t;
        LfError err = {{0}};
        CHECK_OK(chat_template_by_name(cases[i].name, &t, &err), &err);
        for (int gen = 0; gen < 2; gen++) {
            char *out = NULL;
            size_t len = 0;
            CHECK(chat_render(&t, cases[i].msgs, cases[i].n, gen, &out, &len, &err) == -1);
            CHECK(out == NULL && strstr(err.msg, cases[i].want) != NULL);
            if (!strstr(err.msg, cases[i].want))
                fprintf(stderr, "  want \"%s\"\n  got  \"%s\"\n", cases[i].want, err.msg);
        }
    }
    /* Llama 2 drops a later system turn at an odd place, as its template does */
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("llama2", &t, &err), &err);
    ChatMessage dropped[] = {{"user", "q"}, {"system", "s"}, {"user", "r"}};
    check_rendering(&t, dropped, 3, 1, "<s>[INST] q [/INST]<s>[INST] r [/INST]");
}

/* Mistral's v3 templates put the system message into the conversation's last turn, a user turn:
 * SFT's prompt renders, the whole example is refused (transformers would drop the system
 * message). Nemo's writes no space after [INST] and before an answer, which it does not strip. */
static void test_mistral_v3_system(void) {
    static const struct {
        const char *name, *first, *second, *answers;
    } cases[] = {
        {"mistral-v0.3", "<s>[INST] S\n\nQ1[/INST]",
         "<s>[INST] Q1[/INST] A1</s>[INST] S\n\nQ2[/INST]",
         "<s>[INST] Q1[/INST] A1</s>[INST] Q2[/INST] A2</s>"},
        {"mistral-nemo", "<s>[INST]S\n\nQ1[/INST]",
         "<s>[INST]Q1[/INST] A1 </s>[INST]S\n\nQ2[/INST]",
         "<s>[INST]Q1[/INST] A1 </s>[INST]Q2[/INST]A2</s>"},
    };
    ChatMessage msgs[] = {{"system", "S"},
                          {"user", "Q1"},
                          {"assistant", " A1 "},
                          {"user", "Q2"},
                          {"assistant", "A2"}};
    for (int i = 0; i < 2; i++) {
        ChatTemplate t;
        LfError err = {{0}};
        CHECK_OK(chat_template_by_name(cases[i].name, &t, &err), &err);
        check_rendering(&t, msgs, 2, 1, cases[i].first);
        check_rendering(&t, msgs, 4, 1, cases[i].second);
        char *out = NULL;
        size_t len = 0;
        for (int n = 1; n <= 5; n += 2) { /* the system turn alone, or the answers */
            CHECK(chat_render(&t, msgs, n, 0, &out, &len, &err) == -1 && out == NULL);
            CHECK(strstr(err.msg, "loraft refuses the system message rather than drop it"));
        }
        check_rendering(&t, msgs + 1, 4, 0, cases[i].answers);
    }
}

/* Renderings with nothing in them are "", not NULL; a BOS of "" (set so) renders nothing. */
static void test_inst_specials(void) {
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("llama2", &t, &err), &err);
    ChatMessage sys = {"system", "only a system turn"};
    char *out = NULL;
    size_t len = 1;
    CHECK_OK(chat_render(&t, &sys, 1, 1, &out, &len, &err), &err);
    CHECK(out && len == 0 && out[0] == '\0');
    free(out);
    ChatMessage msgs[] = {{"user", "q"}, {"assistant", "a"}};
    chat_template_set_specials(&t, "", "<|endoftext|>");
    check_rendering(&t, msgs, 2, 0, "[INST] q [/INST] a <|endoftext|>");
    CHECK_OK(chat_template_by_name("mistral", &t, &err), &err);
    chat_template_set_specials(&t, "<|bos|>", NULL); /* NULL: EOS stays "</s>" */
    check_rendering(&t, msgs, 2, 0, "<|bos|> [INST] q [/INST] a</s>");
    CHECK(!strcmp(t.stops[0], "</s>"));
    CHECK_OK(chat_template_by_name("zephyr", &t, &err), &err);
    check_rendering(&t, msgs, 1, 1, "<|user|>\nq</s>\n<|assistant|>\n");
    CHECK_OK(chat_template_by_name("phi3", &t, &err), &err);
    chat_template_set_specials(&t, "<B>", "<E>");
    check_rendering(&t, msgs, 2, 0, "<|user|>\nq<|end|>\n<|assistant|>\na<|end|>\n<E>");
    CHECK_OK(chat_template_by_name("phi4-mini", &t, &err), &err);
    check_rendering(&t, msgs, 1, 1, "<|user|>q<|end|><|assistant|>");
    chat_template_set_specials(&t, "<B>", "<E>");
    check_rendering(&t, msgs, 2, 0, "<|user|>q<|end|><|assistant|>a<|end|><E>");
}

/* Llama-3's trim on content that is not valid UTF-8, or is all whitespace: only whole
 * whitespace code points go, as Python would strip the same text decoded with surrogateescape. */
static void test_llama3_trim(void) {
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("llama3", &t, &err), &err);
    struct {
        const char *content, *want;
    } cases[] = {
        {" \xff x \xe3\x80", "\xff x \xe3\x80"},
        {"\xe3\x80\x80\xe3\x80\x80", ""},
        {"\x80 \xc2\xa0", "\x80"},
        {" \t\n", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ChatMessage m = {"user", cases[i].content};
        char want[128];
        snprintf(want, sizeof want,
                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>",
                 cases[i].want);
        check_rendering(&t, &m, 1, 0, want);
    }
}

int main(void) {
    cJSON *root = read_json("tests/golden/chat_templates.json");
    CHECK(root != NULL);
    if (!root) return check_report();
    test_goldens(root);
    test_detect(root);
    test_names();
    test_today();
    test_qwen3_prefix_break();
    test_prefix(root);
    test_errors();
    test_inst_errors();
    test_mistral_v3_system();
    test_inst_specials();
    test_llama3_trim();
    cJSON_Delete(root);
    return check_report();
}
