// The CUDA kernels of upfirdn2d and bias_act compiled as C++ and launched on the CPU (see cuda_shim.h), with
// the same bindings as the CUDA extensions so that the ops' Python code can drive them. For tests only.
#include "../host.h"

#include "cuda_shim.h"
#include "../bias_act_kernel.cuh"
#include "../upfirdn2d_kernel.cuh"

static int64_t max_blocks = kMaxBlocks;
static int64_t last_grid = 0;

static void launch_grid(int64_t total)
{
    last_grid = grid_blocks(total, max_blocks);
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                               int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    TORCH_CHECK(x.device().is_cpu() && f.device().is_cpu(), "upfirdn2d (CPU harness): tensors must be on the CPU");
    TORCH_CHECK(x.dim() == 4 && f.dim() == 2, "upfirdn2d: x must be [N, C, H, W] and f [fh, fw]");
    TORCH_CHECK(x.is_contiguous() && f.is_contiguous(), "upfirdn2d: inputs must be contiguous");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    torch::Tensor y;
    const Upfirdn2dParams p = upfirdn2d_output(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter,
                                               &y);
    const int64_t total = p.planes * p.out_h * p.out_w;
    if (total == 0) return y;
    launch_grid(total);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = typename AccType<scalar_t>::type;
        launch_on_cpu(upfirdn2d_kernel<scalar_t>, dim3(last_grid), dim3(kThreads),
                      x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), y.data_ptr<scalar_t>(), p);
    });
    return y;
}

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                              int mode, int act, double alpha, double gain, double clamp, int64_t step)
{
    TORCH_CHECK(x.device().is_cpu(), "bias_act (CPU harness): x must be on the CPU");
    TORCH_CHECK(x.is_contiguous() && b.is_contiguous() && g1.is_contiguous() && g2.is_contiguous(),
                "bias_act: inputs must be contiguous");
    TORCH_CHECK(mode >= 0 && mode <= 2 && act >= 0 && act <= 8, "bias_act: bad mode or activation");
    TORCH_CHECK(mode == 0 || g1.numel() == x.numel(), "bias_act: modes 1 and 2 need g1");
    TORCH_CHECK(mode != 2 || g2.numel() == x.numel(), "bias_act: mode 2 needs g2");
    TORCH_CHECK(step >= 1, "bias_act: step must be >= 1");
    auto out = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return out;
    launch_grid(n);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act", [&] {
        launch_on_cpu(bias_act_kernel<scalar_t>, dim3(last_grid), dim3(kThreads),
                      out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                      b.numel() ? b.data_ptr<scalar_t>() : nullptr,
                      g1.numel() ? g1.data_ptr<scalar_t>() : nullptr,
                      g2.numel() ? g2.data_ptr<scalar_t>() : nullptr,
                      mode, act, (float)alpha, (float)gain, (float)clamp, alpha, gain, clamp, n, step, b.numel());
    });
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "the upfirdn2d CUDA kernel, run on the CPU");
    m.def("bias_act", &bias_act, "the bias_act CUDA kernel, run on the CPU");
    m.def("set_max_blocks", [](int64_t blocks) { max_blocks = blocks; },
          "cap the grid at this many blocks (kMaxBlocks by default) so that grid-stride loops can be tested");
    m.def("max_blocks_default", [] { return kMaxBlocks; }, "the launchers' grid cap");
    m.def("last_grid", [] { return last_grid; }, "blocks in the most recent launch");
}
