// Shared by both kernels, their launchers (CUDA: *.cu, CPU test harness: cpu/kernels_cpu.cpp) and host bindings.
// Plain C++: no CUDA header is needed to compile it.
#pragma once
#include <algorithm>
#include <cstdint>

// The dtypes the kernels are built for, as the host bindings (*.cpp) name them to the CUDA launch code (*.cu),
// whose types differ from torch's (__half for at::Half, __nv_bfloat16 for at::BFloat16).
enum KernelDtype { kFloat64, kFloat32, kFloat16, kBFloat16 };

// Accumulation type: float for float, half and bfloat16; double for double.
template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

constexpr int kThreads = 256;
// Kernels are grid-stride loops, so any grid covers every element; the cap keeps huge tensors at 8 blocks per
// 65535, far under CUDA's 2^31 - 1 limit on gridDim.x, with each thread looping over the rest.
constexpr int64_t kMaxBlocks = 65535 * 8;

// Blocks of kThreads for `total` elements (total >= 1), at most `max_blocks`.
inline int grid_blocks(int64_t total, int64_t max_blocks = kMaxBlocks)
{
    return (int)std::min<int64_t>((total + kThreads - 1) / kThreads, max_blocks);
}
