// upfirdn2d: the CUDA launch of the kernel in upfirdn2d_kernel.cuh.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "upfirdn2d_host.h"

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                             int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    const at::cuda::OptionalCUDAGuard guard(device_of(x));
    torch::Tensor y;
    const Upfirdn2dParams p = upfirdn2d_output(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter,
                                               &y);
    const int64_t total = p.planes * p.out_h * p.out_w;
    if (total == 0) return y;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = typename AccType<scalar_t>::type;
        check_filter_dtype<scalar_t>(f);
        upfirdn2d_kernel<scalar_t><<<grid_blocks(total), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), y.data_ptr<scalar_t>(), p);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
