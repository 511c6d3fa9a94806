"""A converted PyTorch model on the GPU: same logits as PyTorch (fp32, TF32 off), output on the input's device."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


def test_converted_model_on_cuda_matches_pytorch():
    from irprune.torch_convert import convert
    from tests.test_torch_convert import pruned_tiny

    m = pruned_tiny(seed=3).cuda()
    x = torch.randn(4, 3, 16, 15, device="cuda")
    c = convert(m, x, cache=False, progress=False)
    assert sum(r.status == "converted" for r in c.irprune_report) == 4
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        ref, got = m(x), c(x)
    assert got.is_cuda and got.device == x.device
    assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5


def _fp32():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _rel(got, ref):
    return float(torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)))


def test_any_batch_size_and_a_cuda_graph_give_pytorchs_result():
    from irprune.torch_convert import convert, graphed
    from tests.test_torch_convert import pruned_tiny

    _fp32()
    m = pruned_tiny(seed=6).cuda()
    c = convert(m, torch.randn(1, 3, 16, 15, device="cuda"), cache=False, progress=False)
    g = graphed(c)
    with torch.no_grad():
        for n in (1, 7, 1, 7):  # a fresh input each call: the replay must read it
            x = torch.randn(n, 3, 16, 15, device="cuda")
            ref = m(x)
            assert _rel(c(x), ref) < 1e-5
            got = g(x)
            assert got.shape == ref.shape and _rel(got, ref) < 1e-5
    assert len(g._graphs) == 2  # captured once per shape
    assert [list(layer.kernels) for layer in (c.conv1, c.fc)] == [[(3, 16, 15)], [(12, 1, 1)]]


def test_launches_follow_pytorchs_current_stream():
    from irprune.torch_convert import convert
    from tests.test_torch_convert import pruned_tiny

    _fp32()
    m = pruned_tiny(seed=7).cuda()
    c = convert(m, torch.randn(2, 3, 16, 15, device="cuda"), cache=False, progress=False)
    s = torch.cuda.Stream()
    x = torch.randn(64, 3, 16, 15, device="cuda")
    with torch.no_grad():
        ref = m(x)
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            # Produced and consumed on s only: a launch on another stream would race.
            for _ in range(3):
                y = c(x * 1.0)
        torch.cuda.current_stream().wait_stream(s)
    assert _rel(y, ref) < 1e-5


def test_the_torch_fast_path_refuses_bad_tensors():
    import irprune
    from irprune.reference import prune_random

    k = irprune.conv2d(prune_random((8, 4, 3, 3), 0.7, seed=1), (1, 4, 9, 9), padding=1, cache=False)
    x = torch.randn(2, 4, 9, 9, device="cuda")
    ref = torch.nn.functional.conv2d(x.double(), torch.from_numpy(k.weight).cuda().double(), padding=1)
    assert _rel(k(x).double(), ref) < 1e-5
    out = torch.full((2, 8, 9, 9), float("nan"), device="cuda")
    assert k(x, out=out) is out and _rel(out.double(), ref) < 1e-5
    cases = [
        (lambda: k(x.double()), "dtype float64"),
        (lambda: k(x.transpose(2, 3)), "not C-contiguous"),
        (lambda: k(torch.randn(2, 4, 9, 8, device="cuda")), r"takes \(N, 4, 9, 9\)"),
        (lambda: k(x, out=torch.empty(1, 8, 9, 9, device="cuda")), r"shape \(2, 8, 9, 9\)"),
        (lambda: k(x.cpu()), r"\.cuda\(\)"),
    ]
    buf = torch.empty(2 * 4 * 81 + 2 * 8 * 81, device="cuda")
    xi, xo = buf[:2 * 4 * 81].view(2, 4, 9, 9), buf[2 * 4 * 81 - 8:][:2 * 8 * 81].view(2, 8, 9, 9)
    cases.append((lambda: k(xi, out=xo), "shares memory"))
    for call, match in cases:
        with pytest.raises(irprune.ValidationError, match=match):
            call()


def test_select_fastest_times_every_layer_on_the_gpu_and_keeps_pytorchs_result():
    """convert(select="fastest"): every converted layer timed both ways from CUDA graphs; the
    slower side is the one left out; the model's output is PyTorch's either way."""
    from irprune.torch_convert import convert, graphed
    from irprune.torch_select import keep_faster
    from tests.test_torch_convert import pruned_tiny

    _fp32()
    m = pruned_tiny(seed=8).cuda()
    x = torch.randn(2, 3, 16, 15, device="cuda")
    c = convert(m, x, cache=False, progress=False, select="fastest")
    timed = [r for r in c.irprune_report if r.status in ("converted", "slower")]
    assert len(timed) == 4
    for r in timed:
        assert 0 < r.irprune_us < 1e4 and 0 < r.torch_us < 1e4, r
        assert (r.status == "slower") == (r.torch_us < r.irprune_us)
        assert c.get_submodule(r.name).use_pytorch == (r.status == "slower")
    with torch.no_grad():
        ref = m(x)
        assert _rel(c(x), ref) < 1e-5 and _rel(graphed(c)(x), ref) < 1e-5
        keep_faster(c, None)  # all irprune again
        assert _rel(c(x), ref) < 1e-5


def test_a_tuned_conversion_keeps_each_layers_fastest_kernel_and_pytorchs_result(tmp_path):
    from irprune.torch_convert import convert
    from tests.test_torch_convert import pruned_tiny

    _fp32()
    m = pruned_tiny(amount=0.9, seed=5).cuda()
    x = torch.randn(2, 3, 24, 20, device="cuda")
    c = convert(m, x, cache=tmp_path, progress=False, jobs=8, tune=True)
    rep = {r.name: r for r in c.irprune_report if r.status == "converted"}
    assert set(rep) == {"conv1", "dw", "grouped", "fc"}
    for name, r in rep.items():
        k = getattr(c, name).kernel_for((2, *r.input_shape[1:]) if name != "fc"
                                        else (2, r.input_shape[1], 1, 1))
        assert r.tuned == {"layout": "immediate", "group_size": k.group_size,
                           "slices": k.slices, "tile": k.tile,
                           "max_registers": k.max_registers, "block": k.block,
                           "groups_per_block": k.groups_per_block, "table": None,
                           "channel_order": "natural" if k.output_channels is None
                           else "shared"}, name
        assert k.stats["tuned"]["candidates"], name  # every candidate was timed
    with torch.no_grad():
        ref, got = m(x), c(x)
    assert _rel(got, ref) < 1e-5
    # The choices are cached: a second conversion times nothing and chooses the same.
    again = convert(m, x, cache=tmp_path, progress=False, jobs=8, tune=True)
    for r in again.irprune_report:
        if r.status == "converted":
            assert r.tuned == rep[r.name].tuned
            k = next(iter(getattr(again, r.name).kernels.values()))
            assert k.stats["tuned"]["cached"]
    with torch.no_grad():
        assert _rel(again(x), ref) < 1e-5


def test_a_tuned_conversion_runs_a_table_kernel_chosen_for_a_large_1x1_layer(tmp_path,
                                                                              monkeypatch):
    """A 1x1 layer made large (irprune.tune.LARGE_NNZ lowered), with the timing made to favour
    the table layout: the converted model runs the table kernel through launch_torch and
    matches PyTorch."""
    import torch.nn.utils.prune as prune

    import irprune.table_kernel as TK
    import irprune.tune as T
    from irprune.torch_convert import convert

    _fp32()
    monkeypatch.setattr(T, "LARGE_NNZ", 1000)
    real = T.autotune
    monkeypatch.setattr(T, "autotune", lambda *a, **kw: real(*a, measure=lambda k: (
        1.0 if isinstance(k, TK.TableConvKernel) else 2.0), **kw))
    conv = torch.nn.Conv2d(256, 512, 1, bias=True)
    prune.l1_unstructured(conv, "weight", amount=0.9)
    m = torch.nn.Sequential(conv).cuda()
    x = torch.randn(2, 256, 14, 14, device="cuda")
    c = convert(m, x, cache=tmp_path, progress=False, jobs=8, tune=True)
    (r,) = [r for r in c.irprune_report if r.status == "converted"]
    assert r.tuned["layout"] == "table", r.tuned
    assert isinstance(getattr(c, r.name).kernel_for(tuple(x.shape)), TK.TableConvKernel)
    with torch.no_grad():
        assert _rel(c(x), m(x)) < 1e-5
