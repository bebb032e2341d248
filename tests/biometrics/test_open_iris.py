"""Agreement with open-iris (Worldcoin) on the same images and boundaries.

open-iris pins numpy 1.24 / pydantic 1.10, so it lives in its own venv; this test runs openiris_ref.py there.
Create it with (offline after the wheels are cached):
  python -m venv .venv-openiris && .venv-openiris/bin/pip install --no-deps open-iris
  .venv-openiris/bin/pip install "pydantic<2" numpy opencv-python-headless onnx onnxruntime huggingface_hub \
      pyyaml requests matplotlib
or point IRISLIB_OPENIRIS_PYTHON at a python that can `import iris`.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from irislib import biometrics as bm
from irislib.data.synthetic_texture import gaussian_blur

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("IRISLIB_OPENIRIS_PYTHON", ROOT / ".venv-openiris" / "bin" / "python"))


def _texture_eye(rng, h=240, w=320):
    """Random smooth texture between concentric circles (pupil 30 px, iris 90 px) as in the issue's probe."""
    img = gaussian_blur(rng.normal(0, 1, (h, w)).astype(np.float32), 1.5)
    img = 110 + 25 * img / img.std()
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - 160, yy - 120)
    return np.clip(np.round(np.where(r < 30, 20, np.where(r > 90, 200, img))), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if not PYTHON.exists():
        pytest.skip(f"no open-iris venv at {PYTHON} (see this file's docstring to create it)")
    rng = np.random.default_rng(0)
    images = np.stack([_texture_eye(rng) for _ in range(12)])
    bnd = bm.Boundaries.circles(160, 120, 30, 90)
    pupil, iris = bnd.contours(512)
    d = tmp_path_factory.mktemp("openiris")
    np.savez(d / "in.npz", images=images, pupil=np.repeat(pupil[None], 12, 0), iris=np.repeat(iris[None], 12, 0))
    subprocess.run([str(PYTHON), str(Path(__file__).with_name("openiris_ref.py")), str(d / "in.npz"),
                    str(d / "out.npz")], check=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return images, bnd, dict(np.load(d / "out.npz"))


def _as_columns(x):
    """open-iris codes [N, filters, 16, 256, 2] -> irislib's layout [N, 256, filters * 16 * 2]."""
    return x.transpose(0, 3, 1, 2, 4).reshape(len(x), x.shape[3], -1)


def test_same_strips_codes_and_distances_as_open_iris(reference):
    images, bnd, ref = reference
    spec = bm.IrisCodeSpec.open_iris()
    strips, noise = zip(*[bm.rubber_sheet(im, bnd, 128, 512, nearest=True, inclusive=True, mask=False)
                          for im in images])
    assert np.array_equal(np.round(np.array(strips) * 255), ref["strips"])     # LinearNormalization
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
    _, _, ref = reference
    codes = bm.pack(_as_columns(ref["codes"]), _as_columns(ref["mask_codes"]))
    hd, _ = bm.hamming_matrix(codes, codes, 15)
    assert np.allclose(hd, ref["hd_plain"], atol=1e-6)
