"""@sparse_conv on user templates, and the errors of templates that break the contract."""

from __future__ import annotations

import re

import numpy as np
import pytest

from irprune import TemplateContractError, sparse_conv
from irprune.reference import prune_random
from tests.user_templates import breaks_contract, conv2d_relu6


def test_user_template_with_fused_epilogue_compiles_to_immediates():
    w = prune_random((6, 3, 3, 3), 0.8, seed=1)
    b = np.arange(6, dtype=np.float32) * 0.25 - 0.5
    k = conv2d_relu6.compile(w, (1, 3, 8, 8), padding=1, bias=b, group_size=2)
    ptx = k.asm["ptx"]
    assert len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M)) == np.count_nonzero(w)
    assert k.trace.missing == []
    assert re.search(r"min\.f32|max\.f32", ptx), "the ReLU6 epilogue is missing"
    assert "%w.4" not in k.asm["llvm-pruned"] and "%b.4" not in k.asm["llvm-pruned"]


def test_weight_used_as_a_threshold_is_refused():
    w = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(TemplateContractError, match="may only multiply a weight"):
        breaks_contract.compile(w, (1, 1, 2, 2))


def test_wrong_signature_is_refused_at_decoration():
    def bad(x, w, y, stride, padding):
        pass

    with pytest.raises(TemplateContractError, match="must take"):
        sparse_conv(weight="w")(bad)


def test_dense_launch_syntax_is_forwarded():
    assert conv2d_relu6[1024, 128] is not None


_SOURCE = '''
def helper(v):
    return v * SCALE


def kern(x, w, y, stride, padding, relu, group_size):
    y[0, 0, 0, 0] = helper(x[0, 0, 0, 0] * TILE) + w[0, 0, 0, 0] + TABLE[0]
'''


def _template_with(TABLE=(1.0,), **consts):
    """The same template source, compiled against module constants ``consts``."""
    namespace = dict(consts, TABLE=np.array(TABLE, np.float32))
    exec(compile(_SOURCE, "<user template>", "exec"), namespace)
    return sparse_conv(namespace["kern"])


def test_template_key_covers_module_constants_and_called_functions():
    # Numba freezes a template's module constants into the kernel: a cache
    # key from the source alone would hand back the kernel of the old value.
    base = _template_with(TILE=2, SCALE=1.0)
    assert base.source_digest() == _template_with(TILE=2, SCALE=1.0).source_digest()
    assert base.source_digest() != _template_with(TILE=4, SCALE=1.0).source_digest()
    assert base.source_digest() != _template_with(TILE=2, SCALE=3.0).source_digest()  # via helper()
    assert base.source_digest() != _template_with(TILE=2, SCALE=1.0, TABLE=(2.0,)).source_digest()
    from irprune.geometry import ConvGeometry

    g = ConvGeometry.from_weight((4, 3, 3, 3), (1, 3, 8, 8), 1, 1, 1)
    assert (base.ir_template_key(g, 4, False, False)
            != _template_with(TILE=4, SCALE=1.0).ir_template_key(g, 4, False, False))
