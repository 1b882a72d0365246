// upfirdn2d CUDA kernel: one thread per output sample, taps visited only where the
// zero-inserted input is non-zero. Any up/down factor, padding and filter size.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

struct Upfirdn2dParams {
    int in_h, in_w, out_h, out_w, fh, fw;
    int upx, upy, downx, downy, padx0, pady0;
    bool flip;
    int64_t planes;  // N * C
};

// First tap t >= 0 for which base + t is a non-negative multiple of up.
__device__ __forceinline__ int first_tap(int base, int up)
{
    if (base < 0) return -base;
    int r = base % up;
    return r == 0 ? 0 : up - r;
}

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const typename AccType<scalar_t>::type* __restrict__ f,
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

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                             int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    const at::cuda::OptionalCUDAGuard guard(device_of(x));
    Upfirdn2dParams p;
    p.in_h = x.size(2); p.in_w = x.size(3);
    p.fh = f.size(0); p.fw = f.size(1);
    p.upx = upx; p.upy = upy; p.downx = downx; p.downy = downy;
    p.padx0 = padx0; p.pady0 = pady0; p.flip = flip_filter;
    p.out_w = (p.in_w * upx + padx0 + padx1 - p.fw) / downx + 1;
    p.out_h = (p.in_h * upy + pady0 + pady1 - p.fh) / downy + 1;
    TORCH_CHECK(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: output would be empty");
    p.planes = x.size(0) * x.size(1);
    auto y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
    const int64_t total = p.planes * p.out_h * p.out_w;
    if (total == 0) return y;
    const int threads = 256;
    const int blocks = (int)std::min<int64_t>((total + threads - 1) / threads, 65535 * 8);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
        using acc_t = typename AccType<scalar_t>::type;
        TORCH_CHECK(f.scalar_type() == c10::CppTypeToScalarType<acc_t>::value, "upfirdn2d: filter dtype must be the accumulation type");
        upfirdn2d_kernel<scalar_t><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), y.data_ptr<scalar_t>(), p);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
