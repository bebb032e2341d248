"""Evaluation: the comparison report (pupil metrics, KID, ISO quality, identity checks, hybrid vs vanilla), its
figures, and the verification report of a folder-per-identity set. The measures themselves live in
irislib.metrics (pupil geometry, KID) and irislib.biometrics (iris codes, matching, quality)."""
