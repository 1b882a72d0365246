// Just enough CUDA for the kernels of this package to compile as C++ and run on the CPU, for tests.
// The kernels are grid-stride loops without shared memory, barriers or warp intrinsics, so running every
// (block, thread) pair in turn computes what the GPU computes. Include after the torch headers.
#pragma once
#include <cmath>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#if !defined(__GNUC__)
#define __restrict__ __restrict
#endif

// CUDA's math functions are overloaded for float in the global namespace; without these, float arguments
// would go through the double versions.
using std::exp;
using std::log1p;
using std::tanh;

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x = 1, unsigned int y = 1, unsigned int z = 1) : x(x), y(y), z(z) {}
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// kernel<<<grid, block>>>(args...), one thread after another.
template <typename... Params, typename... Args>
void launch_on_cpu(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args)
{
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx) {
                blockIdx = dim3(bx, by, bz);
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx) {
                            threadIdx = dim3(tx, ty, tz);
                            kernel(args...);
                        }
            }
}
