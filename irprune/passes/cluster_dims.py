"""cluster-dims: launch the kernel as thread-block clusters of a fixed shape.

A table kernel with a cluster (irprune.table_layout.TableConfig.cluster) shares its input
slice between the blocks of a cluster by multicast. The cluster's shape is part of the code,
not of the launch: the kernel gets LLVM's ``"nvvm.cluster_dim"`` attribute, which the NVPTX
backend writes as ``.explicitcluster`` and ``.reqnctapercluster X, Y, Z``. The driver then
launches every grid of that kernel in clusters of that shape, with the same launch call as
any other kernel, and refuses a grid the shape does not divide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PassError
from ..ir.textir import Module
from .base import ModulePass, PassContext

_GROUP_RE = re.compile(r"^attributes #(\d+) = ", re.M)


@dataclass(frozen=True)
class ClusterDims(ModulePass):
    """Give the kernel clusters of ``x`` x ``y`` x ``z`` blocks (1 x 1 x 1: no change)."""

    name = "cluster-dims"
    x: int = 1
    y: int = 1
    z: int = 1

    def apply(self, ctx: PassContext, module: Module) -> None:
        dims = (self.x, self.y, self.z)
        if any(type(d) is not int or d < 1 for d in dims):
            raise PassError(f"cluster dimensions must be positive ints, not {dims}",
                            stage=f"pass:{self.name}")
        if dims == (1, 1, 1):
            ctx.stats.setdefault(self.name, {}).update({"blocks": 1})
            return
        fn = module.function()
        if "ptx_kernel" not in fn.header:
            raise PassError(f"{fn.name} is not a kernel: only a kernel launches in clusters",
                            stage=f"pass:{self.name}")
        used = [int(m) for c in module.chunks if isinstance(c, str) for m in _GROUP_RE.findall(c)]
        group = max(used, default=-1) + 1
        module.chunks.append(f'attributes #{group} = {{ "nvvm.cluster_dim"="{self.x},{self.y},'
                             f'{self.z}" }}')
        # a definition may name several attribute groups: the new one after the others
        fn.header = fn.header[:fn.header.rindex("{")].rstrip() + f" #{group} {{"
        ctx.stats.setdefault(self.name, {}).update({"blocks": self.x * self.y * self.z})
