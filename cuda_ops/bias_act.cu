// bias_act CUDA kernel. One elementwise pass computes, for z = x + b:
//   mode 0: y   = clamp(act(z) * gain)
//   mode 1: out = g1 * gain * act'(z)           (zero where y was clamped)
//   mode 2: out = g2 * g1 * gain * act''(z)     (zero where y was clamped)
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

enum { LINEAR, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH };

// act(z), act'(z) and act''(z) for activation `act`.
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
    case ELU: if (z > zero) { f = z; d1 = one; } else { T e = exp(z); f = alpha * (e - one); d1 = alpha * e; d2 = d1; } break;
    case SELU: if (z > zero) { f = selu_scale * z; d1 = selu_scale; }
               else { T e = exp(z); f = selu_scale * selu_alpha * (e - one); d1 = selu_scale * selu_alpha * e; d2 = d1; } break;
    case SOFTPLUS: { T s = one / (one + exp(-z)); f = z > T(20) ? z : log1p(exp(z)); d1 = s; d2 = s * (one - s); break; }
    case SWISH: { T s = one / (one + exp(-z)); f = z * s; d1 = s * (one + z * (one - s)); d2 = s * (one - s) * (2 + z * (one - 2 * s)); break; }
    default: f = z; d1 = one; break;  // LINEAR
    }
}

template <typename scalar_t>
__global__ void bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x, const scalar_t* __restrict__ b,
                                const scalar_t* __restrict__ g1, const scalar_t* __restrict__ g2,
                                int mode, int act, float alpha_f, float gain_f, float clamp_f,
                                double alpha_d, double gain_d, double clamp_d, int64_t n, int64_t step, int64_t nb)
{
    using acc_t = typename AccType<scalar_t>::type;
    const acc_t alpha = sizeof(acc_t) == 8 ? (acc_t)alpha_d : (acc_t)alpha_f;
    const acc_t gain = sizeof(acc_t) == 8 ? (acc_t)gain_d : (acc_t)gain_f;
    const acc_t clamp = sizeof(acc_t) == 8 ? (acc_t)clamp_d : (acc_t)clamp_f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        acc_t z = static_cast<acc_t>(x[i]);
        if (nb > 0) z += static_cast<acc_t>(b[(i / step) % nb]);
        acc_t f, d1, d2;
        activation<acc_t>(act, z, alpha, f, d1, d2);
        const acc_t y = f * gain;
        const bool clamped = clamp >= 0 && (y > clamp || y < -clamp);
        acc_t r;
        if (mode == 0) r = clamped ? (y > 0 ? clamp : -clamp) : y;
        else if (clamped) r = 0;
        else if (mode == 1) r = static_cast<acc_t>(g1[i]) * gain * d1;
        else r = static_cast<acc_t>(g2[i]) * static_cast<acc_t>(g1[i]) * gain * d2;
        out[i] = static_cast<scalar_t>(r);
    }
}

torch::Tensor bias_act_cuda(torch::Tensor x, torch::Tensor b, torch::Tensor g1, torch::Tensor g2,
                            int mode, int act, double alpha, double gain, double clamp, int64_t step)
{
    const at::cuda::OptionalCUDAGuard guard(device_of(x));
    auto out = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return out;
    const int threads = 256;
    const int blocks = (int)std::min<int64_t>((n + threads - 1) / threads, 65535 * 8);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act_cuda", [&] {
        bias_act_kernel<scalar_t><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
            out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
            b.numel() ? b.data_ptr<scalar_t>() : nullptr,
            g1.numel() ? g1.data_ptr<scalar_t>() : nullptr,
            g2.numel() ? g2.data_ptr<scalar_t>() : nullptr,
            mode, act, (float)alpha, (float)gain, (float)clamp, alpha, gain, clamp, n, step, b.numel());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}
