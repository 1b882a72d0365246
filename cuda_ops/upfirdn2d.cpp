// Python binding of the upfirdn2d CUDA kernel (see upfirdn2d.py for the definition).
#include <torch/extension.h>

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                             int padx0, int padx1, int pady0, int pady1, bool flip_filter);

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                               int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the same device as x");
    TORCH_CHECK(x.dim() == 4 && f.dim() == 2, "upfirdn2d: x must be [N, C, H, W] and f [fh, fw]");
    TORCH_CHECK(x.is_contiguous() && f.is_contiguous(), "upfirdn2d: inputs must be contiguous");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    return upfirdn2d_cuda(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (CUDA)");
}
