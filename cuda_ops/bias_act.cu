// bias_act: the CUDA launch of the kernel in bias_act_kernel.cuh.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "bias_act_kernel.cuh"

torch::Tensor bias_act_cuda(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                            int mode, int act, double alpha, double gain, double clamp, int64_t step)
{
    const at::cuda::OptionalCUDAGuard guard(device_of(x));
    auto out = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return out;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act", [&] {
        bias_act_kernel<scalar_t><<<grid_blocks(n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
            b.numel() ? b.data_ptr<scalar_t>() : nullptr,
            g1.numel() ? g1.data_ptr<scalar_t>() : nullptr,
            g2.numel() ? g2.data_ptr<scalar_t>() : nullptr,
            mode, act, (float)alpha, (float)gain, (float)clamp, alpha, gain, clamp, n, step, b.numel());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}
