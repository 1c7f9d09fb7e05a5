"""The Triton selective scan (`scan_triton`) under Triton's interpreter, against the reference.

TRITON_INTERPRET=1 has to be set before the kernels are defined, so every case runs in one
subprocess (this file run as a script, with that variable set, prints the results as JSON) and
the tests below check its figures; the rest of the suite never sees the variable. Errors are
max |error| / max |reference| per tensor against the float64 reference on the same (rounded)
inputs, for the output and the gradient of every input that requires one. Shapes are tiny: the
interpreter runs a few hundred steps a second.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5  # float32 inputs
TOL_BF16 = 2e-2  # bfloat16 inputs: their rounding of the reference's float64 values, ~2^-8
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

try:
    import triton  # noqa: F401
    TRITON_ERROR = None
except Exception as err:  # ImportError, or a broken install
    TRITON_ERROR = f"{type(err).__name__}: {err}"
pytestmark = pytest.mark.skipif(TRITON_ERROR is not None,
                                reason=f"triton is not importable ({TRITON_ERROR})")


# ---------------------------------------------------------------------------------------------
# The cases (run in the subprocess)
# ---------------------------------------------------------------------------------------------
def make_inputs(b, d, n, l, seed=0, gate=True, bias=True, D=True, softplus=True):
    """float64 inputs (leaves); delta is positive when no softplus follows."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    delta = rand(b, d, l) - 1.0
    return dict(u=rand(b, d, l), delta=delta if softplus else F.softplus(delta),
                A=-torch.exp(0.5 * rand(d, n)), B=rand(b, n, l), C=rand(b, n, l),
                D=rand(d) if D else None, z=rand(b, d, l) if gate else None,
                delta_bias=0.3 * rand(d) if bias else None)


def run_scan(scan, inputs, softplus, grads_of, seed=1):
    """(the tensors the output's autograd node saved, {"out": output, name: gradient}) for the
    inputs named in `grads_of` and a random output gradient."""
    import torch

    inputs = {k: None if v is None else v.detach().requires_grad_(k in grads_of)
              for k, v in inputs.items()}
    out = scan(**inputs, delta_softplus=softplus)
    saved = getattr(out.grad_fn, "saved_tensors", ())  # a custom autograd Function's
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64).to(out.dtype)
    names = [k for k in NAMES if k in grads_of and inputs[k] is not None]
    grads = torch.autograd.grad(out, [inputs[k] for k in names], grad_out)
    return saved, {"out": out, **dict(zip(names, grads))}


def errors(fast, ref):
    """max |fast - ref| / max |ref| per tensor (both dicts of the same names)."""
    assert fast.keys() == ref.keys(), (sorted(fast), sorted(ref))
    return {k: ((fast[k].double() - ref[k].double()).abs().max()
                / (ref[k].double().abs().max() or 1.0)).item() for k in ref}


def compare(inputs, softplus=True, dtype="float32", grads_of=NAMES, small=()):
    """Errors of selective_scan_triton against selective_scan_ref in float64 on the same
    values; inputs in `dtype` except A, D, delta_bias (float32, as the model's parameters)."""
    import torch

    from caduceus_lrp.scan_ref import selective_scan_ref
    from caduceus_lrp.scan_triton import selective_scan_triton

    dt = getattr(torch, dtype)
    cast = {k: None if v is None else v.to(torch.float32 if k in ("A", "D", "delta_bias")
                                             else dt) for k, v in inputs.items()}
    saved, fast = run_scan(selective_scan_triton, cast, softplus, grads_of)
    wide = {k: None if v is None else v.double() for k, v in cast.items()}
    _, ref = run_scan(selective_scan_ref, wide, softplus, grads_of)
    result = dict(errors=errors(fast, ref), out_dtype=str(fast["out"].dtype).split(".")[-1])
    if saved:
        result["states_shape"] = list(saved[-1].shape)
    return result


def case_odd_d():
    """d = 37: five blocks of 8 channels, the last with 5; two batch rows."""
    return compare(make_inputs(2, 37, 4, 12))


def case_length_one():
    return compare(make_inputs(2, 5, 3, 1))


def case_length_not_a_multiple_of_chunk():
    """l = CHUNK + 6: two chunks, the second partial; one state saved per chunk."""
    from caduceus_lrp import scan_triton

    return compare(make_inputs(1, 3, 4, scan_triton.CHUNK + 6))


def case_short_chunks_and_segments():
    """CHUNK = 16 (three chunks at l = 37), partial sums limited so that the backward runs in
    three launches carrying the adjoint, 4 channels per block (d = 10: three blocks), n = 5
    padded to 8."""
    from caduceus_lrp import scan_triton

    chunk, partial = scan_triton.CHUNK, scan_triton.PARTIAL_BYTES
    scan_triton.CHUNK = 16
    scan_triton.PARTIAL_BYTES = 2 * 4 * 3 * 1 * 5 * 16  # (dB, dC) x float32 x blocks x b x n x 16
    os.environ["CADUCEUS_TRITON_BLOCK_D"] = "4"
    try:
        launches = []
        kernel = scan_triton.bwd_kernel
        counting = _CountingLauncher(kernel, launches)
        scan_triton.bwd_kernel = counting
        result = compare(make_inputs(1, 10, 5, 37))
        result["backward_launches"] = len(launches)
    finally:
        scan_triton.CHUNK, scan_triton.PARTIAL_BYTES = chunk, partial
        scan_triton.bwd_kernel = kernel
        del os.environ["CADUCEUS_TRITON_BLOCK_D"]
    return result


class _CountingLauncher:
    """kernel[grid](...) that records each launch."""

    def __init__(self, kernel, launches):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append(grid)
            return self.kernel[grid](*args, **kwargs)
        return launch


def case_strided_views():
    """As the model passes them: u, delta (b, d, l) views of (b, l, d) memory, z a view of half
    of a (b, l, 2d) tensor, B and C views of a (b, l, r + 2n) tensor. Gradients are taken with
    respect to the underlying tensors."""
    import torch

    b, d, n, l, r = 2, 6, 16, 16, 3  # n = 16: the model's (16, BLOCK_D) state tiles
    base = make_inputs(b, d, n, l, seed=3)
    g = torch.Generator().manual_seed(4)
    leaves = dict(u=base["u"].transpose(1, 2).contiguous(),
                  delta=base["delta"].transpose(1, 2).contiguous(),
                  xz=torch.randn(b, l, 2 * d, generator=g, dtype=torch.float64),
                  x_dbl=torch.randn(b, l, r + 2 * n, generator=g, dtype=torch.float64),
                  A=base["A"], D=base["D"], delta_bias=base["delta_bias"])

    def views(t):
        return dict(u=t["u"].transpose(1, 2), delta=t["delta"].transpose(1, 2),
                    z=t["xz"][..., d:].transpose(1, 2),
                    B=t["x_dbl"][..., r:r + n].transpose(1, 2),
                    C=t["x_dbl"][..., r + n:].transpose(1, 2),
                    A=t["A"], D=t["D"], delta_bias=t["delta_bias"])

    from caduceus_lrp.scan_ref import selective_scan_ref
    from caduceus_lrp.scan_triton import selective_scan_triton

    results = {}
    for name, scan, dtype in (("fast", selective_scan_triton, torch.float32),
                              ("ref", selective_scan_ref, torch.float64)):
        t = {k: v.detach().to(dtype).requires_grad_() for k, v in leaves.items()}
        x = views(t)
        out = scan(**x, delta_softplus=True)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1),
                               dtype=torch.float64).to(dtype)
        grads = torch.autograd.grad(out, list(t.values()), grad_out)
        results[name] = {"out": out, **dict(zip(t, grads))}
        if name == "fast":
            strided = not x["u"].is_contiguous() and not x["z"].is_contiguous()
            layout = out.transpose(1, 2).is_contiguous()
    return dict(errors=errors(results["fast"], results["ref"]), inputs_strided=strided,
                out_in_model_layout=layout)


def case_no_gate_no_D():
    return compare(make_inputs(2, 6, 4, 16, seed=5, gate=False, D=False))


def case_softplus_off():
    return compare(make_inputs(2, 6, 4, 16, seed=6, softplus=False, bias=False), softplus=False)


def case_lrp_mode():
    """delta, A, C (and z = None) detached: gradients of u, B, D only, then of u alone; no
    states are saved in either."""
    inputs = make_inputs(2, 6, 4, 40, seed=7, gate=False)
    with_B = compare(inputs, grads_of=("u", "B", "D"))
    only_u = compare(inputs, grads_of=("u",))
    return dict(errors={**with_B["errors"], **{f"{k} (only u)": v
                                               for k, v in only_u["errors"].items()}},
                states_shapes=[with_B.get("states_shape"), only_u.get("states_shape")])


def case_extreme_values():
    """softplus above its threshold of 20, exp(delta A) underflowing to 0, saturated gates."""
    import torch

    inputs = make_inputs(1, 3, 4, 20, seed=11)
    with torch.no_grad():
        inputs["delta"].mul_(15.0)
        inputs["z"].mul_(40.0)
        inputs["A"].mul_(50.0)
    return compare(inputs)


def case_bfloat16():
    return compare(make_inputs(2, 6, 4, 16, seed=8), dtype="bfloat16")


def case_deterministic():
    """Two runs give the same bits for every gradient (dB, dC: partial sums reduced by torch)."""
    import torch

    from caduceus_lrp.scan_triton import selective_scan_triton

    inputs = {k: None if v is None else v.float()
              for k, v in make_inputs(2, 17, 4, 10, seed=9).items()}
    runs = [run_scan(selective_scan_triton, inputs, True, NAMES)[1] for _ in range(2)]
    return dict(bitwise={k: bool(torch.equal(runs[0][k], runs[1][k])) for k in runs[0]})


def case_dispatch_forced():
    """CADUCEUS_SCAN=triton sends CPU tensors (under the interpreter) to the Triton path."""
    import torch

    from caduceus_lrp import scan
    from caduceus_lrp.scan_triton import selective_scan_triton

    inputs = {k: None if v is None else v.float()
              for k, v in make_inputs(1, 4, 3, 8, seed=10).items()}
    os.environ[scan.ENV] = "triton"
    try:
        path, reason = scan.scan_path(inputs["u"]), scan.scan_path_reason(inputs["u"])
        same = torch.equal(scan.selective_scan(**inputs, delta_softplus=True),
                           selective_scan_triton(**inputs, delta_softplus=True))
    finally:
        del os.environ[scan.ENV]
    return dict(path=path, reason=reason, same=same)


CASES = {name[len("case_"):]: fn for name, fn in list(globals().items())
         if name.startswith("case_")}


def _worker():
    """Run every case; print {case: result or {"error": traceback}} as JSON on the last line."""
    assert os.environ.get("TRITON_INTERPRET") == "1"
    out = {}
    for name, fn in CASES.items():
        start = time.perf_counter()
        try:
            out[name] = fn()
        except Exception:
            out[name] = dict(error=traceback.format_exc())
        out[name]["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The tests (in pytest's process)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results():
    env = {k: v for k, v in os.environ.items() if k not in ("CADUCEUS_SCAN",
                                                            "CADUCEUS_TRITON_BLOCK_D")}
    env.update(TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    run = subprocess.run([sys.executable, __file__], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, f"interpreter run failed:\n{run.stderr[-4000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def _result(results, name):
    result = results[name]
    error = result.get("error", "")
    if "only 0-dimensional arrays can be converted" in error:
        error += ("\n(triton < 3.7's interpreter calls int() on 1-element arrays, an error "
                  "since numpy 2.4: use numpy < 2.4 with triton 3.6, or triton >= 3.7)")
    assert not error, f"{name} raised in the interpreter run:\n{error}"
    return result


def _assert_errors(result, tol, expected):
    errs = result["errors"]
    assert set(errs) == set(expected), sorted(errs)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"errors above {tol:g}: {bad} (all: {errs})"


ALL = ("out",) + NAMES


def test_odd_d(results):
    _assert_errors(_result(results, "odd_d"), TOL, ALL)


def test_length_one(results):
    _assert_errors(_result(results, "length_one"), TOL, ALL)


def test_length_not_a_multiple_of_chunk(results):
    result = _result(results, "length_not_a_multiple_of_chunk")
    _assert_errors(result, TOL, ALL)
    assert result["states_shape"] == [1, 2, 4, 3]  # (b, ceil(l / CHUNK), NP, d)


def test_short_chunks_and_segments(results):
    """Several chunks per launch, several backward launches, blocks of 4, padded n."""
    result = _result(results, "short_chunks_and_segments")
    _assert_errors(result, TOL, ALL)
    assert result["states_shape"] == [1, 3, 8, 10]
    assert result["backward_launches"] == 3


def test_strided_views(results):
    result = _result(results, "strided_views")
    _assert_errors(result, TOL, ("out", "u", "delta", "xz", "x_dbl", "A", "D", "delta_bias"))
    assert result["inputs_strided"] and result["out_in_model_layout"]


def test_no_gate_no_D(results):
    _assert_errors(_result(results, "no_gate_no_D"), TOL,
                   ("out", "u", "delta", "A", "B", "C", "delta_bias"))


def test_softplus_off(results):
    _assert_errors(_result(results, "softplus_off"), TOL, ("out", "u", "delta", "A", "B", "C",
                                                           "D", "z"))


def test_lrp_mode_keeps_no_states(results):
    result = _result(results, "lrp_mode")
    _assert_errors(result, TOL, ("out", "u", "B", "D", "out (only u)", "u (only u)"))
    assert result["states_shapes"] == [[0], [0]]


def test_extreme_values(results):
    _assert_errors(_result(results, "extreme_values"), TOL, ALL)


def test_bfloat16_inputs(results):
    result = _result(results, "bfloat16")
    _assert_errors(result, TOL_BF16, ALL)
    assert result["out_dtype"] == "bfloat16"


def test_gradients_are_deterministic(results):
    bitwise = _result(results, "deterministic")["bitwise"]
    assert bitwise == {k: True for k in ALL}, bitwise


def test_dispatch_can_force_triton(results):
    result = _result(results, "dispatch_forced")
    assert result["path"] == "triton" and result["same"]
    assert "CADUCEUS_SCAN=triton" in result["reason"]


def test_forced_path_that_cannot_run_names_the_variable(monkeypatch):
    """In pytest's process (no interpreter): CPU tensors cannot take the Triton path."""
    import torch

    from caduceus_lrp import scan

    monkeypatch.setenv(scan.ENV, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CADUCEUS_SCAN=triton"):
        scan.scan_path(torch.zeros(1, 2, 3))
    monkeypatch.setenv(scan.ENV, "nonsense")
    with pytest.raises(ValueError, match="CADUCEUS_SCAN='nonsense'"):
        scan.scan_path(torch.zeros(1, 2, 3))


if __name__ == "__main__":
    _worker()
