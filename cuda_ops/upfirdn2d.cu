// upfirdn2d: the CUDA launch of the kernel in upfirdn2d_kernel.cuh, called by the binding in upfirdn2d.cpp. No torch
// header, so nvcc compiles it in seconds.
#include "launch.h"
#include "upfirdn2d_kernel.cuh"

cudaError_t upfirdn2d_launch(KernelDtype dtype, const void* x, const void* f, void* y, const Upfirdn2dParams& p,
                             cudaStream_t stream)
{
    const int64_t total = p.planes * p.out_h * p.out_w;
    return dispatch_dtype(dtype, [&](auto zero) {
        using scalar_t = decltype(zero);
        using acc_t = typename AccType<scalar_t>::type;
        upfirdn2d_kernel<scalar_t><<<grid_blocks(total), kThreads, 0, stream>>>(
            static_cast<const scalar_t*>(x), static_cast<const acc_t*>(f), static_cast<scalar_t*>(y), p);
        return cudaGetLastError();
    });
}
