// CUDA kernel of bias_act: elementwise f(x + b) * gain with clamping, and its first and second derivatives.
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>
#include "bias_act.h"

// Arithmetic type: float for float/half/bfloat16, double for double.
template <class T> struct AccType         { typedef float type; };
template <>        struct AccType<double> { typedef double type; };

// Activation indices, matching `cuda_idx` in bias_act.py.
enum { ACT_LINEAR = 1, ACT_RELU, ACT_LRELU, ACT_TANH, ACT_SIGMOID, ACT_ELU, ACT_SELU, ACT_SOFTPLUS, ACT_SWISH };

// f(s), f'(s) and f''(s) of activation `act` at s.
template <class A> __device__ __forceinline__ void act_eval(int act, A s, A alpha, A& f, A& d1, A& d2)
{
    const A selu_scale = (A)1.0507009873554805, selu_alpha = (A)1.6732632423543772;
    d2 = 0;
    switch (act)
    {
    case ACT_RELU:    f = s > 0 ? s : 0; d1 = s > 0 ? 1 : 0; break;
    case ACT_LRELU:   f = s > 0 ? s : s * alpha; d1 = s > 0 ? 1 : alpha; break;
    case ACT_TANH:    f = tanh(s); d1 = 1 - f * f; d2 = -2 * f * d1; break;
    case ACT_SIGMOID: f = 1 / (1 + exp(-s)); d1 = f * (1 - f); d2 = d1 * (1 - 2 * f); break;
    case ACT_ELU:     if (s > 0) { f = s; d1 = 1; } else { f = expm1(s); d1 = exp(s); d2 = d1; } break;
    case ACT_SELU:    if (s > 0) { f = selu_scale * s; d1 = selu_scale; }
                      else { d1 = selu_scale * selu_alpha * exp(s); f = selu_scale * selu_alpha * expm1(s); d2 = d1; } break;
    case ACT_SOFTPLUS:{ A sig = 1 / (1 + exp(-s)); f = s > 20 ? s : log1p(exp(s)); d1 = sig; d2 = sig * (1 - sig); } break;
    case ACT_SWISH:   { A sig = 1 / (1 + exp(-s)); f = s * sig; d1 = sig * (1 + s * (1 - sig));
                        d2 = sig * (1 - sig) * (2 + s * (1 - 2 * sig)); } break;
    default:          f = s; d1 = 1; break; // linear
    }
}

// f'(s) of `act` from its output t = f(s), for activations whose backward keeps only y.
template <class A> __device__ __forceinline__ A act_d1_from_output(int act, A t, A alpha)
{
    switch (act)
    {
    case ACT_RELU:  return t > 0 ? 1 : 0;
    case ACT_LRELU: return t > 0 ? 1 : alpha;
    default:        return 1; // linear
    }
}

template <class T> __global__ void bias_act_kernel(BiasActParams p)
{
    typedef typename AccType<T>::type A;
    const A gain = (A)p.gain, clamp = (A)p.clamp, alpha = (A)p.alpha;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.sizeX; i += (int64_t)gridDim.x * blockDim.x)
    {
        const A bias = p.b ? (A)((const T*)p.b)[(i / p.stepB) % p.sizeB] : (A)0;
        const A x = (A)((const T*)p.x)[i];
        A out;
        if (p.grad == 0)
        {
            A f, d1, d2;
            act_eval<A>(p.act, x + bias, alpha, f, d1, d2);
            out = f * gain;
            if (clamp >= 0)
                out = out > clamp ? clamp : (out < -clamp ? -clamp : out);
        }
        else
        {
            // derivative (and the clamp mask) from the saved input if there is one, else from the output
            A d1, d2 = 0;
            bool pass = true;
            if (p.xref)
            {
                A f;
                act_eval<A>(p.act, (A)((const T*)p.xref)[i] + bias, alpha, f, d1, d2);
                pass = clamp < 0 || fabs(f * gain) <= clamp;
            }
            else
            {
                const A yv = p.yref ? (A)((const T*)p.yref)[i] : (A)0;
                d1 = act_d1_from_output<A>(p.act, yv * gain, alpha);
                pass = clamp < 0 || fabs(yv) < clamp;
            }
            if (p.grad == 1)
                out = pass ? x * gain * d1 : (A)0;
            else
                out = pass ? x * (A)((const T*)p.dy)[i] * gain * d2 : (A)0;
        }
        ((T*)p.y)[i] = (T)out;
    }
}

template <class T> void bias_act_launch(const BiasActParams& p, cudaStream_t stream)
{
    const int block = 256;
    int64_t blocks = (p.sizeX + block - 1) / block;
    if (blocks > 65536 * 8) blocks = 65536 * 8; // grid-stride loop covers the rest
    if (blocks < 1) blocks = 1;
    bias_act_kernel<T><<<(unsigned)blocks, block, 0, stream>>>(p);
}

template void bias_act_launch<float>(const BiasActParams&, cudaStream_t);
template void bias_act_launch<double>(const BiasActParams&, cudaStream_t);
template void bias_act_launch<c10::Half>(const BiasActParams&, cudaStream_t);
template void bias_act_launch<c10::BFloat16>(const BiasActParams&, cudaStream_t);
