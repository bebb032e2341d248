"""Identity checks of a generated iris set with iris codes: uniqueness, training leakage, genuine vs impostor, d'.

All-pairs matching runs in blocks of probes; only histograms, sums, nearest neighbours and the pairs below the
threshold are kept, so 10k x 10k needs no N x N matrix in memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..metrics import to_unit_image
from .encode import IrisCodes, IrisCodeSpec, encode_strips
from .match import hamming_matrix
from .normalize import fit_boundaries, rubber_sheet

BIN_EDGES = np.linspace(0.0, 1.0, 401)      # HD histogram bins of 0.0025


def encode_images(images01, spec: IrisCodeSpec = IrisCodeSpec(), boundaries=None) -> tuple[IrisCodes, np.ndarray]:
    """Iris codes of grey images [N, H, W] in [0, 1] and which were encoded (found [N] bool). Boundaries come from
    irislib's pupil/iris fits unless given (a list of normalize.Boundaries or None); an image without boundaries
    gets an all-zero mask, so it never matches anything (its HDs are NaN)."""
    strips = np.zeros((len(images01), spec.strip_rows, spec.strip_cols))
    noise = np.ones(strips.shape, bool)
    found = np.zeros(len(images01), bool)
    for k, im in enumerate(images01):
        bnd = fit_boundaries(im) if boundaries is None else boundaries[k]
        if bnd is not None:
            strips[k], noise[k] = rubber_sheet(to_unit_image(im), bnd, spec.strip_rows, spec.strip_cols,
                                               nearest=spec.nearest, inclusive=spec.inclusive)
            found[k] = True
    return encode_strips(strips, noise, spec), found


def hd_stats(values) -> dict:
    """n, mean, sd and Daugman's degrees of freedom mu (1 - mu) / sd^2 of HD values (NaN dropped)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return _stats(len(v), v.sum(), (v ** 2).sum())


def _stats(n, s, s2) -> dict:
    if n == 0:
        return {"n": 0, "mean": float("nan"), "sd": float("nan"), "dof": float("nan")}
    mu = s / n
    sd = math.sqrt(max(s2 / n - mu ** 2, 0.0))
    return {"n": int(n), "mean": float(mu), "sd": float(sd), "dof": float(mu * (1 - mu) / sd ** 2) if sd else
            float("inf")}


def d_prime(genuine: dict, impostor: dict) -> float:
    """Decidability |mu_g - mu_i| / sqrt((sd_g^2 + sd_i^2) / 2) from two hd_stats dicts."""
    den = math.sqrt((genuine["sd"] ** 2 + impostor["sd"] ** 2) / 2)
    return abs(genuine["mean"] - impostor["mean"]) / den if den > 0 else float("inf")


@dataclass
class _Acc:
    """Running histogram and moments of HD values."""
    hist: np.ndarray = field(default_factory=lambda: np.zeros(len(BIN_EDGES) - 1, np.int64))
    n: int = 0
    s: float = 0.0
    s2: float = 0.0
    below: int = 0

    def add(self, v: np.ndarray, threshold: float) -> None:
        v = v[np.isfinite(v)].astype(np.float64)
        self.hist += np.histogram(v, BIN_EDGES)[0]
        self.n, self.s, self.s2 = self.n + len(v), self.s + v.sum(), self.s2 + (v ** 2).sum()
        self.below += int((v < threshold).sum())

    def summary(self) -> dict:
        return {**_stats(self.n, self.s, self.s2), "below_threshold": self.below}


def _scan(probe: IrisCodes, gallery: IrisCodes, max_shift: int, threshold: float, *, same: bool = False,
          labels=None, device=None, block: int = 1024, max_pairs: int = 1000) -> dict:
    """Block-wise all pairs (j > i only when `same`): histograms (all, or genuine/impostor by `labels`), pairs
    below the threshold (closest first, at most max_pairs; their count and which items are in one, all of them),
    and each probe's nearest gallery item."""
    accs = {"all": _Acc()} if labels is None else {"genuine": _Acc(), "impostor": _Acc()}
    nearest = np.full(len(probe), np.nan)
    nearest_idx = np.full(len(probe), -1)
    pairs, n_below = [], 0
    in_pair = np.zeros(max(len(probe), len(gallery)), bool)
    for i0 in range(0, len(probe), block):
        g0 = i0 if same else 0
        hd, sh = hamming_matrix(probe[i0:i0 + block], gallery[g0:], max_shift, device=device)
        ii, jj = np.arange(i0, i0 + len(hd))[:, None], np.arange(g0, len(gallery))[None, :]
        keep = (jj > ii) if same else np.ones(hd.shape, bool)
        if labels is None:
            accs["all"].add(hd[keep], threshold)
        else:
            genuine = labels[ii] == labels[jj]
            accs["genuine"].add(hd[keep & genuine], threshold)
            accs["impostor"].add(hd[keep & ~genuine], threshold)
        masked = np.where(keep & np.isfinite(hd), hd, np.inf)
        if masked.shape[1]:
            k = masked.argmin(1)
            best = masked[np.arange(len(k)), k]
            nearest[i0:i0 + len(hd)] = np.where(np.isfinite(best), best, np.nan)
            nearest_idx[i0:i0 + len(hd)] = np.where(np.isfinite(best), k + g0, -1)
        a, b = np.nonzero(masked < threshold)
        n_below += len(a)
        in_pair[a + i0] = in_pair[b + g0] = True        # (same only: one index space)
        top = np.lexsort((b, a, masked[a, b]))[:max_pairs]   # a collapsed set has millions: list the closest
        pairs = sorted(pairs + [(float(hd[x, y]), int(x) + i0, int(y) + g0, int(sh[x, y]))
                                for x, y in zip(a[top], b[top])])[:max_pairs]
    return {"acc": accs, "nearest": nearest, "nearest_idx": nearest_idx, "pairs": pairs, "n_pairs_below": n_below,
            "in_pair": in_pair}


def uniqueness(codes: IrisCodes, threshold: float = 0.34, max_shift: int = 8, device=None) -> dict:
    """HD distribution among the codes of one set and its near-duplicate pairs (HD < threshold: mode collapse)."""
    r = _scan(codes, codes, max_shift, threshold, same=True, device=device)
    return {**r["acc"]["all"].summary(), "near_duplicate_pairs": r["n_pairs_below"],
            "samples_in_near_duplicates": int(r["in_pair"].sum()),   # all of them, not only the pairs listed
            "pairs": [{"a": a, "b": b, "hd": h, "shift": s} for h, a, b, s in r["pairs"]],
            "histogram": r["acc"]["all"].hist}


def leakage(generated: IrisCodes, training: IrisCodes, threshold: float = 0.34, max_shift: int = 8,
            device=None) -> dict:
    """Each generated code's nearest training code by HD; those below the threshold are possible memorised
    identities. Generated images that could not be encoded (empty mask) are listed as unencoded, neither flagged
    nor cleared: the flagged share is of the encoded ones. The histogram is of all generated-training pairs."""
    r = _scan(generated, training, max_shift, threshold, device=device)
    near = r["nearest"]
    encoded = generated.mask.any(1)
    flagged = np.flatnonzero(near < threshold)
    flagged = flagged[np.argsort(near[flagged])]
    return {"all_pairs": r["acc"]["all"].summary(), "nearest": hd_stats(near),
            "flagged_share": float(np.mean(near[encoded] < threshold)) if encoded.any() else float("nan"),
            "flagged": [{"generated": int(g), "training": int(r["nearest_idx"][g]), "hd": float(near[g])}
                        for g in flagged],
            "unencoded": np.flatnonzero(~encoded).tolist(),
            "nearest_hd": near, "nearest_index": r["nearest_idx"], "histogram": r["acc"]["all"].hist}


def genuine_impostor(codes: IrisCodes, labels, threshold: float = 0.34, max_shift: int = 8, device=None) -> dict:
    """Genuine (same label) vs impostor HD distributions among codes, d', and the error rates at the threshold."""
    labels = np.asarray(labels)
    if len(labels) != len(codes):
        raise ValueError(f"labels has {len(labels)} entries for {len(codes)} codes; give one identity per image")
    r = _scan(codes, codes, max_shift, threshold, same=True, labels=labels, device=device)
    g, i = r["acc"]["genuine"].summary(), r["acc"]["impostor"].summary()
    return {"genuine": g, "impostor": i, "d_prime": d_prime(g, i) if g["n"] and i["n"] else float("nan"),
            "fnmr_at_threshold": 1 - g["below_threshold"] / g["n"] if g["n"] else float("nan"),
            "fmr_at_threshold": i["below_threshold"] / i["n"] if i["n"] else float("nan"),
            "histogram_genuine": r["acc"]["genuine"].hist, "histogram_impostor": r["acc"]["impostor"].hist}
