/* cuda_fp16.h (emulation): the place for __half and its conversions (__float2half_rn,
 * __half2float, ...) when a kernel first uses them. Deliberately empty until then: a kernel
 * that includes it stops the emulated build here rather than computing in another type. */
#pragma once
#error                                                                                             \
    "cuda-emu: half precision is not emulated yet; add __half to tests/cuda_emu/include/cuda_fp16.h"
