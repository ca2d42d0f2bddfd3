// PyTorch binding of the bias_act kernel: argument checks, dtype dispatch, launch on the current stream.
#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include "bias_act.h"

// True if t is empty (stands for "not given") or has x's shape, strides, dtype and device.
static bool same_layout(const torch::Tensor& t, const torch::Tensor& x)
{
    return t.numel() == 0 || (t.sizes() == x.sizes() && t.strides() == x.strides()
                              && t.dtype() == x.dtype() && t.device() == x.device());
}

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                              torch::Tensor dy, int64_t grad, int64_t dim, int64_t act,
                              double alpha, double gain, double clamp)
{
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_non_overlapping_and_dense(), "bias_act: x must be dense (contiguous or channels-last)");
    TORCH_CHECK(x.numel() < ((int64_t)1 << 40), "bias_act: x is too large");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2");
    TORCH_CHECK(act >= 1 && act <= 9, "bias_act: unknown activation index");
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.size(0) == x.size(dim) && b.is_contiguous()
                && b.dtype() == x.dtype() && b.device() == x.device()),
                "bias_act: b must be empty or a contiguous 1-D tensor of length x.size(dim), dtype and device of x");
    TORCH_CHECK(same_layout(xref, x), "bias_act: xref must be empty or match x in shape, strides, dtype, device");
    TORCH_CHECK(same_layout(yref, x), "bias_act: yref must be empty or match x in shape, strides, dtype, device");
    TORCH_CHECK(same_layout(dy, x), "bias_act: dy must be empty or match x in shape, strides, dtype, device");
    TORCH_CHECK(grad != 2 || dy.numel() > 0, "bias_act: grad=2 needs dy");

    const c10::cuda::CUDAGuard device_guard(x.device());
    torch::Tensor y = torch::empty_like(x); // keeps x's (dense) strides
    if (x.numel() == 0)
        return y;

    BiasActParams p;
    p.x     = x.data_ptr();
    p.b     = b.numel() ? b.data_ptr() : nullptr;
    p.xref  = xref.numel() ? xref.data_ptr() : nullptr;
    p.yref  = yref.numel() ? yref.data_ptr() : nullptr;
    p.dy    = dy.numel() ? dy.data_ptr() : nullptr;
    p.y     = y.data_ptr();
    p.sizeX = x.numel();
    p.sizeB = x.size(dim);
    p.stepB = x.size(dim) > 1 ? x.stride(dim) : 1; // a size-1 dim may have any stride
    p.grad  = (int)grad;
    p.act   = (int)act;
    p.alpha = (float)alpha;
    p.gain  = (float)gain;
    p.clamp = (float)clamp;

    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act", [&] {
        bias_act_launch<scalar_t>(p, stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp and its derivatives (CUDA)");
}
