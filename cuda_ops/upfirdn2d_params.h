// upfirdn2d's parameters and output size. Plain C++, shared by the kernel (upfirdn2d_kernel.cuh), its CUDA
// launch (upfirdn2d.cu), the host binding (upfirdn2d.cpp) and the CPU test harness.
#pragma once
#include <cstdint>

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
