/* pissa.c: PiSSA's split of a weight into its principal part (the adapter) and the rest (the
 * frozen weight), with LAPACK's SVD and BLAS's GEMM from OpenBLAS. */
#include "loraft/pissa.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's divide-and-conquer SVD: column-major, the Fortran string's length last. */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

/* W [out,in] row-major = U diag(S) Vh with U [out,k] and Vh [k,in] row-major (k = min(out, in)).
 * LAPACK factors W^T (W's rows are its columns), whose u and vt are Vh and U as row-major arrays.
 */
static int svd(const float *W, int out, int in, float *U, float *S, float *Vh) {
    int k = out < in ? out : in, lwork = -1, info = 0;
    float query = 0, *a = malloc((size_t)out * in * sizeof *a), *work = NULL;
    int *iwork = malloc(8 * (size_t)k * sizeof *iwork);
    if (a && iwork) {
        memcpy(a, W, (size_t)out * in * sizeof *a);
        sgesdd_("S", &in, &out, a, &in, S, Vh, &in, U, &k, &query, &lwork, iwork, &info, 1);
        lwork = (int)query;
        work = info ? NULL : malloc((size_t)lwork * sizeof *work);
    }
    if (work) sgesdd_("S", &in, &out, a, &in, S, Vh, &in, U, &k, work, &lwork, iwork, &info, 1);
    int rc = work && !info ? 0 : -1;
    free(a), free(iwork), free(work);
    return rc;
}

int pissa_split(float *W, int out, int in, int R, float scale, float *A, float *B) {
    int k = out < in ? out : in;
    float *U = malloc(((size_t)out * k + k + (size_t)k * in) * sizeof *U);
    float *S = U ? U + (size_t)out * k : NULL, *Vh = S ? S + k : NULL;
    int rc = U && R <= k ? svd(W, out, in, U, S, Vh) : -1;
    for (int r = 0; !rc && r < R; r++) {
        float root = sqrtf(S[r] / scale);
        for (int c = 0; c < in; c++) A[(size_t)r * in + c] = root * Vh[(size_t)r * in + c];
        for (int o = 0; o < out; o++) B[(size_t)o * R + r] = U[(size_t)o * k + r] * root;
    }
    if (!rc)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, R, -scale, B, R, A, in,
                    1.0f, W, in);
    free(U);
    return rc;
}
