"""Run inside a venv with open-iris (pydantic<2): python openiris_ref.py IN.npz OUT.npz.

IN: images [N, H, W] uint8, pupil/iris contour points [N, K, 2]. OUT: open-iris normalized images and masks,
iris/mask codes per filter, and its HammingDistanceMatcher distances (default and plain) for all pairs."""
import sys

import numpy as np
from iris.io.dataclasses import EyeOrientation, GeometryPolygons, IRImage, NoiseMask
from iris.nodes.encoder.iris_encoder import IrisEncoder
from iris.nodes.iris_response.conv_filter_bank import ConvFilterBank
from iris.nodes.matcher.hamming_distance_matcher import HammingDistanceMatcher
from iris.nodes.matcher.utils import simple_hamming_distance
from iris.nodes.normalization.linear_normalization import LinearNormalization


def main(src, dst):
    d = np.load(src)
    norm, bank, enc = LinearNormalization(), ConvFilterBank(), IrisEncoder()
    templates, strips, masks = [], [], []
    for img, pupil, iris in zip(d["images"], d["pupil"], d["iris"]):
        h, w = img.shape
        eyeball = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], float)
        n = norm.run(IRImage(img_data=img, eye_side="left"), NoiseMask(mask=np.zeros(img.shape, bool)),
                     GeometryPolygons(pupil_array=pupil, iris_array=iris, eyeball_array=eyeball),
                     EyeOrientation(angle=0.0))
        strips.append(n.normalized_image)
        masks.append(n.normalized_mask)
        templates.append(enc.run(bank.run(n)))
    k = len(templates)
    hd_default, hd_plain = np.zeros((k, k)), np.zeros((k, k))
    matcher = HammingDistanceMatcher()
    for i in range(k):
        for j in range(k):
            hd_default[i, j] = matcher.run(templates[i], templates[j])
            hd_plain[i, j] = simple_hamming_distance(templates[i], templates[j], rotation_shift=15)[0]
    np.savez(dst, strips=np.array(strips), masks=np.array(masks), hd_default=hd_default, hd_plain=hd_plain,
             codes=np.array([[c for c in t.iris_codes] for t in templates]),
             mask_codes=np.array([[c for c in t.mask_codes] for t in templates]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
