"""The shape of one conv2d layer, and the checks that make it well formed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ValidationError


@dataclass(frozen=True)
class ConvGeometry:
    """A conv2d layer's shapes: input (N, C, H, W), weight (K, C, R, S), stride, padding.

    Everything the IR template is specialized on, except ``group_size``
    (output channels per code region), which is a launch layout choice.
    """

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0

    @property
    def OH(self) -> int:
        return (self.H + 2 * self.padding - self.R) // self.stride + 1

    @property
    def OW(self) -> int:
        return (self.W + 2 * self.padding - self.S) // self.stride + 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C, self.R, self.S)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.OH, self.OW)

    @property
    def num_weights(self) -> int:
        return self.K * self.C * self.R * self.S

    def describe(self) -> str:
        return (
            f"{self.C}->{self.K}, {self.R}x{self.S}, in {self.N}x{self.C}x{self.H}x{self.W}, "
            f"out {self.OH}x{self.OW}, stride {self.stride}, padding {self.padding}"
        )

    @classmethod
    def from_weight(cls, weight_shape, input_shape, stride: int = 1, padding: int = 0) -> "ConvGeometry":
        """Build and validate a geometry from a weight shape and an input shape."""
        ws = tuple(int(d) for d in weight_shape)
        if len(ws) != 4:
            raise ValidationError(
                f"weight must be 4-D (K, C, R, S); got shape {ws}", stage="validate")
        ins = tuple(int(d) for d in input_shape)
        if len(ins) != 4:
            raise ValidationError(
                f"input_shape must be 4 numbers N,C,H,W; got {ins}", stage="validate")
        if min(ws) < 1 or min(ins) < 1:
            raise ValidationError(
                f"all dimensions must be >= 1; weight {ws}, input {ins}", stage="validate")
        if ins[1] != ws[1]:
            raise ValidationError(
                f"weight has {ws[1]} input channels but the input has {ins[1]}; "
                "pass a weight of shape (K, C, R, S) with C equal to the input's",
                stage="validate")
        stride, padding = int(stride), int(padding)
        if stride < 1:
            raise ValidationError(f"stride must be >= 1; got {stride}", stage="validate")
        if padding < 0:
            raise ValidationError(f"padding must be >= 0; got {padding}", stage="validate")
        if padding >= max(ws[2], ws[3]):
            raise ValidationError(
                f"padding {padding} is not smaller than the kernel ({ws[2]}x{ws[3]}): "
                "output borders would only see padding", stage="validate")
        g = cls(ins[0], ins[1], ins[2], ins[3], ws[0], ws[2], ws[3], stride, padding)
        if g.OH < 1 or g.OW < 1:
            raise ValidationError(
                f"input {ins[2]}x{ins[3]} with padding {padding} is smaller than the "
                f"kernel {ws[2]}x{ws[3]}", stage="validate")
        return g


def check_weight(weight) -> np.ndarray:
    """Return ``weight`` as a C-contiguous float32 array, or raise ValidationError."""
    w = np.asarray(weight)
    if w.ndim != 4:
        raise ValidationError(
            f"weight must be 4-D (K, C, R, S); got {w.ndim}-D shape {w.shape}", stage="validate")
    if not np.issubdtype(w.dtype, np.floating):
        raise ValidationError(
            f"weight must be a real floating array; got dtype {w.dtype}", stage="validate")
    w = np.ascontiguousarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
        raise ValidationError(
            f"weight holds {bad} NaN/Inf value(s); prune or replace them before compiling",
            stage="validate")
    return w
