/* pissa.c: PiSSA's and OLoRA's splits of a weight into the adapter's start and the rest (the
 * frozen weight), with LAPACK's SVD and QR and BLAS's GEMM from OpenBLAS. */
#include "loraft/pissa.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's divide-and-conquer SVD: column-major, the Fortran string's length last. */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

/* LAPACK's Householder QR and the Q it implies: column-major. */
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau,
             float *work, const int *lwork, int *info);

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

/* W <- W - scale B A: the rest the adapter's start leaves. */
static void subtract_start(float *W, int out, int in, int R, float scale, const float *A,
                           const float *B) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, R, -scale, B, R, A, in, 1.0f, W,
                in);
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
    if (!rc) subtract_start(W, out, in, R, scale, A, B);
    free(U);
    return rc;
}

/* torch.linalg.qr's reduced factors, as peft's olora_init takes them: geqrf's R (upper
 * triangular, rows R first of it) and orgqr's first R columns of Q, from the same LAPACK calls, so
 * the same signs. W is copied column-major (a[i + j*out] = W[i][j]). */
int olora_split(float *W, int out, int in, int R, float scale, float *A, float *B) {
    int k = out < in ? out : in, lwork = -1, info = 0;
    if (R > k) return -1;
    float query[2] = {0, 0}, *a = malloc(((size_t)out * in + k) * sizeof *a), *work = NULL;
    float *tau = a ? a + (size_t)out * in : NULL;
    if (a) {
        for (int i = 0; i < out; i++)
            for (int j = 0; j < in; j++) a[i + (size_t)j * out] = W[(size_t)i * in + j];
        sgeqrf_(&out, &in, a, &out, tau, &query[0], &lwork, &info);
        sorgqr_(&out, &R, &R, a, &out, tau, &query[1], &lwork, &info);
        lwork = (int)fmaxf(query[0], query[1]);
        work = info ? NULL : malloc((size_t)lwork * sizeof *work);
    }
    if (work) sgeqrf_(&out, &in, a, &out, tau, work, &lwork, &info);
    for (int r = 0; work && !info && r < R; r++)
        for (int j = 0; j < in; j++) A[(size_t)r * in + j] = j < r ? 0.0f : a[r + (size_t)j * out];
    if (work && !info) sorgqr_(&out, &R, &R, a, &out, tau, work, &lwork, &info);
    for (int o = 0; work && !info && o < out; o++)
        for (int r = 0; r < R; r++) B[(size_t)o * R + r] = a[o + (size_t)r * out];
    int rc = work && !info ? 0 : -1;
    if (!rc) subtract_start(W, out, in, R, scale, A, B);
    free(a), free(work);
    return rc;
}
