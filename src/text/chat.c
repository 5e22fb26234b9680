/* chat.c: the built-in chat templates of chat.h, their recognition from Jinja text and their
 * renderers. The known Jinja texts are kept here verbatim (newlines as characters); the
 * renderers are written out by hand from them and checked against transformers' output by
 * tests/test_chat.c. Not a Jinja interpreter, and nothing here tokenizes. */
#include "loraft/chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/utf8.h"

#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define QWEN2_SYSTEM "You are a helpful assistant."
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

/* ChatML with a default system turn, as Qwen1.5 and Qwen2 wrote it and SmolLM2 kept it */
#define CHATML_WITH_SYSTEM(system)                                                                 \
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "      \
    "'<|im_start|>system\n" system "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "                \
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "        \
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

/* Qwen2.5-Instruct's template (tokenizer_config.json's chat_template, Jinja's own escapes kept):
 * with tools declared or assistant tool calls it renders more, which loraft does not; without,
 * ChatML with a default system turn. */
static const char QWEN25_JINJA[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- '" QWEN25_SYSTEM "' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user "
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML "
    "tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": "
    "<function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\n" QWEN25_SYSTEM "<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' "
    "}}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

static const ChatTemplate templates[] = {
    {"chatml", CHAT_FORMAT_CHATML, NULL, {"<|im_end|>", NULL, NULL}},
    {"smollm2", CHAT_FORMAT_CHATML, SMOLLM2_SYSTEM, {"<|im_end|>", NULL, NULL}},
    {"qwen2", CHAT_FORMAT_CHATML, QWEN2_SYSTEM, {"<|im_end|>", NULL, NULL}},
    {"qwen2.5", CHAT_FORMAT_CHATML, QWEN25_SYSTEM, {"<|im_end|>", NULL, NULL}},
    {"llama3", CHAT_FORMAT_LLAMA3, NULL, {"<|eot_id|>", "<|end_of_text|>", NULL}},
    {"plain", CHAT_FORMAT_PLAIN, NULL, {"\nUser:", NULL, NULL}},
};
enum { N_TEMPLATES = sizeof templates / sizeof templates[0] };

/* Jinja texts recognised, each with the name of the template it renders as. */
static const struct {
    const char *name, *jinja;
} known[] = {
    {"chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
               "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
               "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"},
    {"smollm2", CHATML_WITH_SYSTEM(SMOLLM2_SYSTEM)},
    {"qwen2", CHATML_WITH_SYSTEM(QWEN2_SYSTEM)},
    {"qwen2.5", QWEN25_JINJA},
    {"llama3", "{% set loop_messages = messages %}{% for message in loop_messages %}{% set "
               "content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
               "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set "
               "content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
               "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' "
               "}}{% endif %}"},
    {"plain", "{% for message in messages %}{% if message['role'] == 'system' %}{{ "
              "message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}{{ 'User: ' + "
              "message['content'] + '\n\n' }}{% else %}{{ 'Assistant: ' + message['content'] + "
              "'\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' "
              "}}{% endif %}"},
};
enum { N_KNOWN = sizeof known / sizeof known[0] };

const char *chat_template_names(void) {
    return "chatml, smollm2, qwen2, qwen2.5, llama3, plain";
}

int chat_template_by_name(const char *name, ChatTemplate *out, LfError *err) {
    for (int i = 0; i < N_TEMPLATES; i++) {
        if (name && !strcmp(name, templates[i].name)) {
            *out = templates[i];
            return 0;
        }
    }
    return lf_fail(err, "unknown chat template name \"%s\" (built-in: %s)", name ? name : "(null)",
                   chat_template_names());
}

/* jinja with each "\n" escape turned into a newline ("\\" stays as it is) and one trailing
 * newline dropped; NULL when out of memory. */
static char *normalise_jinja(const char *jinja) {
    size_t n = strlen(jinja), o = 0;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (jinja[i] == '\\' && jinja[i + 1] == 'n') {
            s[o++] = '\n';
            i++;
        } else if (jinja[i] == '\\' && jinja[i + 1] == '\\') {
            s[o++] = jinja[i++];
            s[o++] = jinja[i];
        } else {
            s[o++] = jinja[i];
        }
    }
    if (o && s[o - 1] == '\n') o--;
    s[o] = '\0';
    return s;
}

int chat_template_detect(const char *jinja, ChatTemplate *out, LfError *err) {
    if (!jinja || !*jinja)
        return lf_fail(err,
                       "the model has no chat template; choose one by name (built-in: %s; "
                       "plain suits base models)",
                       chat_template_names());
    char *s = normalise_jinja(jinja);
    if (!s) return lf_fail(err, "chat template: out of memory");
    const char *name = NULL;
    for (int i = 0; i < N_KNOWN && !name; i++) { /* the known texts as a model carries them */
        char *k = normalise_jinja(known[i].jinja);
        if (!k) return free(s), lf_fail(err, "chat template: out of memory");
        if (!strcmp(s, k)) name = known[i].name;
        free(k);
    }
    free(s);
    if (name) return chat_template_by_name(name, out, err);
    return lf_fail(err,
                   "unrecognised chat template (%zu bytes, begins \"%.60s\"); loraft renders "
                   "only its built-in templates, choose one by name: %s",
                   strlen(jinja), jinja, chat_template_names());
}

/* ---- rendering ---- */

typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

/* Python's str.isspace() code points (str.strip() with no argument removes these). */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of the whitespace code point at s[0..n), 0 if s does not start with one. */
static size_t space_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[0];
    int len = c < 0x80 ? 1 : utf8_decode(u, n, &c);
    return len && py_space(c) ? (size_t)len : 0;
}

/* Length of the whitespace code point that ends s[0..n), 0 if none. Invalid UTF-8 is not
 * whitespace. */
static size_t space_before(const char *s, size_t n) {
    size_t start = n - 1;
    while (start > 0 && n - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
    size_t len = space_at(s + start, n - start);
    return len == n - start ? len : 0;
}

/* Jinja's trim filter, i.e. Python's str.strip(), as a [begin, end) range of s. */
static void py_strip(const char *s, size_t *begin, size_t *end) {
    size_t b = 0, e = strlen(s), k;
    while (b < e && (k = space_at(s + b, e - b))) b += k;
    while (e > b && (k = space_before(s + b, e - b))) e -= k;
    *begin = b;
    *end = e;
}

static void render_chatml(const ChatTemplate *t, const ChatMessage *m, int i, Buf *b) {
    if (i == 0 && t->default_system && strcmp(m->role, "system")) {
        buf_str(b, "<|im_start|>system\n");
        buf_str(b, t->default_system);
        buf_str(b, "<|im_end|>\n");
    }
    buf_str(b, "<|im_start|>");
    buf_str(b, m->role);
    buf_str(b, "\n");
    buf_str(b, m->content);
    buf_str(b, "<|im_end|>\n");
}

static void render_llama3(const ChatMessage *m, int i, Buf *b) {
    size_t begin, end;
    py_strip(m->content, &begin, &end);
    if (i == 0) buf_str(b, "<|begin_of_text|>");
    buf_str(b, "<|start_header_id|>");
    buf_str(b, m->role);
    buf_str(b, "<|end_header_id|>\n\n");
    buf_add(b, m->content + begin, end - begin);
    buf_str(b, "<|eot_id|>");
}

static void render_plain(const ChatMessage *m, Buf *b) {
    if (!strcmp(m->role, "user")) buf_str(b, "User: ");
    if (!strcmp(m->role, "assistant")) buf_str(b, "Assistant: ");
    buf_str(b, m->content);
    buf_str(b, "\n\n");
}

static const char *generation_prompt(ChatFormat f) {
    switch (f) {
    case CHAT_FORMAT_CHATML:
        return "<|im_start|>assistant\n";
    case CHAT_FORMAT_LLAMA3:
        return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case CHAT_FORMAT_PLAIN:
        return "Assistant:";
    }
    return "";
}

static int check_messages(const ChatMessage *msgs, int n, LfError *err) {
    if (n < 1) return lf_fail(err, "chat template: empty conversation");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")))
            return lf_fail(err, "chat message %d: role \"%s\" is not system, user or assistant", i,
                           r ? r : "(null)");
        if (!msgs[i].content) return lf_fail(err, "chat message %d (%s): no content", i, r);
    }
    return 0;
}

int chat_render(const ChatTemplate *t, const ChatMessage *msgs, int n, int add_generation_prompt,
                char **out, size_t *len, LfError *err) {
    if (check_messages(msgs, n, err)) return -1;
    Buf b = {0};
    for (int i = 0; i < n; i++) {
        if (t->format == CHAT_FORMAT_CHATML) render_chatml(t, &msgs[i], i, &b);
        if (t->format == CHAT_FORMAT_LLAMA3) render_llama3(&msgs[i], i, &b);
        if (t->format == CHAT_FORMAT_PLAIN) render_plain(&msgs[i], &b);
    }
    if (add_generation_prompt) buf_str(&b, generation_prompt(t->format));
    if (b.oom) {
        free(b.p);
        return lf_fail(err, "chat template %s: out of memory", t->name);
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
