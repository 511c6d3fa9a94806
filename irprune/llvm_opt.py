"""LLVM's own optimization pipelines, run through llvmlite's new pass manager."""

from __future__ import annotations

import re
import threading

import llvmlite.binding as llvm

from .errors import IRParseError
from .ir.verify import init_llvm, remember, verify_text

#: The default GPU architecture irprune compiles for.
DEFAULT_CPU = "sm_90"

# Full unrolling of a whole layer's weight loops needs far more than LLVM's
# default budget (300 instructions at O3). SimplifyCFG's sinking of common
# code would merge the per-channel regions of a template back into one block
# that picks weight offsets with a phi, so no weight would be a constant any
# more: it is switched off. These are process-wide LLVM options; they change
# how much LLVM unrolls and merges, never the meaning of code that other
# llvmlite users compile in this process.
#
# The NVPTX backend's load/store vectorizer looks for adjacent accesses to
# merge within each basic block, and a region's block holds thousands of
# loads: on the seed layers at 0.9 it found nothing to merge (PTX identical
# with it off, 15 layers) and took half of the PTX emission time
# (resnet_3x3_28: 4.4 -> 2.0 s). It is off too.
_UNROLL_OPTIONS = (
    "-unroll-threshold=100000000",
    "-unroll-full-max-count=100000000",
    "-simplifycfg-sink-common=false",
    "-disable-nvptx-load-store-vectorizer",
)
_options_lock = threading.Lock()
_options_set = False

# LLVM's loop unroller also unrolls loops of unknown trip count partially, with a remainder
# loop in front (the NVPTX target asks for both). The IR template's rounds want each loop
# unrolled fully or left as it is: a slice's channel loop, whose bounds become constants only
# when the slice loop around it unrolls, was otherwise cut into a remainder loop and a partly
# unrolled one in the first round, and its weight offsets stayed run-time values (a 12 -> 5
# 1x1 layer at 2 slices). They are off while run_unroll unrolls, and on again after it:
# O1 (the table template, `LlvmCleanup(level=1/3)`) keeps the target's choice (checked: the
# table kernels' PTX is as before; "true" is what the NVPTX target sets).
_PARTIAL_UNROLL_OFF = ("-unroll-runtime=false", "-unroll-allow-partial=false")
_PARTIAL_UNROLL_ON = ("-unroll-runtime=true", "-unroll-allow-partial=true")
_unroll_lock = threading.Lock()  # the partial-unroll switch is process-wide


def _set_options(options) -> None:
    for opt in options:
        llvm.set_option("irprune", opt)


def set_llvm_options() -> None:
    """Set irprune's process-wide LLVM options (once)."""
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

    O2/O3 cost time superlinear in the size of unrolled code (8.7 s against
    0.7 s at O1 for 4,608 weight chains). The IR template was built here at O1
    until b1df136; :func:`run_unroll` builds it now (the same FMAs in the same
    order, in a quarter of the time). ``LlvmCleanup(level=1/3)`` and the tests
    that compare against O1 still run this.
    """
    if unroll:
        set_llvm_options()
    mod = verify_text(text, stage, reuse=True)
    tm = target_machine(cpu)
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = False
    pto.slp_vectorization = False
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
    if unroll:
        # After full unrolling each unrolled tap recomputes its input's
        # clamped index and padding test; O1 runs no value numbering after the
        # unroller. One NewGVN run shares them (ResNet 128->128 3x3 at 28x28,
        # one group: 29,100 -> 22,475 instructions in 0.17 s), and every pass
        # after this one, clean-up included, walks fewer instructions. It
        # leaves the weight loads and their fmul/fadd chains as they are.
        gvn = llvm.create_new_module_pass_manager()
        gvn.add_new_gvn_pass()
        gvn.run(mod, pb)
    return _verified_text(mod, stage, "LLVM's pipeline")


#: The passes after the full unroll, in order (llvmlite's ``add_<name>_pass``): what O1's
#: function simplification runs on the unrolled code that the IR template needs. SROA turns
#: the accumulator array into registers, InstCombine folds each weight's offset to a constant,
#: NewGVN shares the input index computations that each unrolled tap recomputes; the function
#: attributes mark read-only arrays, whose loads then go through the read-only cache
#: (ld.global.nc); global DCE drops the inlined device functions.
CLEANUP_PASSES = ("sroa", "instruction_combine", "simplify_cfg", "new_gvn",
                  "post_order_function_attributes", "global_dead_code_eliminate")
#: Rounds of unrolling at most: a loop whose trip count is constant only in one iteration of
#: an enclosing loop (a slice's channel range) unrolls in the round after that loop's.
MAX_UNROLL_ROUNDS = 8


def run_unroll(text: str, stage: str, cpu: str = DEFAULT_CPU) -> str:
    """The IR template's pipeline: inline, simplify the loop nest, unroll it fully, clean up.

    O1 with unrolling (what this replaced) runs its whole simplification pipeline, and
    then its optimization pipeline, over the unrolled code: on a 64-channel group of a
    3x3 layer (36,864 weight chains) 7-10 s on the 2-core machine, most of it passes that
    change nothing there. Here O1's function simplification runs on the small rolled
    code (inlining first: a template's device functions must be inlined before the loops
    around their calls unroll), LLVM's loop unroller then unrolls every loop with a
    constant trip count, and only :data:`CLEANUP_PASSES` walk the unrolled code (2-3 s on
    that layer). O1's last step, DivRemPairs, is the pass ``decompose-rem`` on the pruned
    module (llvmlite does not expose it).
    """
    set_llvm_options()
    mod = verify_text(text, stage, reuse=True)
    tm = target_machine(cpu)
    pto = llvm.create_pipeline_tuning_options(speed_level=1)
    pto.loop_vectorization = False
    pto.slp_vectorization = False
    pto.loop_unrolling = False  # no unrolling inside the simplification pipeline
    pb = llvm.create_pass_builder(tm, pto)
    # Device functions a template calls: inlined everywhere (then dropped by global DCE).
    for fn in mod.functions:
        if not fn.is_declaration and not str(fn).lstrip().startswith("define ptx_kernel"):
            fn.add_function_attribute("alwaysinline")
    inline = llvm.create_new_module_pass_manager()
    inline.add_always_inliner_pass()
    inline.run(mod, pb)
    simplify = pb.getFunctionPassManager()
    for fn in mod.functions:
        if not fn.is_declaration:
            simplify.run(fn, pb)
    # LLVM's unroller takes the loops innermost first, once each: a loop whose bounds become
    # constants when an enclosing loop unrolls is left for the next round. SimplifyCFG merges
    # each round's unrolled iterations in execution order, so the code keeps the loop nest's
    # order (channel, row, column, then the group's output channels); SROA on the unmerged
    # blocks would scatter them. A round that leaves the block count as it was ends it.
    unroll = llvm.create_new_module_pass_manager()
    unroll.add_loop_unroll_pass()
    unroll.add_simplify_cfg_pass()
    blocks = _block_count(mod)
    with _unroll_lock:
        _set_options(_PARTIAL_UNROLL_OFF)
        try:
            for _ in range(MAX_UNROLL_ROUNDS):
                unroll.run(mod, pb)
                before, blocks = blocks, _block_count(mod)
                if blocks == before:
                    break
        finally:
            _set_options(_PARTIAL_UNROLL_ON)
    pm = llvm.create_new_module_pass_manager()
    for name in CLEANUP_PASSES:
        getattr(pm, f"add_{name}_pass")()
    pm.run(mod, pb)
    out = _verified_text(mod, stage, "the unroll pipeline")
    if has_loop(out):
        # A loop the rounds left rolled: its trip count becomes a constant only after folding
        # that they do not do (a slice's channel range at 3 slices of 8 channels). O1 folds
        # and unrolls it; such templates are small (slices make them so).
        return run_o3(text, stage, cpu=cpu, unroll=True, level=1)
    return out


def _block_count(mod) -> int:
    return sum(len(list(fn.blocks)) for fn in mod.functions if not fn.is_declaration)


_LABEL_RE = re.compile(r"^([-\w.$]+|\"[^\"]*\"):")
_TARGET_RE = re.compile(r"label %([-\w.$]+|\"[^\"]*\")")


def has_loop(text: str) -> bool:
    """Whether a function of IR ``text`` has a cycle in its control flow (a loop), from the
    labels and the branch targets of the printed text."""
    succ: dict[str, list[str]] = {}
    entries = []
    block = None
    for line in text.split("\n"):
        if line.startswith("define "):
            block = f"entry.{len(entries)}"  # a function's first block may have no label
            entries.append(block)
            succ[block] = []
            first = True
            continue
        if block is None:
            continue
        m = _LABEL_RE.match(line)
        if m:
            name = m.group(1)
            if first and not succ[block]:
                succ[name] = succ.pop(block)  # the entry block's own label
                entries[-1] = name
            block = name
            succ.setdefault(block, [])
            first = False
            continue
        if line.startswith("}"):
            block = None
        elif "label %" in line:
            first = False
            succ[block].extend(_TARGET_RE.findall(line))
        elif line.startswith("  "):
            first = False
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done
    for root in entries:
        stack = [(root, iter(succ.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return True
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, ()))))
    return False


def run_light_cleanup(text: str, stage: str, cpu: str = DEFAULT_CPU) -> str:
    """InstCombine then SimplifyCFG over IR text (with common-code sinking off, as in :func:`run_o3`).

    What the full O1 pipeline still changed in a pruned module once the IR
    template shares its index computations (NewGVN in :func:`run_o3`): on the
    seed layers at 0.5/0.9/0.98 the PTX after these two passes equals the PTX
    after O1 up to the operand order of commutative instructions, in a
    quarter of the time (resnet_3x3_28 at 0.9: 0.54 s against 2.24 s).
    """
    set_llvm_options()  # the sinking switch matters here too: it would merge regions
    mod = verify_text(text, stage, reuse=True)
    tm = target_machine(cpu)
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=1))
    pm = llvm.create_new_module_pass_manager()
    pm.add_instruction_combine_pass()
    pm.add_simplify_cfg_pass()
    pm.run(mod, pb)
    text = _verified_text(mod, stage, "LLVM's clean-up")
    remember(text, mod)  # NVPTX codegen of this text takes the module instead of parsing it
    return text


def _verified_text(mod, stage: str, who: str) -> str:
    """``mod`` as text after LLVM's verifier accepts it; an IRParseError naming ``who`` otherwise."""
    try:
        mod.verify()
    except RuntimeError as exc:
        raise IRParseError(f"{who} left invalid IR: {str(exc).strip()[:200]}",
                           stage=stage, log=str(exc)) from None
    return str(mod)
