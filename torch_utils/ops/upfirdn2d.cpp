// PyTorch binding of the upfirdn2d kernel: argument checks, output allocation, dtype dispatch, launch.
#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include "upfirdn2d.h"

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                               int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip, double gain)
{
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W]");
    TORCH_CHECK(f.dim() == 2 && f.numel() > 0 && f.scalar_type() == at::ScalarType::Float && f.device() == x.device(),
                "upfirdn2d: f must be a non-empty 2-D float32 tensor on the device of x");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    TORCH_CHECK(x.numel() < ((int64_t)1 << 40) && x.size(2) * upx < (1 << 30) && x.size(3) * upy < (1 << 30),
                "upfirdn2d: x is too large");
    const int64_t paddedW = x.size(3) * upx + padx0 + padx1;
    const int64_t paddedH = x.size(2) * upy + pady0 + pady1;
    TORCH_CHECK(paddedW >= f.size(1) && paddedH >= f.size(0), "upfirdn2d: padded input is smaller than the filter");
    const int64_t outW = (paddedW - f.size(1)) / downx + 1;
    const int64_t outH = (paddedH - f.size(0)) / downy + 1;

    const c10::cuda::CUDAGuard device_guard(x.device());
    torch::Tensor fc = f.contiguous();
    torch::Tensor y = torch::empty({x.size(0), x.size(1), outH, outW}, x.options().memory_format(at::MemoryFormat::Contiguous));
    if (y.numel() == 0)
        return y;

    UpFirDn2dParams p;
    p.x = x.data_ptr();
    p.f = fc.data_ptr<float>();
    p.y = y.data_ptr();
    for (int k = 0; k < 4; k++)
        p.sx[k] = x.stride(k);
    p.n = (int)x.size(0);        p.c = (int)x.size(1);
    p.inH = (int)x.size(2);      p.inW = (int)x.size(3);
    p.outH = (int)outH;          p.outW = (int)outW;
    p.filterH = (int)f.size(0);  p.filterW = (int)f.size(1);
    p.upX = (int)upx;            p.upY = (int)upy;
    p.downX = (int)downx;        p.downY = (int)downy;
    p.padX0 = (int)padx0;        p.padY0 = (int)pady0;
    p.flip = flip ? 1 : 0;
    p.gain = (float)gain;

    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        upfirdn2d_launch<scalar_t>(p, stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "Upsample, FIR filter, downsample (CUDA)");
}
