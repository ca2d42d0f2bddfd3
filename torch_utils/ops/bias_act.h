// Fused bias + activation + gain + clamp: parameters shared by bias_act.cpp and bias_act.cu.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

struct BiasActParams
{
    const void* x;      // [sizeX] input (grad 0), incoming gradient (grad 1 and 2)
    const void* b;      // [sizeB] bias, or nullptr
    const void* xref;   // [sizeX] forward input (before the bias), or nullptr
    const void* yref;   // [sizeX] forward output, or nullptr
    const void* dy;     // [sizeX] first-order incoming gradient (grad 2 only), or nullptr
    void*       y;      // [sizeX] result
    int64_t     sizeX;  // number of elements
    int64_t     sizeB;  // bias length = size of x along dim
    int64_t     stepB;  // stride of dim in x (elements), so channel = (i / stepB) % sizeB
    int         grad;   // 0 = forward, 1 = first derivative, 2 = second derivative
    int         act;    // activation index, see bias_act.py
    float       alpha;  // lrelu slope
    float       gain;   // output scale
    float       clamp;  // clamp limit, < 0 = none
};

// Launch the kernel for element type T (float, double, c10::Half, c10::BFloat16) on a stream.
template <class T> void bias_act_launch(const BiasActParams& p, cudaStream_t stream);
