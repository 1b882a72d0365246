// upfirdn2d kernel: one thread per output sample, taps visited only where the zero-inserted input is non-zero.
// Any up/down factor, padding and filter size. Compiled by nvcc (upfirdn2d.cu) and, for tests, as C++ for the CPU.
#pragma once
#include "kernel_common.cuh"
#include "upfirdn2d_params.h"

// First tap t >= 0 for which base + t is a non-negative multiple of up.
__device__ __forceinline__ int first_tap(int base, int up)
{
    if (base < 0) return -base;
    int r = base % up;
    return r == 0 ? 0 : up - r;
}

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x,
                                 const typename AccType<scalar_t>::type* __restrict__ f,
                                 scalar_t* __restrict__ y, Upfirdn2dParams p)
{
    using acc_t = typename AccType<scalar_t>::type;
    const int64_t total = p.planes * p.out_h * p.out_w;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int ox = idx % p.out_w;
        const int oy = (idx / p.out_w) % p.out_h;
        const int64_t plane = idx / ((int64_t)p.out_w * p.out_h);
        const scalar_t* xp = x + plane * p.in_h * p.in_w;
        // Filter tap t reads the upsampled, padded signal at o * down + t - pad0.
        const int bx = ox * p.downx - p.padx0;
        const int by = oy * p.downy - p.pady0;
        acc_t acc = 0;
        for (int ty = first_tap(by, p.upy); ty < p.fh; ty += p.upy) {
            const int iy = (by + ty) / p.upy;
            if (iy >= p.in_h) break;
            const int fy = p.flip ? ty : p.fh - 1 - ty;
            for (int tx = first_tap(bx, p.upx); tx < p.fw; tx += p.upx) {
                const int ix = (bx + tx) / p.upx;
                if (ix >= p.in_w) break;
                const int fx = p.flip ? tx : p.fw - 1 - tx;
                acc += static_cast<acc_t>(xp[(int64_t)iy * p.in_w + ix]) * f[fy * p.fw + fx];
            }
        }
        y[idx] = static_cast<scalar_t>(acc);
    }
}
