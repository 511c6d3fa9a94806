"""LLVM's own optimization pipelines, run through llvmlite's new pass manager."""

from __future__ import annotations

import threading

import llvmlite.binding as llvm

from .errors import IRParseError
from .ir.verify import init_llvm, verify_text

#: The default GPU architecture irprune compiles for.
DEFAULT_CPU = "sm_90"

# Full unrolling of a whole layer's weight loops needs far more than LLVM's
# default budget (300 instructions at O3). SimplifyCFG's sinking of common
# code would merge the per-channel regions of a template back into one block
# that picks weight offsets with a phi, so no weight would be a constant any
# more: it is switched off. These are process-wide LLVM options; they change
# how much LLVM unrolls and merges, never the meaning of code that other
# llvmlite users compile in this process.
_UNROLL_OPTIONS = (
    "-unroll-threshold=100000000",
    "-unroll-full-max-count=100000000",
    "-simplifycfg-sink-common=false",
)
_options_lock = threading.Lock()
_options_set = False


def _set_unroll_options() -> None:
    global _options_set
    with _options_lock:
        if not _options_set:
            for opt in _UNROLL_OPTIONS:
                llvm.set_option("irprune", opt)
            _options_set = True


def target_machine(cpu: str = DEFAULT_CPU, opt: int = 3) -> "llvm.TargetMachine":
    """llvmlite's NVPTX target machine for ``cpu`` (e.g. ``"sm_90"``)."""
    init_llvm()
    target = llvm.Target.from_triple("nvptx64-nvidia-cuda")
    return target.create_target_machine(cpu=cpu, opt=opt)


def run_o3(text: str, stage: str, cpu: str = DEFAULT_CPU, unroll: bool = True,
           level: int = 3) -> str:
    """Run LLVM's O``level`` pipeline over IR text and return the optimized text.

    Loop and SLP vectorization are off: they would merge the loads of
    neighbouring weights into vector loads and hide which instruction belongs
    to which weight. With ``unroll`` the unroller's size limits are raised so
    that constant-trip-count weight loops unroll completely.

    The IR template is built at O1: it unrolls fully as O3 does, but O2/O3
    cost time superlinear in the size of the unrolled code (8.7 s against
    0.7 s for 4,608 weight chains), and the pruned module, a tenth of the
    size, gets the O3 clean-up anyway.
    """
    if unroll:
        _set_unroll_options()
    mod = verify_text(text, stage, reuse=True)
    tm = target_machine(cpu)
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = False
    pto.slp_vectorization = False
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
    try:
        mod.verify()
    except RuntimeError as exc:
        raise IRParseError(f"LLVM's pipeline left invalid IR: {str(exc).strip()[:200]}",
                           stage=stage, log=str(exc)) from None
    return str(mod)
