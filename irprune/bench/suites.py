"""The benchmark's layer suites, sparsities and batches (../shared/BENCHMARKS.md).

Each layer is given by its input size, so that stride and padding give the
output size the suite's table states (tests/bench/test_suites.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..geometry import ConvGeometry


@dataclass(frozen=True)
class Layer:
    """One named conv2d layer: C -> K channels, H x W input, R x S kernel.

    Shapes, output size and validation come from :class:`irprune.ConvGeometry`
    (:meth:`geometry`); the layer adds the name and leaves the batch open.
    """

    name: str
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0

    def geometry(self, batch: int = 1) -> ConvGeometry:
        return ConvGeometry.from_weight((self.K, self.C, self.R, self.S), (batch, self.C, self.H, self.W),
                                        self.stride, self.padding)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return self.geometry().weight_shape

    @property
    def num_weights(self) -> int:
        return self.geometry().num_weights

    @property
    def out_hw(self) -> tuple[int, int]:
        g = self.geometry()
        return (g.OH, g.OW)

    def flops(self, batch: int, nnz: int | None = None) -> int:
        """Multiply-adds x 2 over the output: dense, or for ``nnz`` kept weights."""
        g = self.geometry(batch)
        return 2 * batch * g.OH * g.OW * (g.num_weights if nnz is None else nnz)

    def describe(self) -> str:
        oh, ow = self.out_hw
        return (f"{self.C}->{self.K}, {self.R}x{self.S}, s{self.stride}, p{self.padding}, "
                f"{self.H}x{self.W} -> {oh}x{ow}")


def _sq(name, C, K, H, R, stride=1, padding=0) -> Layer:
    return Layer(name, C, K, H, H, R, R, stride, padding)


SEED = [
    _sq("lenet5_c1", 1, 20, 28, 5),
    _sq("lenet5_c2", 20, 50, 12, 5),
    _sq("alexnet_cifar_c1", 3, 32, 32, 5, padding=2),
    _sq("alexnet_cifar_c2", 32, 32, 16, 5, padding=2),
    _sq("alexnet_cifar_c3", 32, 64, 8, 5, padding=2),
    _sq("resnet_3x3_56", 64, 64, 56, 3, padding=1),
    _sq("resnet_3x3_28", 128, 128, 28, 3, padding=1),
    _sq("vgg16_c1", 3, 64, 224, 3, padding=1),
    _sq("vgg16_c2", 64, 64, 224, 3, padding=1),
    _sq("vgg16_c3", 64, 128, 112, 3, padding=1),
]

#: Every distinct conv shape of torchvision's ResNet-50 (v1.5), 224x224 input.
RESNET50 = [
    _sq("conv1_7x7_s2", 3, 64, 224, 7, stride=2, padding=3),
    # stage 1 (56x56)
    _sq("l1_1x1_64_64", 64, 64, 56, 1),
    _sq("l1_3x3_64_64", 64, 64, 56, 3, padding=1),
    _sq("l1_1x1_64_256", 64, 256, 56, 1),
    _sq("l1_1x1_256_64", 256, 64, 56, 1),
    # stage 2 (56 -> 28)
    _sq("l2_1x1_256_128", 256, 128, 56, 1),
    _sq("l2_3x3_128_128_s2", 128, 128, 56, 3, stride=2, padding=1),
    _sq("l2_1x1_128_512", 128, 512, 28, 1),
    _sq("l2_down_256_512_s2", 256, 512, 56, 1, stride=2),
    _sq("l2_1x1_512_128", 512, 128, 28, 1),
    _sq("l2_3x3_128_128", 128, 128, 28, 3, padding=1),
    # stage 3 (28 -> 14)
    _sq("l3_1x1_512_256", 512, 256, 28, 1),
    _sq("l3_3x3_256_256_s2", 256, 256, 28, 3, stride=2, padding=1),
    _sq("l3_1x1_256_1024", 256, 1024, 14, 1),
    _sq("l3_down_512_1024_s2", 512, 1024, 28, 1, stride=2),
    _sq("l3_1x1_1024_256", 1024, 256, 14, 1),
    _sq("l3_3x3_256_256", 256, 256, 14, 3, padding=1),
    # stage 4 (14 -> 7)
    _sq("l4_1x1_1024_512", 1024, 512, 14, 1),
    _sq("l4_3x3_512_512_s2", 512, 512, 14, 3, stride=2, padding=1),
    _sq("l4_1x1_512_2048", 512, 2048, 7, 1),
    _sq("l4_down_1024_2048_s2", 1024, 2048, 14, 1, stride=2),
    _sq("l4_1x1_2048_512", 2048, 512, 7, 1),
    _sq("l4_3x3_512_512", 512, 512, 7, 3, padding=1),
]

#: MobileNetV1's pointwise layers (C_out, C_in, HxW).
MOBILENET1X1 = [_sq(f"pw_{c}_{k}_{h}", c, k, h, 1) for k, c, h in [
    (64, 32, 112), (128, 64, 56), (128, 128, 56), (256, 128, 28), (256, 256, 28),
    (512, 256, 14), (512, 512, 14), (1024, 512, 7), (1024, 1024, 7)]]

SUITES: dict[str, list[Layer]] = {"seed": SEED, "resnet50": RESNET50, "mobilenet1x1": MOBILENET1X1}
BATCHES: dict[str, tuple[int, ...]] = {"seed": (1, 64), "resnet50": (1, 16), "mobilenet1x1": (1, 16)}
SPARSITIES: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)

#: ``--quick``: a few small layers, both batch sizes, three sparsities.
QUICK = {"layers": {"seed": ["lenet5_c2", "alexnet_cifar_c2", "resnet_3x3_56"],
                    "mobilenet1x1": ["pw_128_128_56"], "resnet50": ["l1_1x1_64_64"]},
         "sparsities": (0.5, 0.9, 0.98)}


def suite_layers(suite: str, names: list[str] | None = None) -> list[Layer]:
    """The layers of ``suite``, optionally only those named."""
    if suite not in SUITES:
        raise KeyError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    layers = SUITES[suite]
    if names:
        known = {l.name for l in layers}
        bad = [n for n in names if n not in known]
        if bad:
            raise KeyError(f"suite {suite} has no layer {', '.join(bad)}; it has {', '.join(sorted(known))}")
        layers = [l for l in layers if l.name in names]
    return layers
