"""The shape of one conv2d layer, and the checks that make it well formed."""

from __future__ import annotations

from dataclasses import dataclass

from . import validate
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
    #: Convolution groups (nn.Conv2d's ``groups``): output channel k sees the
    #: Cg = C / groups input channels of its group, k // (K / groups).
    groups: int = 1

    @property
    def Cg(self) -> int:
        """Input channels each output channel sees (the weight's second dimension)."""
        return self.C // self.groups

    @property
    def Kg(self) -> int:
        """Output channels per convolution group."""
        return self.K // self.groups

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
        return (self.K, self.Cg, self.R, self.S)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.OH, self.OW)

    @property
    def num_weights(self) -> int:
        return self.K * self.Cg * self.R * self.S

    def with_batch(self, n: int) -> "ConvGeometry":
        """The same layer for a batch of ``n`` images (kernels take any batch at run time)."""
        from dataclasses import replace

        return self if n == self.N else replace(self, N=n)

    def describe(self) -> str:
        return (
            f"{self.C}->{self.K}, {self.R}x{self.S}, in {self.N}x{self.C}x{self.H}x{self.W}, "
            f"out {self.OH}x{self.OW}, stride {self.stride}, padding {self.padding}"
            + (f", groups {self.groups}" if self.groups > 1 else "")
        )

    @classmethod
    def from_weight(cls, weight_shape, input_shape, stride=1, padding=0, groups=1) -> "ConvGeometry":
        """Build and validate a geometry from a weight shape and an input shape.

        ``stride`` and ``padding`` are ints or equal pairs as ``nn.Conv2d``
        takes them; padding may also be ``"valid"`` or ``"same"``. With
        ``groups`` G the weight is (K, C / G, R, S), as in ``nn.Conv2d``.
        """
        ws = validate.check_shape(weight_shape, "weight shape")
        ins = validate.check_shape(input_shape, "input_shape")
        groups = validate.check_int(groups, "groups", 1)
        if ins[1] % groups or ws[0] % groups:
            raise ValidationError(
                f"groups={groups} must divide both the input's {ins[1]} channels and the "
                f"weight's {ws[0]} output channels", stage="validate")
        if ins[1] != ws[1] * groups:
            per = f" per group ({groups} groups)" if groups > 1 else ""
            raise ValidationError(
                f"weight has {ws[1]} input channels{per} but the input has {ins[1]}; "
                f"pass a weight of shape (K, C/groups, R, S) = (K, {ins[1] // groups}, R, S)",
                stage="validate")
        stride = validate.check_pair(stride, "stride", 1)
        padding = validate.check_padding(padding, stride, (ws[2], ws[3]))
        g = cls(ins[0], ins[1], ins[2], ins[3], ws[0], ws[2], ws[3], stride, padding, groups)
        if g.OH < 1 or g.OW < 1:
            raise ValidationError(
                f"input {ins[2]}x{ins[3]} with padding {padding} is smaller than the "
                f"kernel {ws[2]}x{ws[3]}; pass a larger input or more padding", stage="validate")
        return g


#: Kept here for callers that import it from this module.
check_weight = validate.check_weight
