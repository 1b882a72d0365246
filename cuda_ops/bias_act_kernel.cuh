// bias_act kernel. One elementwise pass computes, for z = x + b:
//   mode 0: y   = clamp(act(z) * gain)
//   mode 1: out = g1 * gain * act'(z)           (zero unless -clamp < y < clamp)
//   mode 2: out = g2 * g1 * gain * act''(z)     (zero unless -clamp < y < clamp)
// Compiled by nvcc (bias_act.cu) and, for tests, as C++ for the CPU.
#pragma once
#include "kernel_common.cuh"

enum { LINEAR, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH };

// act(z), act'(z) and act''(z) for activation `act`. At the kink z = 0, as torch's autograd: elu'(0) = alpha and
// elu''(0) = 0 (selu likewise).
template <typename T>
__device__ __forceinline__ void activation(int act, T z, T alpha, T& f, T& d1, T& d2)
{
    const T one = 1, zero = 0;
    const T selu_scale = 1.0507009873554804934193349852946;
    const T selu_alpha = 1.6732632423543772848170429916717;
    d2 = zero;
    switch (act) {
    case RELU: f = z > zero ? z : zero; d1 = z > zero ? one : zero; break;
    case LRELU: f = z > zero ? z : z * alpha; d1 = z > zero ? one : alpha; break;
    case TANH: { T t = tanh(z); f = t; d1 = one - t * t; d2 = -2 * t * d1; break; }
    case SIGMOID: { T s = one / (one + exp(-z)); f = s; d1 = s * (one - s); d2 = d1 * (one - 2 * s); break; }
    case ELU:
        if (z > zero) { f = z; d1 = one; break; }
        { T e = exp(z); f = alpha * (e - one); d1 = alpha * e; d2 = z < zero ? d1 : zero; }
        break;
    case SELU:
        if (z > zero) { f = selu_scale * z; d1 = selu_scale; break; }
        { T e = exp(z); f = selu_scale * selu_alpha * (e - one); d1 = selu_scale * selu_alpha * e; }
        d2 = z < zero ? d1 : zero;
        break;
    case SOFTPLUS: {
        T s = one / (one + exp(-z));
        f = z > T(20) ? z : log1p(exp(z)); d1 = s; d2 = s * (one - s);
        break;
    }
    case SWISH: {
        T s = one / (one + exp(-z));
        f = z * s; d1 = s * (one + z * (one - s)); d2 = s * (one - s) * (2 + z * (one - 2 * s));
        break;
    }
    default: f = z; d1 = one; break;  // LINEAR
    }
}

template <typename scalar_t>
__global__ void bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                const scalar_t* __restrict__ b, const scalar_t* __restrict__ g1,
                                const scalar_t* __restrict__ g2,
                                int mode, int act, float alpha_f, float gain_f, float clamp_f,
                                double alpha_d, double gain_d, double clamp_d, int64_t n, int64_t step, int64_t nb)
{
    using acc_t = typename AccType<scalar_t>::type;
    const acc_t alpha = sizeof(acc_t) == 8 ? (acc_t)alpha_d : (acc_t)alpha_f;
    const acc_t gain = sizeof(acc_t) == 8 ? (acc_t)gain_d : (acc_t)gain_f;
    const acc_t clamp = sizeof(acc_t) == 8 ? (acc_t)clamp_d : (acc_t)clamp_f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        acc_t z = static_cast<acc_t>(x[i]);
        if (nb > 0) z += static_cast<acc_t>(b[(i / step) % nb]);
        acc_t f, d1, d2;
        activation<acc_t>(act, z, alpha, f, d1, d2);
        const acc_t y = f * gain;
        // As torch.clamp(y, -clamp, clamp): NaN stays NaN, and the gradient passes only strictly inside.
        const bool clamping = clamp >= 0;
        acc_t r;
        if (mode == 0) r = clamping && y > clamp ? clamp : clamping && y < -clamp ? -clamp : y;
        else if (clamping && !(y > -clamp && y < clamp)) r = 0;
        else if (mode == 1) r = static_cast<acc_t>(g1[i]) * gain * d1;
        else r = static_cast<acc_t>(g2[i]) * static_cast<acc_t>(g1[i]) * gain * d2;
        out[i] = static_cast<scalar_t>(r);
    }
}
