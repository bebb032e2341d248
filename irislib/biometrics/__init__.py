"""Biometric evaluation of iris sets: ISO/IEC 29794-6 quality components and iris-code identity checks
(uniqueness, training leakage, genuine vs impostor, d') with Daugman rubber sheet, 2D Gabor codes and a packed-bit
rotation-searched Hamming distance."""
from .encode import IrisCodes, IrisCodeSpec, encode_strips, pack, unpack
from .figures import hd_histogram_figure, pairs_figure
from .identity import d_prime, encode_images, genuine_impostor, hd_stats, leakage, uniqueness
from .match import hamming_matrix, hamming_pair, hamming_reference
from .normalize import Boundaries, fit_boundaries, rubber_sheet
from .quality import THRESHOLDS, QualityComponents, biqt_components, quality_components, quality_report
from .reports import identity_report, subject_labels

__all__ = ["Boundaries", "IrisCodeSpec", "IrisCodes", "QualityComponents", "THRESHOLDS", "biqt_components", "d_prime",
           "encode_images", "encode_strips", "fit_boundaries", "genuine_impostor", "hamming_matrix", "hamming_pair",
           "hamming_reference", "hd_histogram_figure", "hd_stats", "identity_report", "leakage", "pack",
           "pairs_figure", "quality_components", "quality_report", "rubber_sheet", "subject_labels", "unpack",
           "uniqueness"]
