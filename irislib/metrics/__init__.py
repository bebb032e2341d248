"""Image metrics: pupil/iris geometry per image, set-level distributions (Wasserstein-1) and KID."""
from .distribution import compare_sets, measure_set, metric_floors, summarize, wasserstein1
from .edge import fit_erf_step
from .kid import RandomConvFeatures, compute_kid, kid, kid_floor, mmd2_unbiased
from .pupil import (MEASURE_NAMES, PUPIL_TESTS, PupilMeasurement, fit_ellipse, measure_pupil, pupil_verdict,
                    to_unit_image)

__all__ = ["MEASURE_NAMES", "PUPIL_TESTS", "PupilMeasurement", "RandomConvFeatures", "compare_sets", "compute_kid",
           "fit_ellipse", "fit_erf_step", "kid", "kid_floor", "measure_pupil", "measure_set", "metric_floors",
           "mmd2_unbiased", "pupil_verdict", "summarize", "to_unit_image", "wasserstein1"]
