"""Compile the Triton scan kernels ahead of time (no GPU needed) and report registers and spills.

    python bench/triton_compile.py [--targets 80,90] [--jobs 2] [--quick]

Every kernel of `caduceus_lrp.scan_triton_kernels` in the configurations the dispatcher launches
(`block_choices` at the model's n = 16: BLOCK_D 8, 4, 2, and 4, 2 for the backward with states;
one warp, num_stages 1 and maxnreg as the launches; the model's forward with the gate and saved
states, the no-grad forward, the full backward, the LRP-mode backward with and without dB) with
float32 and bfloat16 inputs, for sm_80 (A100) and sm_90 (H100), through
`triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`. Registers and spills come
from the compiled kernel's `n_regs` / `n_spills` when it has them (only once loaded on a GPU,
which this script never does), else from Triton's bundled `ptxas -v` run on the PTX. Prints a
table, writes bench/results/triton_compile.json, and exits 1 if any kernel spills (or fails to
compile).
"""
from __future__ import annotations

import argparse
import inspect
import itertools
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from results import record

ROOT = Path(__file__).resolve().parents[1]
N_STATE = 16  # the model's d_state
POINTERS = {  # kernel -> {argument: "act" (input dtype) or "f32"}
    "fwd_kernel": dict(u_ptr="act", delta_ptr="act", A_ptr="f32", B_ptr="act", C_ptr="act",
                        D_ptr="f32", z_ptr="act", bias_ptr="f32", out_ptr="act",
                        states_ptr="f32"),
    "bwd_kernel": dict(u_ptr="act", delta_ptr="act", A_ptr="f32", B_ptr="act", C_ptr="act",
                        D_ptr="f32", z_ptr="act", bias_ptr="f32", dout_ptr="act",
                        states_ptr="f32", scratch_ptr="f32", du_ptr="act", ddelta_ptr="act",
                        dz_ptr="act", dB_ptr="f32", dC_ptr="f32", dA_ptr="f32", dD_ptr="f32",
                        dbias_ptr="f32", carry_ptr="f32"),
}
VARIANTS = {  # the flag sets the autograd Function launches
    "fwd_kernel": {"train": dict(SOFTPLUS=True, HAS_Z=True, SAVE_STATES=True),
                    "no_grad": dict(SOFTPLUS=True, HAS_Z=True, SAVE_STATES=False),
                    "lrp": dict(SOFTPLUS=True, HAS_Z=False, SAVE_STATES=False)},
    "bwd_kernel": {"train": dict(SOFTPLUS=True, HAS_Z=True, WITH_STATES=True, NEED_DB=True),
                    "lrp": dict(SOFTPLUS=True, HAS_Z=False, WITH_STATES=False, NEED_DB=False),
                    "lrp_dB": dict(SOFTPLUS=True, HAS_Z=False, WITH_STATES=False,
                                   NEED_DB=True)},
}
KINDS = {("fwd_kernel", v): "forward" for v in VARIANTS["fwd_kernel"]}  # for block_choices
KINDS.update({("bwd_kernel", "train"): "backward", ("bwd_kernel", "lrp"): "backward_lrp",
              ("bwd_kernel", "lrp_dB"): "backward_lrp"})
TYPES = {"float32": "*fp32", "bfloat16": "*bf16"}


def _import_kernels():
    sys.path.insert(0, str(ROOT))
    os.environ.pop("TRITON_INTERPRET", None)
    from caduceus_lrp import scan_triton

    return scan_triton


def _ast_source(fn, signature, constexprs):
    """triton.compiler.ASTSource across versions: 3.2 and later (3.6, 3.7) take signature by
    name including the constexprs ("constexpr") and constexprs={name: value}; 3.0 / 3.1 took
    signature by index without them and constants={index: value}."""
    from triton.compiler import ASTSource

    params = inspect.signature(ASTSource.__init__).parameters
    if "constexprs" in params:
        full = {name: ("constexpr" if name in constexprs else signature[name])
                for name in fn.arg_names}
        return ASTSource(fn=fn, signature=full, constexprs=constexprs)
    index = {name: i for i, name in enumerate(fn.arg_names)}
    return ASTSource(fn=fn, signature={index[k]: v for k, v in signature.items()},
                     constants={index[k]: v for k, v in constexprs.items()})


def _ptxas():
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not path.exists():
        raise FileNotFoundError(f"no bundled ptxas at {path}")
    return str(path)


def _ptxas_usage(ptx, cc):
    """(registers, spill store bytes, spill load bytes) from `ptxas -v` on the PTX."""
    arch = f"sm_{cc}a" if cc >= 90 else f"sm_{cc}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        run = subprocess.run([_ptxas(), "-v", f"--gpu-name={arch}", str(src), "-o",
                              str(Path(tmp) / "k.cubin")], capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode:
        raise RuntimeError(f"ptxas failed:\n{log}")
    regs = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return int(regs.group(1)), int(spill.group(1)), int(spill.group(2))


def compile_one(job):
    """Compile one (kernel, variant, BLOCK_D, dtype, cc); a dict for the table."""
    kernel, variant, block, dtype, cc = job
    import triton
    from triton.backends.compiler import GPUTarget

    module = _import_kernels()
    fn = getattr(module, kernel)
    warps = module.NUM_WARPS
    kinds = POINTERS[kernel]
    signature = {name: ("*fp32" if kinds[name] == "f32" else TYPES[dtype]) if name in kinds
                 else "i32" for name in fn.arg_names}
    constexprs = dict(VARIANTS[kernel][variant], BLOCK_D=block, NP=N_STATE,
                      CHUNK=module.CHUNK)
    row = dict(kernel=kernel.strip("_"), variant=variant, block_d=block, num_warps=warps,
               dtype=dtype, target=f"sm_{cc}")
    try:
        compiled = triton.compile(_ast_source(fn, signature, constexprs),
                                  target=GPUTarget("cuda", cc, 32),
                                  options=dict(num_warps=warps, num_stages=1,
                                               maxnreg=module.MAXNREG))
        meta = compiled.metadata
        regs = getattr(compiled, "n_regs", None) or getattr(meta, "n_regs", None)
        spills = getattr(compiled, "n_spills", None) or getattr(meta, "n_spills", None)
        if regs is None or spills is None:
            regs, stores, loads = _ptxas_usage(compiled.asm["ptx"], cc)
            spills, source = stores + loads, "ptxas -v"
        else:
            source = "metadata"
        ttgir = compiled.asm.get("ttgir", "")
        row.update(registers=regs, spill_bytes=spills, source=source,
                   shared_bytes=getattr(meta, "shared", None),
                   layout_conversions=ttgir.count("ttg.convert_layout"))
    except Exception as err:  # reported in the table, counted as a failure
        row.update(registers=None, spill_bytes=None, error=f"{type(err).__name__}: {err}"[:400])
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="80,90", help="compute capabilities")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true",
                        help="only the largest BLOCK_D of each kernel (a smoke test)")
    args = parser.parse_args(argv)
    import multiprocessing

    import triton

    module = _import_kernels()
    jobs = [(kernel, variant, block, dtype, int(cc))
            for kernel in VARIANTS for variant in VARIANTS[kernel]
            for block, dtype, cc in itertools.product(
                module.block_choices(KINDS[kernel, variant], N_STATE)[:1 if args.quick else None],
                TYPES, args.targets.split(","))]
    context = multiprocessing.get_context("fork") if os.name == "posix" else None
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        rows = list(pool.map(compile_one, jobs))
    failed = [r for r in rows if r.get("error") or r["spill_bytes"]]
    record("triton_compile", "Triton scan kernels compiled ahead of time (no GPU)",
           ["kernel", "variant", "BLOCK_D", "dtype", "target", "registers", "spills (B)",
            "error"],
           [[r["kernel"], r["variant"], r["block_d"], r["dtype"], r["target"], r["registers"],
             r["spill_bytes"], r.get("error", "")] for r in rows],
           notes=f"triton {triton.__version__}, n = {N_STATE}, one warp per program; registers "
                 f"and spills from {rows[0].get('source', '?')}. {len(rows)} kernels, "
                 f"{len(failed)} spilling or failed.",
           headline=f"{len(rows)} Triton scan kernel configurations compile ahead of time for "
                    f"sm_80 and sm_90, {len(failed)} with register spills or errors (GPU speed "
                    "is measured by bench/gpu_check.sh on a GPU)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
