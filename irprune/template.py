"""``@sparse_conv``: make a dense Numba CUDA conv2d kernel a prunable operator template.

The decorated kernel stays an ordinary Numba kernel (index it with
``[grid, block]`` to launch it dense). What the decorator adds is
:meth:`SparseConvTemplate.compile`: given concrete weights and the input
shape, it produces the specialized sparse kernel. docs/templates.md states
the contract a template must follow.
"""

from __future__ import annotations

import inspect
import threading

from .errors import TemplateContractError, ValidationError
from .geometry import ConvGeometry
from .llvm_opt import DEFAULT_CPU

#: The scalar parameters a conv template takes after its arrays, in order.
SCALAR_PARAMS = ("stride", "padding", "relu", "group_size")
#: An optional last scalar: a template that takes it can split the input
#: channels over ``slices`` rows of threads (threadIdx.y) and add the rows'
#: sums in the block (docs/templates.md); one that does not runs with 1.
SLICES_PARAM = "slices"
#: The last two scalars of a row-tile template (irprune.row_tile): output rows
#: per block and input channels per shared-memory fill.
TILE_PARAMS = ("rows", "chunk")


class SparseConvTemplate:
    """A dense conv2d Numba kernel plus what irprune needs to prune it.

    Attributes:
        kernel: the Numba dispatcher (or plain function) as decorated.
        py_func: the Python function Numba compiles.
        weight: name of the weight parameter.
        constants: names of other compile-time arrays (bias), folded to immediates.
        input, output: names of the input and output array parameters.
    """

    def __init__(self, kernel, weight: str, constants: tuple[str, ...] = ()):
        self.kernel = kernel
        self.py_func = getattr(kernel, "py_func", kernel)
        if not callable(self.py_func):
            raise TemplateContractError("@sparse_conv must decorate a function or a Numba kernel")
        params = list(inspect.signature(self.py_func).parameters)
        self.weight = weight
        self.constants = tuple(constants)
        arrays = params[: len(params) - len(SCALAR_PARAMS)]
        scalars = params[len(arrays):]
        expected = ["<input>", weight, *self.constants, "<output>"]
        self.splits = bool(params) and params[-1] == SLICES_PARAM
        #: True for a row-tile template (its last scalars are TILE_PARAMS).
        self.row_tiles = tuple(params[-len(TILE_PARAMS):]) == TILE_PARAMS
        tail = (SLICES_PARAM,) if self.splits else TILE_PARAMS if self.row_tiles else ()
        if tail:
            arrays = params[: len(params) - len(SCALAR_PARAMS) - len(tail)]
            scalars = params[len(arrays):]
        if tuple(scalars) != SCALAR_PARAMS + tail or \
                len(arrays) != len(expected) or arrays[1:-1] != [weight, *self.constants]:
            raise TemplateContractError(
                f"template {self.py_func.__name__}{tuple(params)} must take "
                f"(input, {weight}, {', '.join(self.constants) + ', ' if self.constants else ''}"
                f"output, {', '.join(SCALAR_PARAMS)}[, {SLICES_PARAM} | , "
                f"{', '.join(TILE_PARAMS)}])", stage="template")
        self.input, self.output = arrays[0], arrays[-1]
        self.params = params
        self._ir_cache: dict = {}
        self._lock = threading.Lock()
        self._source_digest: str | None = None
        self.__doc__ = self.py_func.__doc__
        self.__name__ = self.py_func.__name__

    def __getitem__(self, launch_config):
        """Launch the template dense, as plain Numba: ``template[grid, block](...)``."""
        return self.kernel[launch_config]

    def __repr__(self) -> str:
        return f"<sparse_conv template {self.__name__} (weight={self.weight!r})>"

    def source_digest(self) -> str:
        """A digest of the template's code: its source (else its bytecode), and the values of the
        module constants and the code of the device functions it refers to (Numba freezes
        both into the kernel, so a cached kernel must not outlive a change to either)."""
        if self._source_digest is None:
            from .cache import digest

            self._source_digest = digest(self.__name__, _function_source(self.py_func),
                                         _referenced_globals(self.py_func), self.weight, self.constants)
        return self._source_digest

    def ir_template_key(self, geometry: ConvGeometry, group_size: int, relu: bool,
                        has_bias: bool, cpu: str = DEFAULT_CPU, slices: int = 1,
                        tile: tuple[int, int] | None = None) -> str:
        """The disk-cache key of one IR template: code, shapes, options, target, toolchain."""
        from dataclasses import asdict

        from .cache import digest, toolchain_fingerprint

        # The batch is a kernel parameter: one IR template serves every batch size.
        return digest("ir-template", self.source_digest(), asdict(geometry.with_batch(1)), int(group_size),
                      bool(relu), bool(has_bias), cpu, toolchain_fingerprint(), int(slices),
                      *(tuple(tile) if tile else ()))

    def ir_template(self, geometry: ConvGeometry, group_size: int, relu: bool, has_bias: bool,
                    cpu: str = DEFAULT_CPU, cache=False, slices: int = 1,
                    tile: tuple[int, int] | None = None):
        """The IR template of one geometry (any batch size: it is a kernel parameter).

        ``tile``: (rows, chunk) of a row-tile template (required by one, refused by others).

        Memoized in this process; with ``cache`` (a DiskCache) also kept on
        disk, so that later weights and later processes skip Numba and LLVM.
        """
        from numba import types

        from .lowering import ArrayArg, build_ir_template

        geometry = geometry.with_batch(1)  # the batch is a run-time parameter
        if slices != 1 and not self.splits:
            raise ValidationError(f"template {self.__name__} takes no `{SLICES_PARAM}` "
                                  "parameter; compile it with slices=1", stage="validate")
        check_tile_use(self, tile)
        tile = tuple(tile) if tile else None
        key = (geometry, group_size, bool(relu), bool(has_bias), cpu, int(slices), tile)
        with self._lock:
            hit = self._ir_cache.get(key)
            if hit is not None:
                return hit
            dkey = None
            if cache:
                dkey = self.ir_template_key(geometry, group_size, relu, has_bias, cpu, slices, tile)
                hit = cache.get("ir-template", dkey)
                if hit is not None:
                    self._ir_cache[key] = hit
                    return hit
            g = geometry
            arrays = [ArrayArg(self.input, g.input_shape, "input"),
                      ArrayArg(self.weight, g.weight_shape, "weight")]
            arrays += [ArrayArg(c, (g.K if has_bias else 0,), "constant") for c in self.constants]
            arrays.append(ArrayArg(self.output, g.output_shape, "output"))
            f4 = types.float32[:, :, :, ::1]
            argtypes = (f4, f4, *([types.float32[::1]] * len(self.constants)), f4,
                        types.int64, types.int64, types.boolean, types.int64)
            scalars = {"stride": ("i64", g.stride), "padding": ("i64", g.padding),
                       "relu": ("i8", int(bool(relu))), "group_size": ("i64", group_size)}
            if self.splits:
                argtypes += (types.int64,)
                scalars[SLICES_PARAM] = ("i64", int(slices))
            if self.row_tiles:
                argtypes += (types.int64, types.int64)
                scalars.update({p: ("i64", int(v)) for p, v in zip(TILE_PARAMS, tile)})
            symbol = f"irprune_{self.__name__}"
            ir = build_ir_template(self.py_func, arrays, scalars, argtypes, cpu=cpu, symbol=symbol)
            self._ir_cache[key] = ir
            if dkey is not None:
                cache.put("ir-template", dkey, ir)
            return ir

    def compile(self, weight, input_shape, stride: int = 1, padding: int = 0, bias=None,
                relu: bool = False, group_size: int | None = None, cpu: str = DEFAULT_CPU,
                cache=None, assemble: bool = False, groups: int = 1, slices: int = 1,
                tile: tuple[int, int] | None = None, max_registers: int | None = None,
                channel_order: str = "natural"):
        """Specialize this template on ``weight`` and ``input_shape``: a SparseConvKernel.

        ``cache``, ``assemble``, ``max_registers`` and ``channel_order`` are as in
        :func:`irprune.kernel.compile_conv2d`; ``tile`` is (rows, chunk) for a
        row-tile template.
        """
        from .kernel import compile_conv2d

        return compile_conv2d(self, weight, input_shape, stride=stride, padding=padding,
                              bias=bias, relu=relu, group_size=group_size, cpu=cpu,
                              cache=cache, assemble=assemble, groups=groups, slices=slices,
                              tile=tile, max_registers=max_registers,
                              channel_order=channel_order)


def check_tile_use(template: SparseConvTemplate, tile) -> None:
    """A row-tile template needs ``tile`` = (rows, chunk); any other template refuses one."""
    if template.row_tiles and not tile:
        raise ValidationError(f"template {template.__name__} runs row tiles; pass "
                              "tile=(rows, chunk)", stage="validate")
    if tile and not template.row_tiles:
        raise ValidationError(f"template {template.__name__} takes no `{', '.join(TILE_PARAMS)}` "
                              "parameters; compile it without tile", stage="validate")


def _function_source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = fn.__code__
        return repr((code.co_code, code.co_consts, code.co_names))


def _code_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _code_names(const)
    return names


#: Global values whose repr is their value: what Numba folds into a kernel as a constant.
_CONSTANT_TYPES = (bool, int, float, complex, str, bytes, type(None))


def _is_constant(value) -> bool:
    if isinstance(value, tuple):
        return all(_is_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)


def _referenced_globals(fn, seen: set | None = None) -> dict[str, str]:
    """name -> value (constants), digest (numpy arrays) or source (functions, recursively)
    of the globals and closure cells ``fn`` refers to; modules, classes and other objects
    are left out."""
    seen = set() if seen is None else seen
    py = getattr(fn, "py_func", fn)
    if id(py) in seen or not hasattr(py, "__code__"):
        return {}
    seen.add(id(py))
    values = {name: py.__globals__[name] for name in sorted(_code_names(py.__code__))
              if name in py.__globals__}
    for name, cell in zip(py.__code__.co_freevars, py.__closure__ or ()):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    out: dict[str, str] = {}
    for name, value in values.items():
        if _is_constant(value):
            out[name] = repr(value)
        elif type(value).__name__ == "ndarray" and hasattr(value, "tobytes"):
            from .cache import digest  # Numba freezes a global array into the kernel too

            out[name] = digest(str(value.dtype), list(value.shape), value.tobytes())
        elif inspect.isfunction(getattr(value, "py_func", value)):
            inner = getattr(value, "py_func", value)
            out[name] = _function_source(inner)
            out.update({f"{name}.{k}": v for k, v in _referenced_globals(inner, seen).items()})
    return out


def sparse_conv(kernel=None, *, weight: str = "w", constants: tuple[str, ...] = ()):
    """Decorate a dense Numba CUDA conv2d kernel as a prunable template.

    Args:
        weight: name of the parameter holding the (K, C, R, S) float32 weight.
        constants: names of other compile-time arrays (e.g. ``("bias",)``),
            folded to immediates like the weights.

    The kernel must take ``(input, weight, *constants, output, stride,
    padding, relu, group_size)`` and follow docs/templates.md. Usable as
    ``@sparse_conv`` or ``@sparse_conv(weight="w")``.
    """
    if kernel is None:
        return lambda k: SparseConvTemplate(k, weight, constants)
    return SparseConvTemplate(kernel, weight, constants)


def default_group_size(g: ConvGeometry, max_group: int = 32, chains_per_region: int = 8192) -> int:
    """Output channels per code region: about ``chains_per_region`` dense chains each.

    Prefers a divisor of K, so that no region is ragged; with convolution
    groups it must divide K / groups, so that a region never straddles two.
    """
    crs = g.Cg * g.R * g.S
    bound = max(1, min(max_group, g.K, chains_per_region // crs))
    if g.groups > 1:
        return max(d for d in range(1, min(bound, g.Kg) + 1) if g.Kg % d == 0)
    best = max(d for d in range(1, bound + 1) if g.K % d == 0)
    return best if 2 * best >= bound else bound


def check_group_size(group_size: int, g: ConvGeometry, max_group: int = 64) -> int:
    from .validate import check_int

    gs = min(check_int(group_size, "group_size", 1, max_group), g.K)
    if g.groups > 1 and g.Kg % gs:
        raise ValidationError(
            f"group_size {gs} must divide the {g.Kg} output channels of each of the "
            f"{g.groups} convolution groups", stage="validate")
    return gs
