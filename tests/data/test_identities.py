"""Synthetic identities: captures share an identity's texture, differ in geometry, and are reproducible."""
import numpy as np
import pytest

from irislib.data.synthetic import N_THETA, generate, generate_capture, identity_set


def test_captures_are_deterministic_and_vary_geometry():
    a1, g1 = generate_capture(2, 1, 96)
    a2, g2 = generate_capture(2, 1, 96)
    b, gb = generate_capture(2, 3, 96)
    assert np.array_equal(a1, a2) and g1 == g2
    assert g1["identity"] == gb["identity"] == 2 and (g1["capture"], gb["capture"]) == (1, 3)
    assert g1["pupil_iris_ratio"] != gb["pupil_iris_ratio"] and g1["eyelids"] != gb["eyelids"]
    assert generate_capture(2, 0, 96)[1]["rotation_deg"] == 0.0
    for g in (g1, gb):
        assert abs(g["rotation_deg"]) <= 15.0 and (g["rotation_deg"] * N_THETA / 360) % 1 == pytest.approx(0)


def test_other_streams_than_generate_and_other_seeds():
    img, _ = generate_capture(0, 0, 64)
    assert not np.array_equal(img, generate(0, 64)[0])
    assert not np.array_equal(img, generate_capture(0, 0, 64, seed=1)[0])


def test_identity_set_layout_and_errors():
    imgs, labels, geos = identity_set(3, 2, 64)
    assert imgs.shape == (6, 64, 64) and imgs.dtype == np.float32 and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [g["capture"] for g in geos] == [0, 1] * 3 and 0 <= imgs.min() and imgs.max() <= 1
    with pytest.raises(ValueError, match="n_identities"):
        identity_set(0, 2)
    with pytest.raises(ValueError, match="identity"):
        generate_capture(-1, 0)
