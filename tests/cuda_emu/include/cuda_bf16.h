/* cuda_bf16.h (emulation): the place for __nv_bfloat16 and its conversions when a kernel
 * first uses them. Deliberately empty until then (see cuda_fp16.h). */
#pragma once
#error "cuda-emu: bf16 is not emulated yet; add __nv_bfloat16 to tests/cuda_emu/include/cuda_bf16.h"
