"""Where a geometric-mean target's gap lies, from a benchmark's JSON (no GPU needed).

``irprune bench --gap results.json`` answers, for each geomean target of the performance issue
that compares irprune's time with a reference time (cuSPARSE on the 1x1 layers, the floor on
every batch-1 layer): how far the geomean is from the goal, which layers hold it back, and what
the largest layers would need on their own. A geomean target is met by every layer moving a
little or by a few moving a lot; this splits the layers at a nonzero count (irprune.tune's
LARGE_NNZ by default) and gives, for each side, the factor it would need with the other side
unchanged, and for each large layer the time that factor asks of it beside its *code floor*
(one empty launch plus 16 bytes of instruction fetch a nonzero: what weights as immediates
cost before any load; irprune.bench.code_fetch).

Every ratio is of two times of the same record set, as ``irprune bench --report`` reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .report import _t, _x, geomean, index


@dataclass(frozen=True)
class Target:
    """A target of the form: geomean over ``layers`` of irprune's time / ``ref``'s <= ``goal``."""

    key: str
    title: str
    #: The reference implementation (a record's ``impl``): a baseline or a floor.
    ref: str
    #: The largest geomean of irprune / ``ref`` that meets the target (5x over cuSPARSE is 0.2).
    goal: float
    #: Only 1x1 layers (the target's own set), else every layer of the batch.
    one_by_one: bool


#: The two geomean targets stated as irprune's time over a reference time.
TARGETS = (Target("cusparse", "1x1 layers, batch 1: geomean >= 5x over cuSPARSE", "cusparse_csr",
                  1 / 5, True),
           Target("floor", "batch-1 layers: geomean within 2x of the floor", "floor", 2.0, False))


@dataclass(frozen=True)
class LayerRatio:
    """One layer's times in a target's terms."""

    suite: str
    layer: str
    nnz: int
    irprune_us: float
    ref_us: float
    code_floor_us: float | None

    @property
    def ratio(self) -> float:
        """irprune's time over the reference's (lower is better)."""
        return self.irprune_us / self.ref_us


@dataclass(frozen=True)
class Gap:
    """A target's standing over its layers, split at ``large_nnz`` nonzeros."""

    target: Target
    layers: list[LayerRatio]
    large_nnz: int

    @property
    def large(self) -> list[LayerRatio]:
        """The layers of more than ``large_nnz`` nonzeros."""
        return [r for r in self.layers if r.nnz > self.large_nnz]

    @property
    def others(self) -> list[LayerRatio]:
        """The layers of ``large_nnz`` nonzeros or fewer."""
        return [r for r in self.layers if r.nnz <= self.large_nnz]

    @property
    def ratio(self) -> float:
        """The geomean of irprune / reference over every layer."""
        return geomean([r.ratio for r in self.layers])

    @property
    def factor(self) -> float:
        """How much faster every layer must run for the goal (1 or less: met)."""
        return self.ratio / self.target.goal

    def factor_alone(self, part: list[LayerRatio]) -> float | None:
        """How much faster the layers of ``part`` must run, the rest unchanged, for the goal
        (None when ``part`` is empty or is every layer: then it is :attr:`factor`)."""
        rest = [r for r in self.layers if r not in part]
        if not part or not rest:
            return None
        n, m = len(part), len(rest)
        # gm(part)'^n * gm(rest)^m = goal^(n + m), solved in logs
        rest_gm = geomean([r.ratio for r in rest])
        want = ((n + m) * math.log(self.target.goal) - m * math.log(rest_gm)) / n
        return geomean([r.ratio for r in part]) / math.exp(want)


def _is_1x1(shape: str) -> bool:
    # records' shapes read "C->K, RxS, s1, p0, HxW -> OHxOW"
    return ", 1x1," in shape


def gaps(doc: dict, batch: int = 1, sparsity: float = 0.9, large_nnz: int | None = None
         ) -> list[Gap]:
    """The :class:`Gap` of each target of :data:`TARGETS` over ``doc``'s records at ``batch``
    and ``sparsity``: every layer where irprune and the reference both timed ``ok`` (a target
    with no such layer is left out)."""
    if large_nnz is None:
        from ..tune import LARGE_NNZ as large_nnz
    out = []
    for target in TARGETS:
        layers = []
        for (suite, layer, b, s), row in sorted(index(doc).items()):
            if b != batch or abs(s - sparsity) > 1e-9:
                continue
            rec = row.get("irprune")
            t, ref = _t(rec), _t(row.get(target.ref))
            if not t or not ref or (target.one_by_one and not _is_1x1(rec.get("shape", ""))):
                continue
            layers.append(LayerRatio(suite, layer, int(rec.get("nnz") or 0), t, ref,
                                     _t(row.get("code_floor"))))
        if layers:
            out.append(Gap(target, layers, large_nnz))
    return out


def markdown(gs: list[Gap]) -> str:
    """Each target's gap as Markdown: its standing, the split at the nonzero count, and the
    large layers' times beside what the split asks of them and their code floors."""
    out = []
    for g in gs:
        t = g.target
        shown = 1 / g.ratio if t.goal < 1 else g.ratio
        goal = 1 / t.goal if t.goal < 1 else t.goal
        verdict = "met" if g.factor <= 1 else f"not met: every layer {g.factor:.3f}x faster"
        out += [f"### {t.title}", "",
                f"{len(g.layers)} layers: {shown:.2f}x against the goal's {goal:g}x ({verdict}).", "",
                "| layers | count | geomean | faster, the rest unchanged |", "|---|---|---|---|"]
        for name, part in ((f"more than {g.large_nnz:,} nonzeros", g.large),
                           (f"{g.large_nnz:,} or fewer", g.others)):
            if part:
                gm = geomean([r.ratio for r in part])
                out.append(f"| {name} | {len(part)} | {_x(1 / gm if t.goal < 1 else gm)} "
                           f"| {_x(g.factor_alone(part))} |")
        f = g.factor_alone(g.large)
        if f and f > 1:
            out += ["", f"The large layers at {f:.2f}x faster each, beside their code floors:", "",
                    "| layer | nonzeros | irprune us | needed us | code floor us | needed under the code floor |",
                    "|---|---|---|---|---|---|"]
            for r in sorted(g.large, key=lambda r: r.nnz):
                need = r.irprune_us / f
                cf = r.code_floor_us
                under = "-" if cf is None else ("yes" if need < cf else "no")
                out.append(f"| {r.layer} | {r.nnz:,} | {r.irprune_us:.2f} | {need:.2f} | "
                           f"{'-' if cf is None else f'{cf:.2f}'} | {under} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
