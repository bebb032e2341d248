"""Agreement with open-iris (Worldcoin) on the same images and boundaries.

open-iris pins pydantic 1.10, so it lives in its own venv, where openiris_ref.py runs it. Its outputs on this
module's images are recorded in data/openiris_ref.npz, which the plain test command compares irislib against; with
an open-iris venv present, one more test checks that the recording is what open-iris gives today. Create the venv
and re-record with:
  python -m venv .venv-openiris && .venv-openiris/bin/pip install --no-deps open-iris
  .venv-openiris/bin/pip install "pydantic<2" numpy opencv-python-headless onnx onnxruntime huggingface_hub \
      pyyaml requests matplotlib
  python tests/biometrics/test_open_iris.py          # writes data/openiris_ref.npz
or point IRISLIB_OPENIRIS_PYTHON at a python that can `import iris`.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from irislib import biometrics as bm

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("IRISLIB_OPENIRIS_PYTHON", ROOT / ".venv-openiris" / "bin" / "python"))
FIXTURE = Path(__file__).with_name("data") / "openiris_ref.npz"
N, HEAD = 12, 2                        # images; strips stored whole for the first HEAD, as a SHA-256 for all
BND = bm.Boundaries.circles(160, 120, 30, 90)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _smooth(x, sigma=1.5, r=5):
    """Separable Gaussian blur in plain numpy (the inputs must not move when irislib's own blur does)."""
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    x = np.pad(x, r, mode="reflect")
    x = np.apply_along_axis(np.convolve, 0, x, k / k.sum(), "valid")
    return np.apply_along_axis(np.convolve, 1, x, k / k.sum(), "valid")


def _images(h=240, w=320):
    """Random smooth texture between concentric circles (pupil 30 px, iris 90 px), uint8 [N, h, w]."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - 160, yy - 120)
    out = []
    for _ in range(N):
        tex = _smooth(rng.normal(0, 1, (h, w)))
        tex = 110 + 25 * tex / tex.std()
        out.append(np.clip(np.round(np.where(r < 30, 20, np.where(r > 90, 200, tex))), 0, 255).astype(np.uint8))
    return np.stack(out)


def run_open_iris(python: Path, images: np.ndarray) -> dict:
    """open-iris's strips, masks, codes and distances for `images` with BND's contours (openiris_ref.py)."""
    pupil, iris = BND.contours(512)
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.npz", Path(d) / "out.npz"
        np.savez(src, images=images, pupil=np.repeat(pupil[None], len(images), 0),
                 iris=np.repeat(iris[None], len(images), 0))
        subprocess.run([str(python), str(Path(__file__).with_name("openiris_ref.py")), str(src), str(dst)],
                       check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        out = dict(np.load(dst))
    version = subprocess.run([str(python), "-c", "from importlib.metadata import version as v; print(v('open-iris'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    strips = out.pop("strips")
    return {**out, "strips_head": strips[:HEAD], "strips_sha256": _sha(strips), "images_sha256": _sha(images),
            "open_iris_version": version}


@pytest.fixture(scope="module")
def reference():
    images, ref = _images(), dict(np.load(FIXTURE))
    if _sha(images) != str(ref["images_sha256"]):
        pytest.fail("the test images differ from those open-iris saw: re-record data/openiris_ref.npz (docstring)")
    return images, ref


def _as_columns(x):
    """open-iris codes [N, filters, 16, 256, 2] -> irislib's layout [N, 256, filters * 16 * 2]."""
    return x.transpose(0, 3, 1, 2, 4).reshape(len(x), x.shape[3], -1)


def test_same_strips_codes_and_distances_as_open_iris(reference):
    images, ref = reference
    spec = bm.IrisCodeSpec.open_iris()
    strips, noise = zip(*[bm.rubber_sheet(im, BND, 128, 512, nearest=True, inclusive=True, mask=False)
                          for im in images])
    strips8 = np.round(np.array(strips) * 255).astype(np.uint8)
    assert np.array_equal(strips8[:HEAD], ref["strips_head"])                  # LinearNormalization
    assert _sha(strips8) == str(ref["strips_sha256"])
    assert np.array_equal(~np.array(noise), ref["masks"])
    codes = bm.encode_strips(np.array(strips), np.array(noise), spec)
    bits, mask = bm.unpack(codes)
    assert np.mean(bits == _as_columns(ref["codes"])) >= 0.999                  # ConvFilterBank + IrisEncoder
    assert np.array_equal(mask, _as_columns(ref["mask_codes"]))
    hd, _ = bm.hamming_matrix(codes, codes, spec.max_shift)
    iu = np.triu_indices(len(images), 1)
    assert np.abs(hd - ref["hd_plain"])[iu].max() <= 0.002                     # plain HD, +-15 columns
    assert 0.45 <= hd[iu].mean() <= 0.50 and 0.45 <= ref["hd_default"][iu].mean() <= 0.50


def test_packed_matcher_is_exact_on_open_iris_templates(reference):
    _, ref = reference
    codes = bm.pack(_as_columns(ref["codes"]), _as_columns(ref["mask_codes"]))
    hd, _ = bm.hamming_matrix(codes, codes, 15)
    assert np.allclose(hd, ref["hd_plain"], atol=1e-6)


def test_recording_is_what_open_iris_gives_today(reference):
    if not PYTHON.exists():
        pytest.skip(f"no open-iris venv at {PYTHON} (see this file's docstring to create it)")
    images, ref = reference
    live = run_open_iris(PYTHON, images)
    assert sorted(live) == sorted(ref)
    for k in ref:
        if k != "open_iris_version":
            assert np.array_equal(live[k], ref[k]), f"open-iris {live['open_iris_version']} differs in {k}"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **run_open_iris(Path(sys.argv[1]) if len(sys.argv) > 1 else PYTHON, _images()))
    print(f"wrote {FIXTURE}")
