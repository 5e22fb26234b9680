/* hostdevice.h: marks small inline functions that both backends compile (host C and CUDA). */
#pragma once

#ifdef __CUDACC__
#define LF_HOST_DEVICE __host__ __device__
#else
#define LF_HOST_DEVICE
#endif
