/* cuda_runtime_api.h (emulation): the same declarations as cuda_runtime.h. */
#pragma once
#include "cuda_runtime.h"
