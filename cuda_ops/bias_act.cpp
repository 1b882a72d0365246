// Python binding of the bias_act CUDA kernel (see bias_act.py for the definition): checks, output, device and
// stream here; the launch in bias_act.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "host.h"
#include "launch.h"

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                              int mode, int act, double alpha, double gain, double clamp, int64_t step)
{
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous() && b.is_contiguous() && g1.is_contiguous() && g2.is_contiguous(),
                "bias_act: inputs must be contiguous");
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.scalar_type() == x.scalar_type() && b.device() == x.device()),
                "bias_act: b must be a 1-D tensor of x's dtype and device");
    for (const torch::Tensor* g : {&g1, &g2})
        TORCH_CHECK(g->numel() == 0 || (g->sizes() == x.sizes() && g->scalar_type() == x.scalar_type()
                                        && g->device() == x.device()),
                    "bias_act: g1 and g2 must have x's shape, dtype and device");
    TORCH_CHECK(mode >= 0 && mode <= 2 && act >= 0 && act <= 8, "bias_act: bad mode or activation");
    TORCH_CHECK(mode == 0 || g1.numel() == x.numel(), "bias_act: modes 1 and 2 need g1");
    TORCH_CHECK(mode != 2 || g2.numel() == x.numel(), "bias_act: mode 2 needs g2");
    TORCH_CHECK(step >= 1, "bias_act: step must be >= 1");
    const KernelDtype dtype = kernel_dtype(x);
    const c10::cuda::CUDAGuard guard(x.device());
    auto out = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return out;
    C10_CUDA_CHECK(bias_act_launch(dtype, out.data_ptr(), x.data_ptr(), b.numel() ? b.data_ptr() : nullptr,
                                   g1.numel() ? g1.data_ptr() : nullptr, g2.numel() ? g2.data_ptr() : nullptr,
                                   mode, act, alpha, gain, clamp, n, step, b.numel(),
                                   c10::cuda::getCurrentCUDAStream()));
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("bias_act", &bias_act, "bias + activation + gain + clamp, and its first and second derivatives (CUDA)");
}
