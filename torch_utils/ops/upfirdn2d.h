// Upsample, FIR filter, downsample: parameters shared by upfirdn2d.cpp and upfirdn2d.cu.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

struct UpFirDn2dParams
{
    const void*  x;                  // input [N, C, inH, inW], any strides
    const float* f;                  // filter [filterH, filterW], contiguous float32
    void*        y;                  // output [N, C, outH, outW], contiguous
    int64_t      sx[4];              // strides of x (elements) for N, C, H, W
    int          n, c;               // batch and channels
    int          inH, inW;           // input size
    int          outH, outW;         // output size
    int          filterH, filterW;   // filter size
    int          upX, upY;           // upsampling factors
    int          downX, downY;       // downsampling factors
    int          padX0, padY0;       // leading padding (may be negative)
    int          flip;               // 1 = correlate with f, 0 = convolve
    float        gain;               // output scale
};

// Launch the kernel for element type T (float, double, c10::Half, c10::BFloat16) on a stream.
template <class T> void upfirdn2d_launch(const UpFirDn2dParams& p, cudaStream_t stream);
