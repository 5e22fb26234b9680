/* pissa.h: PiSSA's and OLoRA's starts of a LoRA adapter (PEFT's init_lora_weights "pissa",
 * "olora"), host linear algebra done once at load. */
#pragma once

/* W [out,in] row-major = U diag(S) Vh (the SVD, S descending): A [R,in] = sqrt(S_R / scale) Vh_R,
 * B [out,R] = U_R sqrt(S_R / scale), and W <- W - scale B A, the rest of the spectrum. 0, or -1
 * where the SVD fails or memory runs out (W untouched). R <= min(out, in). */
int pissa_split(float *W, int out, int in, int R, float scale, float *A, float *B);

/* W [out,in] row-major = Q R (the reduced QR, torch.linalg.qr's): A [R,in] = R's first R rows, B
 * [out,R] = Q's first R columns, and W <- W - scale B A. 0, or -1 where the QR fails or memory runs
 * out (W untouched). R <= min(out, in). */
int olora_split(float *W, int out, int in, int R, float scale, float *A, float *B);
