/* test_chat.c: chat templates against transformers' apply_chat_template
 * (tests/golden/chat_templates.json, from scripts/make-chat-goldens.py): every golden rendering
 * byte for byte, each golden Jinja text recognised as its template (also written with "\n"
 * escapes and a trailing newline), the prompt-is-a-prefix property SFT relies on (and where
 * Qwen3's breaks it), Llama 3.2's date of today, stop strings, and the errors: unknown and missing
 * templates, unknown names, bad roles, empty conversations. */
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

static void test_goldens(const cJSON *root) {
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        ChatTemplate t;
        LfError err;
        CHECK_OK(chat_template_by_name(name, &t, &err), &err);
        const cJSON *date = cJSON_GetObjectItemCaseSensitive(c, "date"); /* llama3.2's */
        if (cJSON_IsString(date)) t.date = date->valuestring;
        ChatMessage msgs[MAX_MSGS];
        int n = messages_of(cJSON_GetObjectItemCaseSensitive(c, "messages"), msgs);
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        check_rendering(&t, msgs, n, gen,
                        cJSON_GetObjectItemCaseSensitive(c, "rendered")->valuestring);
        cases++;
    }
    CHECK(cases >= 270);
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
    CHECK(strstr(err.msg, "chatml, smollm2, qwen2, qwen2.5, qwen3, llama3, llama3.1, llama3.2, "
                          "plain") != NULL);
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
    CHECK(n == 9);
    expect_unrecognised("{{ bos_token }}{% for message in messages %}{{ message['content'] }}"
                        "{% endfor %}");
    ChatTemplate tt;
    LfError err = {{0}};
    CHECK(chat_template_detect(NULL, &tt, &err) == -1 && strstr(err.msg, "no chat template"));
    CHECK(chat_template_detect("", &tt, &err) == -1 && strstr(err.msg, "plain"));
}

static void test_names(void) {
    static const char *names[] = {"chatml", "smollm2",  "qwen2",    "qwen2.5", "qwen3",
                                  "llama3", "llama3.1", "llama3.2", "plain"};
    for (int i = 0; i < 9; i++) {
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
}

/* Llama 3.2 dates its system turn today (transformers' strftime_now("%d %b %Y"), local time)
 * unless a date is set; Llama 3.1's template writes its own. */
static void test_llama32_today(void) {
    ChatTemplate t;
    LfError err;
    CHECK_OK(chat_template_by_name("llama3.2", &t, &err), &err);
    ChatMessage m = {"user", "hi"};
    char *got = NULL, want[64], before[16];
    size_t len = 0;
    for (int tries = 0; tries < 2; tries++) { /* a render across midnight: once more */
        time_t now = time(NULL);
        struct tm tm;
        strftime(before, sizeof before, "%d %b %Y", localtime_r(&now, &tm));
        free(got);
        CHECK_OK(chat_render(&t, &m, 1, 0, &got, &len, &err), &err);
        now = time(NULL);
        strftime(want, sizeof want, "Today Date: %d %b %Y\n\n<|eot_id|>", localtime_r(&now, &tm));
        if (strstr(want, before)) break;
    }
    CHECK(got && strstr(got, want) &&
          strlen(want) == strlen("Today Date: 03 Dec 2026\n\n<|eot_id|>"));
    free(got);
    CHECK_OK(chat_template_by_name("llama3.1", &t, &err), &err);
    CHECK_OK(chat_render(&t, &m, 1, 0, &got, &len, &err), &err);
    CHECK(got && strstr(got, "\nToday Date: 26 Jul 2024\n\n<|eot_id|>"));
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
 * turns before it plus the generation prompt. */
static void test_prefix(const cJSON *root) {
    const cJSON *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        ChatMessage msgs[MAX_MSGS];
        int n = messages_of(cJSON_GetObjectItemCaseSensitive(c, "messages"), msgs);
        if (n < 2 || strcmp(msgs[n - 1].role, "assistant") ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")))
            continue;
        ChatTemplate t;
        LfError err;
        CHECK_OK(chat_template_by_name(cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring,
                                       &t, &err),
                 &err);
        char *prompt = NULL, *full = NULL;
        size_t plen = 0, flen = 0;
        CHECK_OK(chat_render(&t, msgs, n - 1, 1, &prompt, &plen, &err), &err);
        CHECK_OK(chat_render(&t, msgs, n, 0, &full, &flen, &err), &err);
        CHECK(prompt && full && plen < flen && !memcmp(prompt, full, plen));
        /* the answer ends its turn: with the end-of-turn token, or plain's blank line */
        const char *end = t.format == CHAT_FORMAT_PLAIN ? "\n\n" : t.stops[0];
        CHECK(full && flen > strlen(end) && strstr(full + flen - strlen(end) - 1, end));
        free(prompt);
        free(full);
        checked++;
    }
    CHECK(checked >= 4);
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
    test_llama32_today();
    test_qwen3_prefix_break();
    test_prefix(root);
    test_errors();
    test_llama3_trim();
    cJSON_Delete(root);
    return check_report();
}
