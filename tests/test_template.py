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
