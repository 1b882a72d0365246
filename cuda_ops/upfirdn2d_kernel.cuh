// upfirdn2d kernel: one thread per output sample, taps visited only where the zero-inserted input is non-zero.
// Any up/down factor, padding and filter size. Compiled by nvcc (upfirdn2d.cu) and, for tests, as C++ for the CPU.
#pragma once
#include "kernel_common.cuh"

struct Upfirdn2dParams {
    int in_h, in_w, out_h, out_w, fh, fw;
    int upx, upy, downx, downy, padx0, pady0;
    bool flip;
    int64_t planes;  // N * C
};

// Output length along one axis, floor((in * up + pad0 + pad1 - k) / down) + 1, or 0 when nothing fits.
inline int upfirdn2d_out_size(int64_t in, int up, int pad0, int pad1, int k, int down)
{
    const int64_t span = in * up + pad0 + pad1 - k;
    return span < 0 ? 0 : (int)(span / down + 1);
}

inline Upfirdn2dParams upfirdn2d_params(int64_t n, int64_t c, int64_t h, int64_t w, int64_t fh, int64_t fw,
                                        int upx, int upy, int downx, int downy,
                                        int padx0, int padx1, int pady0, int pady1, bool flip)
{
    Upfirdn2dParams p;
    p.in_h = (int)h; p.in_w = (int)w; p.fh = (int)fh; p.fw = (int)fw;
    p.upx = upx; p.upy = upy; p.downx = downx; p.downy = downy;
    p.padx0 = padx0; p.pady0 = pady0; p.flip = flip;
    p.out_w = upfirdn2d_out_size(w, upx, padx0, padx1, p.fw, downx);
    p.out_h = upfirdn2d_out_size(h, upy, pady0, pady1, p.fh, downy);
    p.planes = n * c;
    return p;
}

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
