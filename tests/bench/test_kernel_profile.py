"""bench/kernel_profile.py: kernel and operator names sorted into kinds, and
the report's shares."""

from __future__ import annotations

import pytest

from bench.kernel_profile import kind, profile_steps, report


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "GEMM"),
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN", "GEMM"),
        ("aten::addmm", "GEMM"),
        ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"),  # before cutlass's GEMMs
        ("flash_fwd_kernel", "attention"),
        ("triton_per_fused_native_layer_norm_0", "compiled (Triton / C++)"),  # before layer norm
        ("## Call CompiledFxGraph fdljozm ##", "compiled (Triton / C++)"),
        (
            "void at::native::(anonymous namespace)::cunn_SoftMaxForward<8>",
            "softmax / cross-entropy",
        ),
        ("aten::nll_loss_backward", "softmax / cross-entropy"),
        ("void at::native::vectorized_layer_norm_kernel<float>", "layer norm"),
        ("void at::native::fused_dropout_kernel_vec", "dropout"),
        ("void at::native::multi_tensor_apply_kernel<AdamW>", "optimizer"),
        ("void at::native::indexing_backward_kernel", "embedding / indexing"),
        ("Memcpy DtoD (Device -> Device)", "copy / cast / fill"),
        ("void at::native::reduce_kernel<512, 1>", "reduction"),
        ("void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>", "elementwise"),
        ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", "communication"),
        ("some_kernel_nobody_named", "other"),
    ],
)
def test_kind(name, expected):
    assert kind(name) == expected


def test_report_adds_up_and_ranks():
    rows = [("flash_fwd_kernel", 300.0), ("nvjet_gemm", 500.0), ("nvjet_gemm", 100.0)]
    rows += [("triton_poi_fused_add_0", 100.0)]
    text = report(rows, wall_us=2000.0, n=2, label="x", what="kernels", top=2)
    lines = text.splitlines()
    assert "wall 1.00 ms per step, kernels 0.50 ms per step (50% of the wall time)" in lines[0]
    kinds = [line.split("  ")[1].strip() for line in lines[1:4]]
    assert kinds == ["GEMM", "attention", "compiled (Triton / C++)"]  # largest first
    assert "60.0%" in lines[1] and "30.0%" in lines[2] and "10.0%" in lines[3]
    top = lines[-2:]  # two names, summed over their rows
    assert "nvjet_gemm" in top[0] and "0.30 ms" in top[0] and "flash_fwd_kernel" in top[1]


def test_profile_steps_on_cpu_reports_operators():
    import torch

    layer = torch.nn.Linear(64, 64)
    x = torch.randn(32, 64)

    def step():
        layer(x).sum().backward()

    text = profile_steps(step, n=2, cuda=False, label="linear")
    assert text.startswith("profile of linear: 2 steps")
    assert "CPU operators (self time)" in text and "GEMM" in text


def test_device_kernels_are_the_non_cpu_events():
    """The GPU path's event filter, on events shaped as torch.profiler's."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from bench.kernel_profile import _device_kernels

    def ev(name, device, us, is_async=False):
        return SimpleNamespace(
            name=name, device_type=device, device_time_total=us, is_async=is_async
        )

    events = [
        ev("aten::mm", DeviceType.CPU, 900.0),  # its kernel is counted once, below
        ev("nvjet_gemm", DeviceType.CUDA, 400.0),
        ev("flash_fwd_kernel", DeviceType.CUDA, 100.0),
        ev("an async range", DeviceType.CUDA, 50.0, is_async=True),
    ]
    prof = SimpleNamespace(events=lambda: events)
    assert _device_kernels(prof) == [("nvjet_gemm", 400.0), ("flash_fwd_kernel", 100.0)]
