/* normalize.c: NFC (see normalize.h). The quick check walks the text with one table lookup per
 * char above U+02FF; where it stops, the stretch from the last starter before that char to the
 * next starter that cannot combine backwards is decomposed, ordered and recomposed as UAX #15
 * describes, and the rest is copied. Not NFD of whole texts, NFKC or NFKD: no tokenizer loraft
 * reads uses them (BERT's accent stripping decomposes char by char: nfd_char). */
#include "loraft/normalize.h"

#include <stdlib.h>
#include <string.h>

#include "loraft/unicode.h"
#include "loraft/utf8.h"

/* Hangul syllables: S = SBASE + (L * VCOUNT + V) * TCOUNT + T (UAX #15, section 16). */
enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    SCOUNT = LCOUNT * VCOUNT * TCOUNT
};
enum { CP_MASK = 0x1FFFFF, CCC_SHIFT = 24, SHORT_RUN = 16 };

/* Combining class of c in bits 0..7, its UNI_NFC_ bits above. */
static int nfc_props(uint32_t c) {
    if (c < unicode_nfc_ranges[1].first) return 0; /* below U+0300 nothing combines */
    const UnicodeNfcRange *r =
        &unicode_nfc_ranges[UNICODE_LAST_AT_MOST(unicode_nfc_ranges, unicode_nfc_ranges_len, c)];
    return r->ccc | r->qc << 8;
}

int nfd_char(uint32_t c, uint32_t out[4]) {
    if (c - SBASE < SCOUNT) {
        uint32_t s = c - SBASE, t = s % TCOUNT;
        out[0] = LBASE + s / (VCOUNT * TCOUNT);
        out[1] = VBASE + s % (VCOUNT * TCOUNT) / TCOUNT;
        out[2] = TBASE + t;
        return t ? 3 : 2;
    }
    size_t lo = 0, hi = unicode_decomps_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (unicode_decomps[mid].cp < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == unicode_decomps_len || unicode_decomps[lo].cp != c) return out[0] = c, 1;
    memcpy(out, unicode_decomp_data + unicode_decomps[lo].offset,
           unicode_decomps[lo].n * sizeof *out);
    return unicode_decomps[lo].n;
}

/* The primary composite of a + b, 0 when there is none. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a - LBASE < LCOUNT && b - VBASE < VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a - SBASE < SCOUNT && (a - SBASE) % TCOUNT == 0 && b - TBASE - 1 < TCOUNT - 1)
        return a + (b - TBASE);
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = unicode_compositions_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (unicode_compositions[mid] >> 21 < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == unicode_compositions_len || unicode_compositions[lo] >> 21 != key) return 0;
    return (uint32_t)(unicode_compositions[lo] & CP_MASK);
}

static int grow(void **p, size_t *cap, size_t need, size_t size, LfError *err) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need) cap2 *= 2;
    void *q = realloc(*p, cap2 * size);
    if (!q) return lf_fail(err, "out of memory normalizing %zu bytes of text", need);
    *p = q;
    *cap = cap2;
    return 0;
}

/* Canonical ordering of a run of n non-starters: a stable sort by combining class, in
 * tmp[0..n) when the run is long (insertion sort is quadratic on adversarial text). */
static void sort_marks(uint32_t *a, size_t n, uint32_t *tmp) {
    if (n <= SHORT_RUN) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] >> CCC_SHIFT > x >> CCC_SHIFT; j--) a[j] = a[j - 1];
            a[j] = x;
        }
        return;
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) start[(a[i] >> CCC_SHIFT) + 1]++;
    for (int k = 0; k < 256; k++) start[k + 1] += start[k];
    for (size_t i = 0; i < n; i++) tmp[start[a[i] >> CCC_SHIFT]++] = a[i];
    memcpy(a, tmp, n * sizeof *a);
}

/* Canonical composition of cp[0..n) in place; returns the new count. A char joins the last
 * starter when nothing between them has a class of 0 or at least its own: after ordering, the
 * last char kept since the starter is the one to compare with. */
static size_t compose_all(uint32_t *cp, size_t n) {
    size_t w = 0, starter = SIZE_MAX;
    for (size_t r = 0; r < n; r++) {
        uint32_t c = cp[r] & CP_MASK, ccc = cp[r] >> CCC_SHIFT, comp;
        if (starter != SIZE_MAX && (w - 1 == starter || cp[w - 1] >> CCC_SHIFT < ccc) &&
            (comp = compose(cp[starter], c))) {
            cp[starter] = comp; /* a primary composite is a starter */
            continue;
        }
        if (!ccc) starter = w;
        cp[w++] = cp[r];
    }
    return w;
}

/* Appends the NFC of the stretch s[0..n) (starting at a starter, or at the text's start) to
 * z->text[*len..). */
static int redo(Nfc *z, const unsigned char *s, size_t n, size_t *len, LfError *err) {
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i], d[4];
        int k = c < 0x80 ? 1 : utf8_decode(s + i, n - i, &c);
        int nd = nfd_char(c, d);
        if (grow((void **)&z->cp, &z->cp_cap, 2 * (m + 4), sizeof *z->cp, err)) return -1;
        for (int j = 0; j < nd; j++)
            z->cp[m++] = d[j] | (uint32_t)(nfc_props(d[j]) & 0xFF) << CCC_SHIFT;
        i += (size_t)(k ? k : 1);
    }
    for (size_t i = 0; i < m;) { /* runs of non-starters; z->cp[m..2m) is room to sort */
        size_t j = i;
        while (j < m && z->cp[j] >> CCC_SHIFT) j++;
        if (j - i > 1) sort_marks(z->cp + i, j - i, z->cp + m);
        i = j + 1;
    }
    m = compose_all(z->cp, m);
    if (grow((void **)&z->text, &z->text_cap, *len + 4 * m + 1, 1, err)) return -1;
    for (size_t i = 0; i < m; i++) *len += (size_t)utf8_encode(z->cp[i] & CP_MASK, z->text + *len);
    return 0;
}

static int append(Nfc *z, const unsigned char *s, size_t n, size_t *len, LfError *err) {
    if (grow((void **)&z->text, &z->text_cap, *len + n + 1, 1, err)) return -1;
    memcpy(z->text + *len, s, n);
    *len += n;
    return 0;
}

/* End of the stretch to redo that goes on at i: the next char that is a starter and combines
 * with nothing before it (quick check Yes). */
static size_t stretch_end(const unsigned char *s, size_t n, size_t i) {
    while (i < n && s[i] >= 0x80) {
        uint32_t c;
        int k = utf8_decode(s + i, n - i, &c);
        if (k && !nfc_props(c)) break;
        i += (size_t)(k ? k : 1);
    }
    return i;
}

int nfc_normalize(Nfc *z, const char *text, size_t n, const char **out, size_t *out_len,
                  LfError *err) {
    const unsigned char *s = (const unsigned char *)text;
    size_t done = 0, len = 0, starter = 0; /* s[0..done) is z->text[0..len) once copied */
    int copied = 0, last = 0;              /* last: combining class of the char before i */
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            while (i + 1 < n && s[i + 1] < 0x80) i++;
            starter = i++;
            last = 0;
            continue;
        }
        uint32_t c;
        int k = utf8_decode(s + i, n - i, &c);
        int p = k ? nfc_props(c) : 0, ccc = p & 0xFF;
        if (!(p >> 8) && (!ccc || ccc >= last)) {
            if (!ccc) starter = i;
            last = ccc;
            i += (size_t)(k ? k : 1);
            continue;
        }
        size_t end = stretch_end(s, n, i + (size_t)k);
        if (append(z, s + done, starter - done, &len, err) ||
            redo(z, s + starter, end - starter, &len, err))
            return -1;
        copied = 1;
        done = starter = i = end;
        last = 0;
    }
    if (!copied) {
        *out = text;
        *out_len = n;
        return 0;
    }
    if (append(z, s + done, n - done, &len, err)) return -1;
    *out = z->text;
    *out_len = len;
    return 0;
}

void nfc_free(Nfc *z) {
    free(z->text);
    free(z->cp);
    *z = (Nfc){0};
}
