// The CUDA launch functions (defined in *.cu, compiled by nvcc without torch) that the host bindings (*.cpp,
// compiled with torch by the host compiler) call: raw pointers, sizes and a stream; each returns the launch's error.
#pragma once
#include <cuda_runtime_api.h>

#include "kernel_common.cuh"
#include "upfirdn2d_params.h"

// y = upfirdn2d(x, f): x and y of `dtype`, f in its AccType.
cudaError_t upfirdn2d_launch(KernelDtype dtype, const void* x, const void* f, void* y, const Upfirdn2dParams& p,
                             cudaStream_t stream);

// out = bias_act in `mode` (bias_act_kernel.cuh) over n elements of `dtype`; b (nb elements, each applied to `step`
// consecutive ones), g1 and g2 may be null where unused.
cudaError_t bias_act_launch(KernelDtype dtype, void* out, const void* x, const void* b, const void* g1,
                            const void* g2, int mode, int act, double alpha, double gain, double clamp, int64_t n,
                            int64_t step, int64_t nb, cudaStream_t stream);

#ifdef __CUDACC__
// For the launch code. torch's nvcc flags switch off the conversions of CUDA's 16-bit types (c10::Half brings its
// own); no torch header is included there, and the kernels convert with static_cast.
#undef __CUDA_NO_HALF_CONVERSIONS__
#undef __CUDA_NO_BFLOAT16_CONVERSIONS__
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// launch(T()) for the element type T of `dtype`.
template <typename Launch> cudaError_t dispatch_dtype(KernelDtype dtype, Launch launch)
{
    switch (dtype) {
    case kFloat64: return launch(double());
    case kFloat32: return launch(float());
    case kFloat16: return launch(__half());
    case kBFloat16: return launch(__nv_bfloat16());
    }
    return cudaErrorInvalidValue;
}
#endif
