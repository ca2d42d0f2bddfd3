// CUDA kernel of upfirdn2d: one thread per output pixel sums the filter taps that land on input
// pixels of the zero-upsampled, padded image (the inserted zeros are skipped, not multiplied).
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>
#include "upfirdn2d.h"

// Arithmetic type: float for float/half/bfloat16, double for double.
template <class T> struct AccType         { typedef float type; };
template <>        struct AccType<double> { typedef double type; };

// First tap index k >= 0 with (start + k) divisible by up, i.e. the first tap on a real input pixel.
__device__ __forceinline__ int first_aligned_tap(int start, int up)
{
    int r = start % up;          // in (-up, up)
    return r == 0 ? 0 : (r > 0 ? up - r : -r);
}

template <class T> __global__ void upfirdn2d_kernel(UpFirDn2dParams p)
{
    typedef typename AccType<T>::type A;
    const int64_t total = (int64_t)p.n * p.c * p.outH * p.outW;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
    {
        // output coordinates; ox fastest so that neighbouring threads read neighbouring pixels
        const int ox = (int)(i % p.outW);
        int64_t t = i / p.outW;
        const int oy = (int)(t % p.outH);
        t /= p.outH;
        const int ci = (int)(t % p.c);
        const int ni = (int)(t / p.c);
        const T* x = (const T*)p.x + ni * p.sx[0] + ci * p.sx[1];

        // the filter window starts at (ox * downX, oy * downY) in the padded upsampled image, i.e. at
        // (ox * downX - padX0, oy * downY - padY0) in the unpadded upsampled image
        const int ux0 = ox * p.downX - p.padX0;
        const int uy0 = oy * p.downY - p.padY0;
        A acc = 0;
        for (int ky = first_aligned_tap(uy0, p.upY); ky < p.filterH; ky += p.upY)
        {
            const int iy = (uy0 + ky) / p.upY;
            if (uy0 + ky < 0 || iy >= p.inH) continue;
            const int fy = p.flip ? ky : p.filterH - 1 - ky;
            for (int kx = first_aligned_tap(ux0, p.upX); kx < p.filterW; kx += p.upX)
            {
                const int ix = (ux0 + kx) / p.upX;
                if (ux0 + kx < 0 || ix >= p.inW) continue;
                const int fx = p.flip ? kx : p.filterW - 1 - kx;
                acc += (A)x[iy * p.sx[2] + ix * p.sx[3]] * (A)__ldg(&p.f[fy * p.filterW + fx]);
            }
        }
        ((T*)p.y)[i] = (T)(acc * (A)p.gain);
    }
}

template <class T> void upfirdn2d_launch(const UpFirDn2dParams& p, cudaStream_t stream)
{
    const int block = 256;
    const int64_t total = (int64_t)p.n * p.c * p.outH * p.outW;
    int64_t blocks = (total + block - 1) / block;
    if (blocks > 65536 * 8) blocks = 65536 * 8; // grid-stride loop covers the rest
    if (blocks < 1) blocks = 1;
    upfirdn2d_kernel<T><<<(unsigned)blocks, block, 0, stream>>>(p);
}

template void upfirdn2d_launch<float>(const UpFirDn2dParams&, cudaStream_t);
template void upfirdn2d_launch<double>(const UpFirDn2dParams&, cudaStream_t);
template void upfirdn2d_launch<c10::Half>(const UpFirDn2dParams&, cudaStream_t);
template void upfirdn2d_launch<c10::BFloat16>(const UpFirDn2dParams&, cudaStream_t);
