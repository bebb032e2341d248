"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs") with a pluggable feature extractor.

KID = unbiased MMD^2 between two feature sets with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets (mean and std reported). The default extractor, `RandomConvFeatures`, is a fixed, seeded,
random-weight conv net that needs no download: its values are comparable only between runs that use the same
extractor (same seed, size, widths), never with published Inception-KID numbers. For Inception-KID pass any callable
`extractor(images [N, C, H, W] float in [0, 1]) -> [N, D]` that wraps Inception-v3 pool3 features (e.g. from a
package you installed with its weights); irislib ships none because the weights would need a download.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _feats(x) -> np.ndarray:
    """numpy/torch [N, D] -> float64 numpy (numpy: small matrices, no thread pool to contend for)."""
    a = x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"features have shape {a.shape}; pass [N, D]")
    return a


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all pairs -> [N, M]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, Lemma 6) of features [m, D], [n, D]: diagonal terms left out of the
    within-set means."""
    x, y = _feats(x), _feats(y)
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | int | None = None) -> tuple[float, float]:
    """KID of two feature sets [N, D], [M, D] -> (mean, std) of the unbiased MMD^2 over `subsets` random subsets
    of min(subset_size, N, M) rows each (drawn without replacement; seed 0 when generator is None)."""
    a, b = _feats(feats_a), _feats(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}; use the same extractor for both sets")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(a)} and {len(b)}")
    if not isinstance(generator, torch.Generator):
        generator = torch.Generator().manual_seed(0 if generator is None else int(generator))
    vals = [mmd2_unbiased(a[torch.randperm(len(a), generator=generator)[:m].numpy()],
                          b[torch.randperm(len(b), generator=generator)[:m].numpy()]) for _ in range(subsets)]
    v = np.array(vals)
    return float(v.mean()), float(v.std())


class RandomConvFeatures(torch.nn.Module):
    """Offline default extractor: fixed seeded random conv net, mean+std pooled at 4 scales -> [N, 2*sum(widths)].

    Images [N, 1 or 3, H, W] (H, W >= 32) in [0, 1] are converted to grey (NIR) and resized to `size`. Values are
    comparable only between runs with the same extractor settings, not with Inception-KID.
    """

    def __init__(self, size: int = 128, widths=(16, 32, 64, 128), seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.size = size
        chans = (1, *widths)
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            w = torch.randn(cout, cin, 3, 3, generator=g) * math.sqrt(2.0 / (9 * cin))   # He init keeps scale
            self.register_buffer(f"w{i}", w)
            self.register_buffer(f"b{i}", 0.1 * torch.randn(cout, generator=g))
        self.n_layers = len(widths)
        self.dim = 2 * sum(widths)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in [0, 1] -> features [N, dim] (float32)."""
        if images.ndim != 4 or images.shape[1] not in (1, 3) or min(images.shape[-2:]) < 32:
            raise ValueError(f"RandomConvFeatures takes [N, 1|3, H, W] with H, W >= 32, got {tuple(images.shape)}")
        x = images.float().mean(dim=1, keepdim=True)                              # grey [N, 1, H, W]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - 0.5) / 0.25
        pooled = []
        for i in range(self.n_layers):
            x = F.relu(F.conv2d(x, getattr(self, f"w{i}"), getattr(self, f"b{i}"), stride=1 if i == 0 else 2,
                                padding=1))
            pooled += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        return torch.cat(pooled, dim=1)


def _as_batch(images, value_range) -> torch.Tensor:
    """Images (numpy/torch [N, H, W], [N, C, H, W], [N, H, W, C] or a list) -> float [N, C, H, W] in [0, 1]."""
    if isinstance(images, (list, tuple)):
        images = np.stack([x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x) for x in images])
    x = images.detach().cpu() if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
    if x.dtype == torch.uint8:
        x, value_range = x.float(), (0.0, 255.0)
    x = x.float()
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise ValueError(f"images have shape {tuple(x.shape)}; pass [N, H, W] or [N, C, H, W]")
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def compute_kid(images_a, images_b, extractor=None, *, value_range: tuple[float, float] | None = None,
                subsets: int = 100, subset_size: int = 1000, batch_size: int = 64,
                generator: torch.Generator | int | None = None) -> tuple[float, float]:
    """KID between two image sets -> (mean, std); `extractor` maps [N, C, H, W] in [0, 1] to [N, D] features
    (default `RandomConvFeatures()`). The value range is found once for both sets: [-1, 1] if any value < -1e-3."""
    if value_range is None:
        lows = [_min_value(s) for s in (images_a, images_b)]
        value_range = (-1.0, 1.0) if min(lows) < -1e-3 else (0.0, 1.0)
    extractor = extractor or RandomConvFeatures()
    feats = []
    for s in (images_a, images_b):
        x = _as_batch(s, value_range)
        feats.append(torch.cat([torch.as_tensor(extractor(x[i:i + batch_size])).detach().cpu()
                                for i in range(0, len(x), batch_size)]))
    return kid(feats[0], feats[1], subsets=subsets, subset_size=subset_size, generator=generator)


def _min_value(images) -> float:
    """Smallest value of an image set (uint8 counts as >= 0)."""
    if isinstance(images, (list, tuple)):
        return min(_min_value(x) for x in images)
    x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    return 0.0 if x.dtype == np.uint8 else float(np.nanmin(x))


def kid_floor(reference, extractor=None, *, splits: int = 4, seed: int = 0, **kwargs) -> tuple[float, float]:
    """KID between random halves of the reference -> (mean, std over splits): the noise level a KID of generated
    vs reference images should be read against (half-size sets, so it is somewhat above that of full sets)."""
    x = reference if torch.is_tensor(reference) else torch.as_tensor(np.asarray(reference))
    if len(x) < 4:
        raise ValueError(f"a KID floor needs at least 4 reference images, got {len(x)}")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(splits):
        idx = torch.randperm(len(x), generator=g)
        a, b = x[idx[:len(x) // 2]], x[idx[len(x) // 2:]]
        vals.append(compute_kid(a, b, extractor, generator=seed, **kwargs)[0])
    return float(np.mean(vals)), float(np.std(vals))
