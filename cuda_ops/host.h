// upfirdn2d's host-side checks and output allocation, shared by the CUDA launch (upfirdn2d.cu) and the CPU
// test harness (cpu/kernels_cpu.cpp); the kernel is in upfirdn2d_kernel.cuh.
#pragma once
#include <torch/extension.h>

#include "upfirdn2d_kernel.cuh"

// The kernel's parameters for x [N, C, H, W] and f [fh, fw]; *y becomes the (uninitialized) output.
inline Upfirdn2dParams upfirdn2d_output(const torch::Tensor& x, const torch::Tensor& f, int upx, int upy, int downx,
                                        int downy, int padx0, int padx1, int pady0, int pady1, bool flip_filter,
                                        torch::Tensor* y)
{
    const Upfirdn2dParams p = upfirdn2d_params(x.size(0), x.size(1), x.size(2), x.size(3), f.size(0), f.size(1),
                                               upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter);
    TORCH_CHECK(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: output would be empty");
    *y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
    return p;
}

// The filter is read in the accumulation type of the image's dtype.
template <typename scalar_t> void check_filter_dtype(const torch::Tensor& f)
{
    using acc_t = typename AccType<scalar_t>::type;
    TORCH_CHECK(f.scalar_type() == c10::CppTypeToScalarType<acc_t>::value,
                "upfirdn2d: filter dtype must be the accumulation type");
}
