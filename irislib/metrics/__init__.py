"""Image metrics: pupil/iris geometry per image, set-level distributions (Wasserstein-1) and KID."""
from .distribution import compare_sets, measure_set, summarize, wasserstein1
from .kid import RandomConvFeatures, compute_kid, kid, mmd2_unbiased
from .pupil import MEASURE_NAMES, PupilMeasurement, fit_ellipse, measure_pupil, to_unit_image

__all__ = ["MEASURE_NAMES", "PupilMeasurement", "RandomConvFeatures", "compare_sets", "compute_kid", "fit_ellipse",
           "kid", "measure_pupil", "measure_set", "mmd2_unbiased", "summarize", "to_unit_image", "wasserstein1"]
