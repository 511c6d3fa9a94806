"""place-output-channels: a kernel compiled in the shared channel order still writes the layer's
output in its own order (the pruned IR run on the CPU against the float64 reference)."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.errors import PassError
from irprune.host_exec import run_on_host
from irprune.kernel import compile_conv2d
from irprune.passes import DEFAULT_PIPELINE
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw

CASES = [
    # K, C, H, R, stride, padding, group_size, slices
    (8, 16, 5, 1, 1, 0, 4, 1),     # 1x1, two groups
    (12, 6, 7, 3, 1, 1, 4, 1),     # 3x3 with padding, three groups
    (16, 8, 6, 1, 2, 0, 4, 2),     # strided, input-channel slices (stores after the reduction)
    (8, 32, 4, 1, 1, 0, 2, 1),     # groups of two
]


def _case(K, C, H, R, seed=0):
    rng = np.random.default_rng(K + seed)
    w = prune_random((K, C, R, R), 0.7, seed=K)
    b = rng.standard_normal(K).astype(np.float32)
    x = rng.standard_normal((2, C, H, H)).astype(np.float32)
    return w, b, x


def _err(y, ref):
    assert not np.isnan(y).any(), "some output was never written"
    return float(np.max(np.abs(y - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "K{}C{}H{}R{}s{}p{}g{}x{}".format(*c))
def test_shared_order_computes_the_convolution(case):
    K, C, H, R, stride, padding, gs, slices = case
    w, b, x = _case(K, C, H, R)
    k = conv2d_nchw.compile(w, x.shape, stride, padding, bias=b, relu=True, cache=False,
                            group_size=gs, slices=slices, channel_order="shared")
    order = k.output_channels
    assert order is not None and sorted(order.tolist()) == list(range(K))
    assert k.stats["channel_order"] == "shared"
    assert k.stats["passes"]["place-output-channels"]["stores_moved"] > 0
    assert _err(run_on_host(k, x), conv2d_reference(x, w, stride, padding, b, relu=True)) < 1e-5
    # llvm-cleanup folds each move into its store's address: no instruction is left over
    natural = conv2d_nchw.compile(w, x.shape, stride, padding, bias=b, relu=True, cache=False,
                                  group_size=gs, slices=slices)
    count = lambda t, op: sum(1 for line in t.splitlines() if f" {op} " in line)
    for op in ("store", "getelementptr"):
        assert count(k.asm["llvm-pruned"], op) <= count(natural.asm["llvm-pruned"], op), op


def test_without_the_pass_the_output_is_in_the_wrong_order():
    """The check can fail: the same kernel without place-output-channels writes channel k's
    values where the compiled order's k-th channel goes."""
    w, b, x = _case(8, 16, 5, 1)
    pipeline = DEFAULT_PIPELINE.replace("place-output-channels,", "")
    k = compile_conv2d(conv2d_nchw, w, x.shape, bias=b, cache=False, group_size=4,
                       channel_order="shared", pipeline=pipeline)
    ref = conv2d_reference(x, w, 1, 0, b)
    y = run_on_host(k, x)
    assert _err(y, ref) > 0.1
    assert _err(y, ref[:, k.output_channels]) < 1e-5


def test_parts_and_shares_make_the_same_layer(monkeypatch):
    import irprune.region_shares as rs

    w, b, x = _case(16, 8, 5, 3, seed=1)
    ref = conv2d_reference(x, w, 1, 1, b)
    one = conv2d_nchw.compile(w, x.shape, 1, 1, bias=b, cache=False, group_size=2,
                              channel_order="shared")
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "60")  # several modules
    parts = conv2d_nchw.compile(w, x.shape, 1, 1, bias=b, cache=False, group_size=2,
                                channel_order="shared")
    monkeypatch.delenv("IRPRUNE_MAX_PART_NNZ")
    monkeypatch.setattr(rs, "SHARE_MIN_NNZ", 8)
    monkeypatch.setenv("IRPRUNE_JOBS", "3")  # one module, its regions in three processes
    shares = conv2d_nchw.compile(w, x.shape, 1, 1, bias=b, cache=False, group_size=2,
                                 channel_order="shared")
    assert parts.stats["parts"] > 1 and shares.stats["shares"] == 3
    assert shares.asm["llvm-pruned"] == one.asm["llvm-pruned"]
    for k in (one, parts, shares):
        assert np.array_equal(k.output_channels, one.output_channels)
        assert _err(run_on_host(k, x), ref) < 1e-5


def test_natural_order_changes_nothing():
    w, b, x = _case(8, 16, 5, 1)
    k = conv2d_nchw.compile(w, x.shape, bias=b, cache=False, group_size=4)
    assert k.output_channels is None and k.stats["channel_order"] == "natural"
    assert k.asm["place-output-channels"] == k.asm["strip-zero-weights"]


def test_template_index_follows_the_order():
    w, _, x = _case(8, 16, 5, 1)
    k = conv2d_nchw.compile(w, x.shape, cache=False, group_size=4, channel_order="shared")
    for j, ch in enumerate(k.output_channels):
        group, _, idx = k.template_index(int(ch), 0, 0, 0)
        assert (group, idx[0]) == (j // 4, j % 4)


def test_stores_it_cannot_place_are_refused():
    """A region whose output stores do not fall one channel apart is refused, not guessed."""
    from irprune.ir.textir import parse_module
    from irprune.passes import PassContext
    from irprune.passes.base import Region
    from irprune.passes.place_output_channels import PlaceOutputChannels

    text = """
define void @k(ptr %x, ptr %y) {
  %v = load float, ptr %x, align 4
  store float %v, ptr %y, align 4
  %p = getelementptr i8, ptr %y, i64 12
  store float %v, ptr %p, align 4
  ret void
}
"""
    ctx = PassContext(output_channels=np.array([1, 0]), output_param="%y",
                      channel_strides={"%y": 8}, regions=[Region(k0=0, size=2)])
    with pytest.raises(PassError, match="whole number of channels"):
        PlaceOutputChannels().apply(ctx, parse_module(text))
    ctx.channel_strides["%y"] = 4  # 12 bytes: channel 3 of a region of 2
    with pytest.raises(PassError, match="cannot tell which"):
        PlaceOutputChannels().apply(ctx, parse_module(text))
    ctx.channel_strides["%y"] = 12
    m = parse_module(text)
    assert PlaceOutputChannels().apply(ctx, m)
    body = m.render()
    assert "getelementptr i8, ptr %y, i64 12" in body and "ptr %p, i64 -12" in body


def test_the_cache_keeps_the_order_apart_from_the_natural_kernel(tmp_path):
    w, _, x = _case(8, 16, 5, 1)
    shared = conv2d_nchw.compile(w, x.shape, group_size=4, cache=tmp_path, channel_order="shared")
    again = conv2d_nchw.compile(w, x.shape, group_size=4, cache=tmp_path, channel_order="shared")
    natural = conv2d_nchw.compile(w, x.shape, group_size=4, cache=tmp_path)
    assert again.stats["cached"] and np.array_equal(again.output_channels, shared.output_channels)
    assert not natural.stats["cached"] and natural.output_channels is None
    assert _err(run_on_host(again, x), conv2d_reference(x, w, 1, 0)) < 1e-5
