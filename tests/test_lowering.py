"""Lowering: numba-cuda's private kernel-IR entry point behaves as irprune assumes."""

from __future__ import annotations

from numba import types

from irprune.geometry import ConvGeometry
from irprune.lowering import numba_nvvm_ir
from irprune.templates.conv2d import conv2d_nchw


def test_numba_kernel_ir_has_the_array_abi():
    f4 = types.float32[:, :, :, ::1]
    text = numba_nvvm_ir(conv2d_nchw.py_func, (f4, f4, types.float32[::1], f4,
                                                types.int64, types.int64, types.boolean, types.int64))
    define = next(l for l in text.splitlines() if l.startswith("define"))
    # 7 ABI fields per array (4-D: 5 + 4 shape + 4 strides = 13), then the scalars.
    for field in ("x.0", "x.4", "x.5.3", "x.6.3", "w.4", "bias.4", "y.4"):
        assert f'%"{field}"' in define
    assert '%"stride"' in define and "!nvvm.annotations" in text


def test_ir_template_has_one_constant_offset_load_per_weight():
    g = ConvGeometry(1, 3, 6, 6, 4, 3, 3, 1, 1)
    irt = conv2d_nchw.ir_template(g, 2, relu=False, has_bias=False)
    text = irt.text
    assert "%w.4" in text and "%x.5" not in text  # shapes are bound, data pointers are not
    loads = [l for l in text.splitlines() if "load float" in l]
    gep_w = [l for l in text.splitlines() if "getelementptr" in l and "%w.4" in l]
    # The IR template is channel group 0: group_size (2) x C x R x S weights.
    group_weights = 2 * g.C * g.R * g.S
    assert len(gep_w) == group_weights - 1  # offset 0 is the pointer itself
    assert len(loads) >= group_weights
    assert "ctaid.y" not in text  # blockIdx.y is bound to 0
    assert irt.kernel_name == "irprune_conv2d_nchw"
