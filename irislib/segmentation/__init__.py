"""Where the eye is: the pupil ellipse and the iris circle of an image, crop or camera frame, for everything that
needs them (the iris crop, the matcher's rubber sheet, ISO quality), and whether a found eye is plausible."""
from .eye import Eye, implausible
from .locate import find_eye
from .plausible import fit_set, set_medians

__all__ = ["Eye", "find_eye", "fit_set", "implausible", "set_medians"]
