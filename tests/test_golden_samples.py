"""Samples from the shipped checkpoints stay the same for fixed seeds across refactors (tests/golden/cases.py).

On the platform the golden file was recorded on (same torch build, CPU kernels' ISA level and CPU model) every
pixel must be bit-identical. Elsewhere oneDNN may pick other kernels whose float sums round differently, so the
images are compared to 1e-4 (AVX2 against AVX512 differs by 3e-6 at most; a changed formula moves pixels by 1e-2 or more) and the test says which check it made.
"""
import json
import warnings

import numpy as np
import pytest

from golden.cases import CASES, GOLDEN, PLATFORM, draw_all, platform_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drawn():
    return draw_all()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def test_every_case_and_its_drafts_are_recorded(golden, drawn):
    assert set(drawn) == set(golden)
    assert {k for k in golden if not k.endswith(".drafts")} == set(CASES)


def mismatch(got: np.ndarray, want: np.ndarray, bitwise: bool) -> str | None:
    """Why `got` is not the golden `want` (None when it is): bit for bit, or within 1e-4."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"shape/dtype {got.shape} {got.dtype}, golden {want.shape} {want.dtype}"
    worst = float(np.abs(got.astype(np.float64) - want).max())
    if bitwise:
        n = int((got.view(np.uint32) != want.view(np.uint32)).sum())
        return f"{n} of {got.size} values differ in their bits (max |diff| {worst:.3g})" if n else None
    return f"max |diff| {worst:.3g} > 1e-4" if worst > 1e-4 else None


@pytest.mark.parametrize("name", sorted(CASES))
def test_samples_match_the_golden_file(name, golden, drawn):
    same_platform = json.loads(PLATFORM.read_text()) == platform_key()
    if not same_platform:
        warnings.warn(f"golden samples were recorded on {json.loads(PLATFORM.read_text())}; this is "
                      f"{platform_key()}: compared to 1e-4, not bit for bit")
    for key in (name, name + ".drafts"):
        if key in golden:
            problem = mismatch(drawn[key], golden[key], bitwise=same_platform)
            assert problem is None, f"{key}: {problem}; a sampling change moved the shipped pair's samples"


def test_the_comparison_can_fail(golden):
    """One ulp in one pixel fails the bit check; 2e-4 fails the cross-platform one; the file itself passes."""
    want = golden["hybrid64_ddim_s05"]
    one_ulp = want.copy()
    one_ulp.view(np.uint32).flat[123] ^= 1
    assert mismatch(want.copy(), want, bitwise=True) is None
    assert mismatch(one_ulp, want, bitwise=True).startswith("1 of ")
    assert mismatch(one_ulp, want, bitwise=False) is None
    assert mismatch(want + np.float32(2e-4), want, bitwise=False) is not None
