// Python binding of the upfirdn2d CUDA kernel (see upfirdn2d.py for the definition): checks, output, device and
// stream here; the launch in upfirdn2d.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "host.h"
#include "launch.h"

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                               int padx0, int padx1, int pady0, int pady1, bool flip_filter)
{
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the same device as x");
    TORCH_CHECK(x.dim() == 4 && f.dim() == 2, "upfirdn2d: x must be [N, C, H, W] and f [fh, fw]");
    TORCH_CHECK(x.is_contiguous() && f.is_contiguous(), "upfirdn2d: inputs must be contiguous");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    const KernelDtype dtype = kernel_dtype(x);
    const c10::cuda::CUDAGuard guard(x.device());
    torch::Tensor y;
    const Upfirdn2dParams p = upfirdn2d_output(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter,
                                               &y);
    if (y.numel() == 0) return y;
    C10_CUDA_CHECK(upfirdn2d_launch(dtype, x.data_ptr(), f.data_ptr(), y.data_ptr(), p,
                                    c10::cuda::getCurrentCUDAStream()));
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (CUDA)");
}
