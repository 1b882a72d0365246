// bias_act: the CUDA launch of the kernel in bias_act_kernel.cuh, called by the binding in bias_act.cpp. No torch
// header, so nvcc compiles it in seconds.
#include "launch.h"
#include "bias_act_kernel.cuh"

cudaError_t bias_act_launch(KernelDtype dtype, void* out, const void* x, const void* b, const void* g1,
                            const void* g2, int mode, int act, double alpha, double gain, double clamp, int64_t n,
                            int64_t step, int64_t nb, cudaStream_t stream)
{
    return dispatch_dtype(dtype, [&](auto zero) {
        using scalar_t = decltype(zero);
        bias_act_kernel<scalar_t><<<grid_blocks(n), kThreads, 0, stream>>>(
            static_cast<scalar_t*>(out), static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(b),
            static_cast<const scalar_t*>(g1), static_cast<const scalar_t*>(g2),
            mode, act, (float)alpha, (float)gain, (float)clamp, alpha, gain, clamp, n, step, nb);
        return cudaGetLastError();
    });
}
