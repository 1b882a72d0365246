// Python binding of the bias_act CUDA kernel (see bias_act.py for the definition).
#include <torch/extension.h>

torch::Tensor bias_act_cuda(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                            int mode, int act, double alpha, double gain, double clamp, int64_t step);

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                              int mode, int act, double alpha, double gain, double clamp, int64_t step)
{
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous() && b.is_contiguous() && g1.is_contiguous() && g2.is_contiguous(),
                "bias_act: inputs must be contiguous");
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.scalar_type() == x.scalar_type() && b.device() == x.device()),
                "bias_act: b must be a 1-D tensor of x's dtype and device");
    TORCH_CHECK(g1.numel() == 0 || g1.sizes() == x.sizes(), "bias_act: g1 must have x's shape");
    TORCH_CHECK(g2.numel() == 0 || g2.sizes() == x.sizes(), "bias_act: g2 must have x's shape");
    TORCH_CHECK(mode >= 0 && mode <= 2 && act >= 0 && act <= 8, "bias_act: bad mode or activation");
    TORCH_CHECK(mode == 0 || g1.numel() == x.numel(), "bias_act: modes 1 and 2 need g1");
    TORCH_CHECK(mode != 2 || g2.numel() == x.numel(), "bias_act: mode 2 needs g2");
    TORCH_CHECK(step >= 1, "bias_act: step must be >= 1");
    return bias_act_cuda(x, b, g1, g2, mode, act, alpha, gain, clamp, step);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("bias_act", &bias_act, "bias + activation + gain + clamp, and its first and second derivatives (CUDA)");
}
