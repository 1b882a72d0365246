// upfirdn2d: the CUDA launch of the kernel in upfirdn2d_kernel.cuh.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "upfirdn2d_kernel.cuh"

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                             int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    const at::cuda::OptionalCUDAGuard guard(device_of(x));
    const Upfirdn2dParams p = upfirdn2d_params(x.size(0), x.size(1), x.size(2), x.size(3), f.size(0), f.size(1),
                                               upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter);
    TORCH_CHECK(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: output would be empty");
    auto y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
    const int64_t total = p.planes * p.out_h * p.out_w;
    if (total == 0) return y;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = typename AccType<scalar_t>::type;
        TORCH_CHECK(f.scalar_type() == c10::CppTypeToScalarType<acc_t>::value,
                    "upfirdn2d: filter dtype must be the accumulation type");
        upfirdn2d_kernel<scalar_t><<<grid_blocks(total), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), y.data_ptr<scalar_t>(), p);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
