"""Random layers against the reference: the structural checks, and numerics on the CPU or a GPU.

A case is a random geometry (kernel 1 to 7 in each direction, stride 1 to 3,
padding 0 to 3, channels 1 to 64, batch 1 to 4 at compile time and another
1 to 4 at the call, non-square inputs, a
quarter of them grouped or depthwise), a
sparsity in [0, 1], bias and ReLU on or off and sometimes a group size. Each
case must either be refused with a :class:`~irprune.errors.ValidationError`
exactly when the geometry is invalid (padding not smaller than the kernel,
input smaller than the kernel), or compile to a kernel that passes:

- structure: one FMA per nonzero weight in the PTX, every distinct nonzero
  weight an immediate, no weight array among the kernel's parameters, no
  multiply or add outside FMAs, and ptxas accepts it (when ptxas is found);
- numerics (``device="host"``: the pruned IR run on the CPU through
  irprune.host_exec; ``device="gpu"``: the kernel launched): within 1e-5 of
  the float64 reference, every output written.

``irprune fuzz`` runs a seeded batch and reports how many cases ran, were
refused and failed; tests/test_fuzz.py drives the same checks with hypothesis.
"""

from __future__ import annotations

import re
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ValidationError

#: Relative error allowed against the float64 reference (fp32 kernels).
TOLERANCE = 1e-5


@dataclass(frozen=True)
class FuzzCase:
    """One random layer: shapes, options, sparsity and the seed of its values."""

    N: int
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int
    padding: int
    sparsity: float
    bias: bool
    relu: bool
    group_size: int | None
    seed: int
    #: Convolution groups (divides C and K; C for depthwise).
    groups: int = 1
    #: Batch of the call (None: N). Kernels take any batch: a case compiled
    #: for N runs on run_N images.
    run_N: int | None = None

    @property
    def weights(self) -> int:
        return self.K * (self.C // self.groups) * self.R * self.S

    def should_be_refused(self) -> str | None:
        """Why the geometry is invalid (independently of irprune.validate), or None."""
        if self.padding >= max(self.R, self.S):
            return "padding"
        if self.H + 2 * self.padding < self.R or self.W + 2 * self.padding < self.S:
            return "input smaller than the kernel"
        return None

    def arrays(self):
        """(weight, bias or None, input) for this case."""
        from .reference import prune_random

        rng = np.random.default_rng(self.seed)
        w = prune_random((self.K, self.C // self.groups, self.R, self.S), self.sparsity, seed=self.seed)
        b = rng.standard_normal(self.K).astype(np.float32) if self.bias else None
        x = rng.standard_normal((self.run_N or self.N, self.C, self.H, self.W)).astype(np.float32)
        return w, b, x

    def describe(self) -> str:
        return (f"N{self.N}{f'(run {self.run_N})' if self.run_N else ''} C{self.C}->K{self.K} {self.H}x{self.W} k{self.R}x{self.S} "
                f"s{self.stride} p{self.padding} z{self.sparsity:.2f}"
                f"{' bias' if self.bias else ''}{' relu' if self.relu else ''}"
                f"{f' gs{self.group_size}' if self.group_size else ''}"
                f"{f' groups{self.groups}' if self.groups > 1 else ''} seed{self.seed}")


def random_case(rng: np.random.Generator, max_weights: int = 20_000, max_pixels: int = 1024) -> FuzzCase:
    """A random case; channels shrink until K*C*R*S <= ``max_weights``, inputs to ``max_pixels``."""
    R, S = (int(v) for v in rng.integers(1, 8, 2))
    C, K = (int(v) for v in rng.integers(1, 65, 2))
    while K * C * R * S > max_weights:
        if K >= C:
            K = max(1, K // 2)
        else:
            C = max(1, C // 2)
    stride = int(rng.integers(1, 4))
    padding = int(rng.integers(0, 4))
    # Mostly valid inputs; about one in ten smaller than the kernel.
    low = 1 if rng.random() < 0.1 else max(1, max(R, S) - 2 * padding)
    H, W = (int(v) for v in rng.integers(low, low + 24, 2))
    while H * W > max_pixels:
        H, W = max(1, H // 2), max(1, W // 2)
    sparsity = float(rng.choice([0.0, 1.0])) if rng.random() < 0.1 else float(rng.random())
    groups = 1
    if rng.random() < 0.25:  # grouped, sometimes depthwise (groups = C = K)
        common = [d for d in range(2, min(C, K) + 1) if C % d == 0 and K % d == 0]
        if rng.random() < 0.3:
            K = C
            common = [C] if C > 1 else []
        groups = int(rng.choice(common)) if common else 1
    gs = int(rng.integers(1, 65)) if rng.random() < 0.3 else None
    if gs is not None and groups > 1:
        gs = max(d for d in range(1, min(gs, K // groups) + 1) if (K // groups) % d == 0)
    return FuzzCase(N=int(rng.integers(1, 5)), C=C, K=K, H=H, W=W, R=R, S=S, stride=stride,
                    padding=padding, sparsity=round(sparsity, 3), bias=bool(rng.random() < 0.5),
                    relu=bool(rng.random() < 0.5), group_size=gs, seed=int(rng.integers(1 << 30)),
                    groups=groups, run_N=int(rng.integers(1, 5)))


@dataclass
class CaseResult:
    case: FuzzCase
    status: str  # "ok", "refused" (correctly), "failed"
    detail: str = ""
    seconds: float = 0.0
    rel_err: float | None = None

    def to_dict(self) -> dict:
        return {"case": asdict(self.case), "status": self.status, "detail": self.detail,
                "seconds": round(self.seconds, 3), "rel_err": self.rel_err}


def compile_case(case: FuzzCase, cache=False):
    """The case's kernel (raises ValidationError for an invalid geometry)."""
    from .templates.conv2d import conv2d_nchw

    w, b, _ = case.arrays()
    return conv2d_nchw.compile(w, (case.N, case.C, case.H, case.W), case.stride, case.padding,
                               bias=b, relu=case.relu, group_size=case.group_size, cache=cache,
                               groups=case.groups)


def live_taps(g) -> np.ndarray:
    """(R, S) mask of the taps that read a real input position for at least one output.

    A tap that only ever meets padding multiplies zero everywhere: LLVM
    proves it from the layer's constant shapes and drops its FMA, so such
    weights are not expected in the code.
    """
    def axis(n_in, n_out, k):
        return np.array([any(0 <= o * g.stride + t - g.padding < n_in for o in range(n_out))
                         for t in range(k)])
    return np.outer(axis(g.H, g.OH, g.R), axis(g.W, g.OW, g.S))


def check_structure(case: FuzzCase, k, assemble: bool) -> None:
    """Structural checks of a compiled case; AssertionError names the first that fails."""
    from .codegen import find_ptxas

    nnz = int(np.count_nonzero(k.weight))
    w = k.weight * live_taps(k.geometry)
    live = int(np.count_nonzero(w))
    ptx = k.asm["ptx"]
    fmas = len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M))
    assert fmas == k.stats["fma_ptx"], "the FMA count in the stats is not the PTX's"
    # Every kept weight that meets the input is one FMA; LLVM may or may not
    # prove the others dead (it can when the grid is one image).
    assert live <= fmas <= nnz and (live < nnz or fmas == nnz), \
        f"{fmas} FMAs in the PTX for {nnz} nonzero weights ({live} meet the input)"
    # An add of +0.0 may stay where a tap meets only padding for some outputs:
    # x + 0.0 is not x for x = -0.0, so LLVM keeps it. Any other multiply or add
    # would be a weight chain the passes failed to contract or strip.
    stray = [l for l in re.findall(r"^\s*(?:mul|add|sub)(?:\.rn)?\.f32.*$", ptx, flags=re.M)
             if not re.match(r"\s*add(\.rn)?\.f32\s+%\w+,\s*%\w+,\s*0f00000000;", l)]
    assert not stray, f"a multiply or add outside an FMA: {stray[0].strip()}"
    imms = set(re.findall(r"0f[0-9A-F]{8}", ptx))
    for v in np.unique(w[w != 0])[:64]:
        assert "0f%08X" % np.float32(v).view(np.uint32) in imms, f"weight {v!r} is not an immediate"
    for part in k.parts:
        entry = re.search(r"\.entry\s+\S+\s*\(([^)]*)\)", part.ptx)
        params = entry.group(1).split(",") if entry else []
        assert [".ptr" in p for p in params] == [True, True, False], \
            "the kernel takes more than the input, the output and the batch size"
    if assemble and find_ptxas() is not None:
        k.ptxas()


def check_numerics(case: FuzzCase, k, device: str) -> float:
    """Max relative error against the float64 reference; AssertionError when past tolerance."""
    from .host_exec import run_on_host
    from .reference import conv2d_reference

    w, b, x = case.arrays()
    if device == "gpu":
        y = np.asarray(k(x))
    else:
        y = run_on_host(k, x)
    assert not np.isnan(y).any(), "an output was never written"
    ref = conv2d_reference(x, w, case.stride, case.padding, b, relu=case.relu, groups=case.groups)
    err = float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-30))
    assert err <= TOLERANCE, f"relative error {err:.3g} > {TOLERANCE}"
    return err


def run_case(case: FuzzCase, device: str = "host", assemble: bool = True, kernel=None) -> CaseResult:
    """Compile (unless ``kernel`` is given), check, and classify one case. Never raises."""
    t0 = time.perf_counter()
    expect_refusal = case.should_be_refused()
    try:
        k = kernel if kernel is not None else compile_case(case)
    except ValidationError as exc:
        status = "refused" if expect_refusal else "failed"
        msg = str(exc)
        if "\n" in msg:
            status, msg = "failed", "multi-line error: " + msg
        return CaseResult(case, status, msg, time.perf_counter() - t0)
    except Exception as exc:  # a crash of the compiler is a finding, not a stop
        return CaseResult(case, "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                          time.perf_counter() - t0)
    if expect_refusal:
        return CaseResult(case, "failed", f"compiled though it should be refused ({expect_refusal})",
                          time.perf_counter() - t0)
    try:
        check_structure(case, k, assemble)
        err = check_numerics(case, k, device) if device != "none" else None
    except AssertionError as exc:
        return CaseResult(case, "failed", str(exc), time.perf_counter() - t0)
    except Exception as exc:
        return CaseResult(case, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    return CaseResult(case, "ok", "", time.perf_counter() - t0, err)


def _compile_only(case: FuzzCase, cache_dir: str) -> None:
    """Worker: compile ``case`` into the shared disk cache (errors surface again in the checker)."""
    try:
        compile_case(case, cache=cache_dir)
    except Exception:
        pass


def fuzz(cases: int, seed: int = 0, device: str = "host", max_weights: int = 20_000,
         max_pixels: int = 1024, assemble: bool = True, jobs: int = 1,
         progress=None) -> list[CaseResult]:
    """Run ``cases`` seeded random cases; ``progress(result)`` is called after each.

    With ``jobs`` > 1 the cases are first compiled by that many worker
    processes into a temporary disk cache; the checks then run here, loading
    each kernel from it (the GPU is only touched by this process).
    """
    rng = np.random.default_rng(seed)
    todo = [random_case(rng, max_weights, max_pixels) for _ in range(cases)]
    results = []
    with _precompiled(todo, jobs) as cache_dir:
        for case in todo:
            kernel = None
            if cache_dir is not None and not case.should_be_refused():
                try:
                    kernel = compile_case(case, cache=cache_dir)
                except Exception:
                    kernel = None  # run_case compiles again and reports the error
            r = run_case(case, device, assemble, kernel=kernel)
            results.append(r)
            if progress is not None:
                progress(r)
    return results


@contextmanager
def _precompiled(todo: list[FuzzCase], jobs: int):
    """A temporary cache folder filled by ``jobs`` worker processes (None when jobs <= 1)."""
    if jobs <= 1:
        yield None
        return
    from .worker import run_in_workers

    with tempfile.TemporaryDirectory(prefix="irprune-fuzz-") as d:
        # The cases already fill every CPU: a case's parts compile in its worker.
        run_in_workers([("irprune.fuzz", "_compile_only", {"case": c, "cache_dir": d}) for c in todo],
                       jobs, env={"IRPRUNE_CACHE": "1", "IRPRUNE_JOBS": "1"})
        yield d


def summarize(results: list[CaseResult]) -> dict:
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "refused", "failed")}
    errs = [r.rel_err for r in results if r.rel_err is not None]
    return {"cases": len(results), **counts, "max_rel_err": max(errs) if errs else None,
            "seconds": round(sum(r.seconds for r in results), 1)}
