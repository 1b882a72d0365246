// Host-side helpers with torch, for the bindings (*.cpp) and the CPU test harness (cpu/kernels_cpu.cpp). The
// CUDA launch code (*.cu) includes no torch header.
#pragma once
#include <torch/extension.h>

#include "kernel_common.cuh"
#include "upfirdn2d_params.h"

// The kernels' name for x's dtype.
inline KernelDtype kernel_dtype(const torch::Tensor& x)
{
    const at::ScalarType t = x.scalar_type();
    TORCH_CHECK_TYPE(t == at::kDouble || t == at::kFloat || t == at::kHalf || t == at::kBFloat16,
                     "cuda_ops: the kernels take float64, float32, float16 or bfloat16, not ", t);
    return t == at::kDouble ? kFloat64 : t == at::kFloat ? kFloat32 : t == at::kHalf ? kFloat16 : kBFloat16;
}

// The kernel's parameters for x [N, C, H, W] and f [fh, fw]; *y becomes the (uninitialized) output. The filter is
// read in the accumulation type of x's dtype (AccType).
inline Upfirdn2dParams upfirdn2d_output(const torch::Tensor& x, const torch::Tensor& f, int upx, int upy, int downx,
                                        int downy, int padx0, int padx1, int pady0, int pady1, bool flip_filter,
                                        torch::Tensor* y)
{
    TORCH_CHECK(f.scalar_type() == (x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat),
                "upfirdn2d: filter dtype must be the accumulation type");
    const Upfirdn2dParams p = upfirdn2d_params(x.size(0), x.size(1), x.size(2), x.size(3), f.size(0), f.size(1),
                                               upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter);
    TORCH_CHECK(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: output would be empty");
    *y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
    return p;
}
