/* idlist.c: the growable token-id array every tokenizer appends to (tokenizer.h). */
#include <stdlib.h>

#include "loraft/tokenizer.h"

int idlist_push(IdList *l, int32_t id, LfError *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        int32_t *p = realloc(l->ids, cap * sizeof *p);
        if (!p) return lf_fail(err, "out of memory for %zu token ids", cap);
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

void idlist_free(IdList *l) {
    free(l->ids);
    *l = (IdList){0};
}
