/* pissa.h: PiSSA's start of a LoRA adapter (PEFT's init_lora_weights "pissa"), host linear
 * algebra done once at load. */
#pragma once

/* W [out,in] row-major = U diag(S) Vh (the SVD, S descending): A [R,in] = sqrt(S_R / scale) Vh_R,
 * B [out,R] = U_R sqrt(S_R / scale), and W <- W - scale B A, the rest of the spectrum. 0, or -1
 * where the SVD fails or memory runs out (W untouched). R <= min(out, in). */
int pissa_split(float *W, int out, int in, int R, float scale, float *A, float *B);
