/* test_dataset.c: the JSONL, CSV and aclImdb loaders on small files written
 * here (tricky CSV quoting, every error case), then the shared IMDb files when
 * they are present. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "loraft/data.h"

static char tmp[64];

/* Writes n bytes (strlen when n < 0) to tmp/name and returns the path (static
 * buffer). */
static const char *put(const char *name, const char *content, long n) {
    static char path[4][256];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 256, "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    fwrite(content, 1, n < 0 ? strlen(content) : (size_t)n, f);
    fclose(f);
    return p;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static const char *const sentiment[] = {"neg", "pos"};

static DatasetSpec spec_for(const char *path) {
    return (DatasetSpec){.path = path, .format = "auto", .label_column = "label", .num_labels = 2};
}

/* Loading must fail with a message that contains every non-NULL needle. */
static void expect_fail(DatasetSpec s, const char *n1, const char *n2) {
    Dataset ds;
    LfError err = {""};
    int rc = dataset_load(&ds, &s, &err);
    CHECK(rc != 0);
    CHECK(n1 == NULL || strstr(err.msg, n1));
    CHECK(n2 == NULL || strstr(err.msg, n2));
    if (rc == 0)
        dataset_free(&ds);
    else
        printf("  expected error: %s\n", err.msg);
}

/* Example i is text[0..len), NULs included. */
static int has_text(const Dataset *ds, int i, const char *text, size_t len) {
    return i < ds->n && ds->examples[i].len == len && !memcmp(ds->examples[i].text, text, len) &&
           ds->examples[i].text[len] == '\0';
}

static void test_jsonl(void) {
    const char *p = put("a.jsonl",
                        "\xEF\xBB\xBF{\"text\": \"caf\\u00e9 \\\"ok\\\"\", \"label\": 1}\n"
                        "\n   \n"
                        "{\"label\": \"neg\", \"text\": \"line\\nbreak\", \"extra\": [1,2]}\r\n"
                        "{\"text\": \"third\", \"label\": \"1\"}\n"
                        "{\"text\": \"\", \"label\": 0.0}",
                        -1);
    DatasetSpec s = spec_for(p);
    s.label_names = sentiment;
    Dataset ds;
    LfError err = {""};
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 4);
    if (ds.n != 4) return;
    CHECK(!strcmp(ds.examples[0].text, "caf\xC3\xA9 \"ok\"") && ds.examples[0].label == 1);
    CHECK(!strcmp(ds.examples[1].text, "line\nbreak") && ds.examples[1].label == 0);
    CHECK(!strcmp(ds.examples[2].text, "third") && ds.examples[2].label == 1);
    CHECK(!strcmp(ds.examples[3].text, "") && ds.examples[3].label == 0);
    CHECK(!strcmp(ds.source, p));
    dataset_free(&ds);

    s.label_column = NULL; /* unlabeled: every label -1, the label key is not even read */
    s.limit = 2;
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 2 && ds.examples[0].label == -1 && ds.examples[1].label == -1);
    CHECK(ds.n == 2 && !strcmp(ds.examples[1].text, "line\nbreak"));
    dataset_free(&ds);
}

static void test_csv(void) {
    /* CRLF rows, quoted commas, "" escapes, newlines (LF and CRLF) inside quotes,
     * a blank line, string and integer labels, and a last line without a newline.
     */
    const char *p = put("b.csv",
                        "id,text,label\r\n"
                        "1,plain,pos\r\n"
                        "2,\"a, b\",0\r\n"
                        "3,\"say \"\"hi\"\"\",1\r\n"
                        "\r\n"
                        "4,\"two\nlines\r\nthree\",neg\n"
                        "5,,\"1\"\n"
                        "6,\"\"\"\",0",
                        -1);
    DatasetSpec s = spec_for(p);
    s.label_names = sentiment;
    Dataset ds;
    LfError err = {""};
    CHECK(dataset_load(&ds, &s, &err) == 0);
    const char *texts[] = {"plain", "a, b", "say \"hi\"", "two\nlines\r\nthree", "", "\""};
    const int labels[] = {1, 0, 1, 0, 1, 0};
    CHECK(ds.n == 6);
    for (int i = 0; i < 6 && i < ds.n; i++) {
        CHECK(!strcmp(ds.examples[i].text, texts[i]));
        CHECK(ds.examples[i].label == labels[i]);
    }
    dataset_free(&ds);

    s.text_column = "id"; /* columns are found by name */
    s.label_column = "";
    s.limit = 3;
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 3 && !strcmp(ds.examples[2].text, "3") && ds.examples[2].label == -1);
    dataset_free(&ds);

    s = spec_for(put("c.txt", "text,label\nx,1\n", -1)); /* explicit format beats extension */
    s.format = "csv";
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 1 && !strcmp(ds.examples[0].text, "x") && ds.examples[0].label == 1);
    dataset_free(&ds);
}

static void test_imdb(void) {
    char dir[128], sub[160];
    snprintf(dir, sizeof dir, "%s/aclImdb_train", tmp);
    mkdir(dir, 0700);
    snprintf(sub, sizeof sub, "%s/pos", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/neg", dir);
    mkdir(sub, 0700);
    put("aclImdb_train/pos/1_9.txt", "great<br />film", -1);
    put("aclImdb_train/pos/0_10.txt", "best", -1);
    put("aclImdb_train/neg/3_1.txt", "awful\n\0", 7);
    put("aclImdb_train/neg/notes.md", "not a review", -1);
    DatasetSpec s = spec_for(dir);
    Dataset ds;
    LfError err = {""};
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 3);
    if (ds.n == 3) {
        CHECK(has_text(&ds, 0, "awful\n\0", 7) && ds.examples[0].label == 0);
        CHECK(!strcmp(ds.examples[1].text, "best") && ds.examples[1].label == 1);
        CHECK(!strcmp(ds.examples[2].text, "great<br />film") && ds.examples[2].label == 1);
    }
    dataset_free(&ds);
    put("aclImdb_train/neg/4_2.txt", "ok\nbad \xC3(", -1);
    expect_fail(s, "4_2.txt:2:5:", "UTF-8");
    s.path = tmp; /* a directory without pos/ and neg/ */
    expect_fail(s, "/neg", "pos/ and neg/");
}

static void test_errors(void) {
    DatasetSpec s = spec_for("/nonexistent/x.jsonl");
    expect_fail(s, "/nonexistent/x.jsonl", "No such file");
    s.format = "jsonl";
    expect_fail(s, "/nonexistent/x.jsonl", "No such file");
    expect_fail(spec_for(put("empty.jsonl", "", -1)), "empty.jsonl", "no examples");
    expect_fail(spec_for(put("blank.jsonl", "\n  \n", -1)), "blank.jsonl", "no examples");
    expect_fail(spec_for(put("empty.csv", "", -1)), "empty.csv", "no examples");
    expect_fail(spec_for(put("header.csv", "text,label\r\n", -1)), "header.csv", "no examples");
    expect_fail(spec_for(put("x.parquet", "PAR1", -1)), "x.parquet", "cannot tell the data format");
    DatasetSpec fmt = spec_for("x.jsonl");
    fmt.format = "xml";
    expect_fail(fmt, "x.jsonl", "unknown data format 'xml'");

    const char *p = put("utf.jsonl", "{\"text\":\"ok\",\"label\":0}\n{\"text\":\"ab\xFF\"}\n", -1);
    expect_fail(spec_for(p), "utf.jsonl:2:12:", "invalid UTF-8 (byte 0xff)");
    p = put("over.csv", "text,label\nfine,0\n\"two\nl\xC0\xAF\",1\n", -1); /* overlong '/' */
    expect_fail(spec_for(p), "over.csv:4:2:", "invalid UTF-8");

    p = put("bad.jsonl", "{\"text\":\"a\",\"label\":0}\n\n{\"text\":\"b\",\"label\":0\n", -1);
    expect_fail(spec_for(p), "bad.jsonl:3:", "malformed JSON");
    p = put("trail.jsonl", "{\"text\":\"a\",\"label\":0} x\n", -1);
    expect_fail(spec_for(p), "trail.jsonl:1:", "malformed JSON");
    p = put("arr.jsonl", "[\"a\", 0]\n", -1);
    expect_fail(spec_for(p), "arr.jsonl:1:", "object");
    p = put("notext.jsonl", "{\"text\":\"a\",\"label\":0}\n{\"review\":\"b\",\"label\":0}\n", -1);
    expect_fail(spec_for(p), "notext.jsonl:2:", "no key 'text' (keys found: review, label)");
    p = put("nolabel.jsonl", "{\"text\":\"a\",\"stars\":0}\n", -1);
    expect_fail(spec_for(p), "nolabel.jsonl:1:", "no key 'label' (keys found: text, stars)");
    p = put("numtext.jsonl", "{\"text\":5,\"label\":0}\n", -1);
    expect_fail(spec_for(p), "numtext.jsonl:1:", "'text' is not a string");
    p = put("range.jsonl", "{\"text\":\"a\",\"label\":1}\n{\"text\":\"a\",\"label\":2}\n", -1);
    expect_fail(spec_for(p),
                "range.jsonl:2:", "label 2 out of range (known labels: integers 0..1)");
    p = put("neg.jsonl", "{\"text\":\"a\",\"label\":-1}\n", -1);
    expect_fail(spec_for(p), "neg.jsonl:1:", "out of range");
    p = put("frac.jsonl", "{\"text\":\"a\",\"label\":0.5}\n", -1);
    expect_fail(spec_for(p), "frac.jsonl:1:", "integer or a string");
    DatasetSpec named = spec_for(put("name.jsonl", "{\"text\":\"a\",\"label\":\"meh\"}\n", -1));
    named.label_names = sentiment;
    expect_fail(named, "name.jsonl:1:", "unknown label 'meh' (known labels: neg, pos)");
    expect_fail(spec_for(named.path), "name.jsonl:1:", "unknown label 'meh'");

    p = put("quote.csv", "text,label\r\nok,0\r\n\"open, never\r\nclosed,1\r\nmore,0\r\n", -1);
    expect_fail(spec_for(p), "quote.csv:3:", "unbalanced quote");
    p = put("after.csv", "text,label\n\"a\"b,0\n", -1);
    expect_fail(spec_for(p), "after.csv:2:", "closing quote");
    p = put("cols.csv", "review,label\nx,0\n", -1);
    expect_fail(spec_for(p), "cols.csv:1:", "no column 'text' (columns found: review, label)");
    p = put("lcol.csv", "text,sentiment\nx,0\n", -1);
    expect_fail(spec_for(p), "lcol.csv:1:", "no column 'label' (columns found: text, sentiment)");
    p = put("fields.csv", "text,label\nx,0\n\"multi\nline\",1,extra\n", -1);
    expect_fail(spec_for(p), "fields.csv:3:", "expected 2 fields as in the header, found 3");
    p = put("few.csv", "text,label\nx,0\nlonely", -1);
    expect_fail(spec_for(p), "few.csv:3:", "found 1");
    p = put("crange.csv", "text,label\nx,0\ny,7\n", -1);
    expect_fail(spec_for(p), "crange.csv:3:", "label 7 out of range");
    DatasetSpec cname = spec_for(put("cname.csv", "text,label\nx,pos\ny,good\n", -1));
    cname.label_names = sentiment;
    expect_fail(cname, "cname.csv:3:", "unknown label 'good' (known labels: neg, pos)");
}

/* NUL is a character of a text, in every reader: a JSON \u0000 (where cJSON would end the
 * string), a raw NUL byte in a CSV field or a review file. Keys are compared whole. */
static void test_nul(void) {
    static const char jsonl[] =
        "{\"text\":\"a\\u0000b\",\"label\":1}\n"
        "{\"text\\u0000x\":5,\"text\":\"\\u0000\\u00e9\\ud83d\\ude00\\n\",\"label\":0}\n"
        "{\"label\":\"pos\",\"text\":\"raw\0nul\"}\n";
    DatasetSpec s = spec_for(put("nul.jsonl", jsonl, sizeof jsonl - 1));
    s.label_names = sentiment;
    Dataset ds;
    LfError err = {""};
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 3 && has_text(&ds, 0, "a\0b", 3) && ds.examples[0].label == 1);
    CHECK(has_text(&ds, 1, "\0\xC3\xA9\xF0\x9F\x98\x80\n", 8) && ds.examples[1].label == 0);
    CHECK(has_text(&ds, 2, "raw\0nul", 7) && ds.examples[2].label == 1);
    if (ds.n) dataset_free(&ds);
    static const char csv[] = "text,label\n\"x\0y\",1\n\0,0\n";
    s.path = put("nul.csv", csv, sizeof csv - 1);
    CHECK(dataset_load(&ds, &s, &err) == 0);
    CHECK(ds.n == 2 && has_text(&ds, 0, "x\0y", 3) && has_text(&ds, 1, "\0", 1));
    if (ds.n) dataset_free(&ds);
    s.path = put("lnul.jsonl", "{\"text\":\"a\",\"label\":\"pos\\u0000\"}\n", -1);
    expect_fail(s, "lnul.jsonl:1:", "unknown label 'pos\\x00'");
    /* cJSON reads a \u escape with a non-hex digit as \u0000: an error here */
    s.path = put("hex.jsonl",
                 "{\"text\":\"\\uD7\x12"
                 "D\",\"label\":0}\n",
                 -1);
    expect_fail(s, "hex.jsonl:1:", "malformed JSON string");
    s.path = put("knul.jsonl", "{\"text\\u0000\":\"a\",\"label\":0}\n", -1);
    expect_fail(s, "knul.jsonl:1:", "no key 'text'");
    /* the same in a key (found by fuzz_jsonl): cJSON's key "text" is the number, ours another */
    s.path = put("khex.jsonl", "{\"text\\u00\\nx\": 5, \"text\": \"Yu0000\", \"label\": 0}\n", -1);
    expect_fail(s, "khex.jsonl:1:", "malformed JSON string (a key)");
}

/* The shared 1000-example IMDb split: balanced, and the JSONL and CSV copies
 * agree. */
static void test_shared(void) {
    char jpath[4096], cpath[4096], fpath[4096];
    snprintf(jpath, sizeof jpath, "%s/imdb/train.jsonl", shared_data_dir());
    snprintf(cpath, sizeof cpath, "%s/imdb/train.csv", shared_data_dir());
    snprintf(fpath, sizeof fpath, "%s/imdb/train_full.jsonl", shared_data_dir());
    struct stat st;
    if (stat(jpath, &st) || stat(cpath, &st)) {
        printf("SKIP part: %s or train.csv absent, shared IMDb checks not run\n", jpath);
        return;
    }
    Dataset j, c;
    LfError err = {""};
    CHECK(dataset_load(&j, &(DatasetSpec){.path = jpath, .label_column = "label", .num_labels = 2},
                       &err) == 0);
    CHECK(dataset_load(&c, &(DatasetSpec){.path = cpath, .label_column = "label", .num_labels = 2},
                       &err) == 0);
    CHECK(j.n == 1000 && c.n == 1000);
    int pos = 0, same = 0;
    for (int i = 0; i < j.n && i < c.n; i++) {
        pos += j.examples[i].label == 1;
        same += !strcmp(j.examples[i].text, c.examples[i].text) &&
                j.examples[i].label == c.examples[i].label;
    }
    CHECK(pos == 500);
    CHECK(same == 1000);
    dataset_free(&j);
    dataset_free(&c);

    if (stat(fpath, &st)) return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(dataset_load(&j, &(DatasetSpec){.path = fpath, .label_column = "label", .num_labels = 2},
                       &err) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(j.n == 25000);
    printf("train_full.jsonl: %d examples in %.3f s (reported, not checked)\n", j.n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    dataset_free(&j);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/loraft_dataset_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_jsonl();
    test_csv();
    test_imdb();
    test_errors();
    test_nul();
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    test_shared();
    return check_report();
}
