/* lora_targets.c: PEFT's rank_pattern, alpha_pattern and layers_to_transform rules (see
 * lora_targets.h). PEFT's keys are Python regular expressions; POSIX <regex.h> matches them once
 * Python's shorthands are written out, and only whether a name matches is asked, so greediness
 * does not matter. */
#include "loraft/lora_targets.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h> /* strtol */
#include <string.h>

/* Python's \d \w \s (and their negations) as POSIX classes; inside brackets without the
 * brackets. NULL for any other letter. */
static const char *shorthand(char c, int in_brackets) {
    static const char *const names[][3] = {{"d", "0-9", "[0-9]"},
                                           {"D", NULL, "[^0-9]"},
                                           {"w", "[:alnum:]_", "[[:alnum:]_]"},
                                           {"W", NULL, "[^[:alnum:]_]"},
                                           {"s", "[:space:]", "[[:space:]]"},
                                           {"S", NULL, "[^[:space:]]"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i][0][0] == c) return names[i][1 + !in_brackets];
    return NULL;
}

/* The most a counted repetition ({m}, {m,}, {m,n}) at p repeats: its largest number. */
static long repeats(const char *p) {
    long most = 0, n = 0;
    for (p++; *p && *p != '}'; p++) {
        n = isdigit((unsigned char)*p) ? (n < 1000000 ? 10 * n + (*p - '0') : n) : 0;
        most = n > most ? n : most;
    }
    return most;
}

/* glibc's regcomp copies the operand of a + twice and of a {m,n} n times, so that nested ones
 * multiply: the product over a key is held to this. */
#define MAX_COPIES 4096

/* Writes key as a POSIX extended expression into out; -1 (with the reason) where it uses what
 * POSIX cannot say. A quantifier may not follow another but as Python's lazy '?', which is
 * dropped (Python refuses the others, or reads them as possessive). */
static int to_posix(const char *key, char *out, size_t cap, LfError *err) {
    size_t at = 0;
    int brackets = 0, after = 0; /* after a quantifier: 1; after its lazy '?': 2 */
    const char *open = NULL;     /* the bracket expression's '[' */
    double copies = 1;
    for (const char *p = key; *p; p++) {
        char buf[3] = {*p, 0, 0};
        const char *put = buf;
        size_t len = 1;
        int quantifier = !brackets && strchr("*+?{", *p);
        if (*p == '\\') {
            char c = p[1] ? *++p : 0;
            const char *s = c ? shorthand(c, brackets) : NULL;
            if (s)
                put = s, len = strlen(s);
            else if (c && ispunct((unsigned char)c) && !brackets)
                buf[1] = c, len = 2; /* an escaped character stays escaped */
            else if (c && ispunct((unsigned char)c) && !strchr("]-^", c))
                buf[0] = c; /* a bracket takes punctuation as it is */
            else
                return lf_fail(err, "regular expression \"%s\": \\%c is not supported", key, c);
        } else if (brackets) { /* a ']' first (after '[' or "[^") is one of its characters */
            brackets = *p != ']' || p == open + 1 || (p == open + 2 && open[1] == '^');
        } else if (*p == '[') {
            brackets = 1, open = p;
        } else if (*p == '(' && p[1] == '?') {
            if (p[2] != ':')
                return lf_fail(err, "regular expression \"%s\": (?%c is not supported", key, p[2]);
            p += 2; /* (?: is a plain group to a yes-or-no match */
        } else if (quantifier && after == 1 && *p == '?') {
            after = 2; /* a lazy quantifier matches what the greedy one does */
            continue;
        } else if (quantifier && after) {
            return lf_fail(err,
                           "regular expression \"%s\": a quantifier after a quantifier is "
                           "not supported",
                           key);
        } else if (quantifier) {
            long n = *p == '+' ? 2 : *p == '{' ? repeats(p) : 1;
            copies *= n > 1 ? (double)n : 1;
            if (copies > MAX_COPIES)
                return lf_fail(err,
                               "regular expression \"%s\": repetitions that copy more than "
                               "%d times in all are not supported",
                               key, MAX_COPIES);
            const char *close = *p == '{' ? strchr(p, '}') : NULL;
            if (close) put = p, len = (size_t)(close - p) + 1, p = close; /* the count whole */
        }
        after = quantifier ? (after ? after : 1) : 0;
        if (at + len >= cap) return lf_fail(err, "regular expression \"%s\": too long", key);
        memcpy(out + at, put, len), at += len;
    }
    out[at] = 0;
    return 0;
}

/* Compiles ^(.*\.)?(key)$, the expression PEFT's get_pattern_key matches from a name's start, or
 * (whole) ^(key)$, re.fullmatch's. */
static int compile(regex_t *re, const char *key, int whole, LfError *err) {
    char posix[4 * LORA_REGEX_MAX], full[4 * LORA_REGEX_MAX + 16];
    if (strlen(key) >= LORA_REGEX_MAX)
        return lf_fail(err, "regular expression \"%.40s...\": longer than %d characters", key,
                       LORA_REGEX_MAX - 1);
    if (to_posix(key, posix, sizeof posix, err)) return -1;
    snprintf(full, sizeof full, whole ? "^(%s)$" : "^(.*\\.)?(%s)$", posix);
    if (regcomp(re, full, REG_EXTENDED | REG_NOSUB))
        return lf_fail(err, "regular expression \"%s\" does not compile", key);
    return 0;
}

static int matches(const char *text, const char *key, int whole) {
    regex_t re;
    if (compile(&re, key, whole, NULL)) return 0;
    int hit = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return hit;
}

int lora_pattern_check(const char *key, LfError *err) {
    regex_t re;
    if (!key[0]) return lf_fail(err, "an empty pattern matches no module");
    if (compile(&re, key, 0, err)) return -1;
    regfree(&re);
    return 0;
}

int lora_regex_fullmatch(const char *name, const char *key) {
    return matches(name, key, 1);
}

float lora_pattern_value(const LoraPattern *p, int n, const char *module, float fallback) {
    for (int i = 0; i < n; i++)
        if (matches(module, p[i].key, 0)) return p[i].value;
    return fallback;
}

int lora_layer_index(const char *module, const char (*names)[32], int n) {
    char prefix[256];
    for (const char *seg = strchr(module, '.'); seg; seg = strchr(seg + 1, '.')) {
        const char *digits = seg + 1, *end = digits;
        while (isdigit((unsigned char)*end)) end++;
        if (end == digits || *end != '.') continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(seg - module), module);
        int hit = !n && strchr(prefix, '.'); /* PEFT's .*?\.[^.]*\.(\d+)\. */
        for (int i = 0; i < n && !hit; i++) hit = matches(prefix, names[i], 0);
        if (hit) return (int)strtol(digits, NULL, 10);
    }
    return -1;
}
