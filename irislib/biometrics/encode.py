"""2D Gabor iris codes (Daugman phase quadrant bits) on the rubber-sheet strip, packed one word per angular column.

Layout: column j of a code holds, for every filter f, probe row r and part p (real, imaginary), the bit
f * 2 * n_rows + 2 * r + p, packed little-endian into bits_per_col / 64 uint64 words, so that a rotation of the
eye by one code column is a shift of the code by whole words. The mask has the same layout (1 = usable bit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WORD_BITS = 64


@dataclass(frozen=True)
class Gabor:
    """Gabor kernel on the strip (open-iris's GaborFilter with theta 90 deg, DC correction, fix points):
    `cols` x `rows` px, carrier along theta with wavelength `lambda_phi` columns."""
    cols: int
    rows: int
    sigma_phi: float
    sigma_rho: float
    lambda_phi: float

    def kernel(self) -> np.ndarray:
        """Complex kernel [rows, cols]: real and imaginary parts each of unit norm, then times 2**15 and rounded."""
        if self.cols % 2 == 0 or self.rows % 2 == 0:
            raise ValueError(f"Gabor kernel size {self.cols}x{self.rows} must be odd in both directions")
        x = np.arange(-(self.rows // 2), self.rows // 2 + 1)[:, None]       # across rho (rows)
        y = np.arange(-(self.cols // 2), self.cols // 2 + 1)[None, :]       # along theta (columns)
        env = -(y ** 2 / self.sigma_phi ** 2 + x ** 2 / self.sigma_rho ** 2) / 2
        k = np.exp(env + 1j * 2 * math.pi / self.lambda_phi * y) / (2 * math.pi * self.sigma_phi * self.sigma_rho)
        # DC correction per row: subtract the envelope scaled so that each row's real part has zero mean.
        k = k - (k.real.mean(axis=1) / env.mean(axis=1))[:, None] * env
        re, im = k.real / np.linalg.norm(k.real), k.imag / np.linalg.norm(k.imag)
        return np.round(re * 2 ** 15) + 1j * np.round(im * 2 ** 15)


OPEN_IRIS_FILTERS = (Gabor(41, 21, 7.0, 6.13, 28.0), Gabor(17, 21, 2.0, 5.86, 8.0))
HALF_FILTERS = (Gabor(21, 11, 3.5, 3.07, 14.0), Gabor(9, 11, 1.0, 2.93, 4.0))   # the same at half the strip size


@dataclass(frozen=True)
class IrisCodeSpec:
    """Strip size, probe grid, filters and mask threshold of an iris code, and the matcher's rotation range.

    The default is open-iris's code at half its strip resolution (64 x 256 strip, 16 x 128 probes, 8192 bits):
    enough for the 64-256 px irises irislib makes, and a quarter of the matching work. `open_iris()` is its
    default (128 x 512 strip, 16 x 256 probes, nearest-pixel sampling, +-15 columns)."""
    strip_rows: int = 64
    strip_cols: int = 256
    n_rows: int = 16
    n_cols: int = 128
    filters: tuple[Gabor, ...] = field(default=HALF_FILTERS)
    mask_threshold: float = 0.93
    nearest: bool = False          # open-iris samples the nearest pixel; bilinear is smoother at 64 px
    inclusive: bool = False        # rho grid includes both boundaries (open-iris) or cell centres
    max_shift: int = 8             # rotation search in code columns (8 of 128 = +-22.5 deg)
    normalise_bits: int = 0        # > 0: verification scores normalised to this many common bits (Daugman)

    def __post_init__(self):
        if self.bits_per_col % WORD_BITS:
            raise ValueError(f"n_rows={self.n_rows} x {len(self.filters)} filters x 2 = {self.bits_per_col} bits per "
                             f"column; it must be a multiple of {WORD_BITS} so rotations are whole-word shifts")
        if self.strip_cols % self.n_cols or not 0 <= self.max_shift < self.n_cols // 2:
            raise ValueError(f"n_cols={self.n_cols} must divide strip_cols={self.strip_cols} and max_shift="
                             f"{self.max_shift} be in [0, n_cols / 2)")

    @classmethod
    def open_iris(cls) -> IrisCodeSpec:
        return cls(128, 512, 16, 256, OPEN_IRIS_FILTERS, 0.93, nearest=True, inclusive=True, max_shift=15)

    @property
    def bits_per_col(self) -> int:
        return 2 * self.n_rows * len(self.filters)

    @property
    def words_per_col(self) -> int:
        return self.bits_per_col // WORD_BITS

    def probe_rows(self) -> np.ndarray:
        """Strip rows probed (open-iris's RegularProbeSchema: rho from 0 to 1 - 1/16)."""
        rho = np.linspace(0, 1 - 0.0625, self.n_rows)
        return np.minimum(np.round(rho * self.strip_rows).astype(int), self.strip_rows - 1)


@dataclass
class IrisCodes:
    """Packed codes and masks [N, n_cols * words_per_col] uint64 (row i = one eye)."""
    code: np.ndarray
    mask: np.ndarray
    words_per_col: int = 1

    def __post_init__(self):
        if self.code.shape != self.mask.shape or self.code.dtype != np.uint64 or self.code.ndim != 2:
            raise ValueError(f"code {self.code.shape} {self.code.dtype} and mask {self.mask.shape} must be equal "
                             f"[N, words] uint64 arrays")

    def __len__(self) -> int:
        return len(self.code)

    def __getitem__(self, idx) -> IrisCodes:
        return IrisCodes(np.atleast_2d(self.code[idx]), np.atleast_2d(self.mask[idx]), self.words_per_col)

    @property
    def n_cols(self) -> int:
        return self.code.shape[1] // self.words_per_col


def pack(bits: np.ndarray, mask: np.ndarray) -> IrisCodes:
    """Bool code and mask bits [N, n_cols, bits_per_col] -> IrisCodes (bits_per_col a multiple of 64)."""
    n, cols, b = bits.shape
    if b % WORD_BITS or mask.shape != bits.shape:
        raise ValueError(f"bits {bits.shape} and mask {mask.shape}: need equal shapes, bits per column % 64 == 0")

    def words(x):
        return np.packbits(x.astype(bool), axis=-1, bitorder="little").view("<u8").astype(np.uint64).reshape(n, -1)
    return IrisCodes(words(bits), words(mask), b // WORD_BITS)


def unpack(codes: IrisCodes) -> tuple[np.ndarray, np.ndarray]:
    """IrisCodes -> bool (code, mask) [N, n_cols, bits_per_col] (inverse of pack)."""
    def bits(x):
        u8 = np.ascontiguousarray(x).astype("<u8").view(np.uint8).reshape(len(x), codes.n_cols, -1)
        return np.unpackbits(u8, axis=-1, bitorder="little").astype(bool)
    return bits(codes.code), bits(codes.mask)


def _row_windows(spec: IrisCodeSpec, k_rows: int) -> list[tuple[int, int, int]]:
    """(first strip row, first kernel row, height) of each probe row. Near the pupil and the limbus the window is
    cut to the strip and the kernel's central rows are used (as open-iris does): the filter then sees iris only."""
    half, out = k_rows // 2, []
    for r in spec.probe_rows():
        top, bot = max(0, r - half), min(r + half + 1, spec.strip_rows)
        out.append((top, half - (bot - top) // 2, bot - top))
    return out


def _column_kernels(kernel: np.ndarray, n: int) -> np.ndarray:
    """FFT [rows, n] of each kernel row laid out so that ifft(fft(row) * K) is open-iris's per-column sum
    sum_dc strip[c - half + dc] * kernel[dc] (a correlation, not a convolution: the sine part is odd)."""
    rows, cols = kernel.shape
    g = np.zeros((rows, n), complex)
    g[:, (np.arange(cols) - cols // 2) * -1 % n] = kernel      # g[-m] = k[m + half]
    return np.fft.fft(g, axis=1)


def filter_responses(strips: np.ndarray, valid: np.ndarray, spec: IrisCodeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gabor responses [N, F, n_rows, n_cols] (complex) at the probe points and the share of each kernel's
    |imaginary| weight that falls on valid strip pixels (open-iris's mask response)."""
    n, rows, cols = strips.shape
    if (rows, cols) != (spec.strip_rows, spec.strip_cols) or valid.shape != strips.shape:
        raise ValueError(f"strips {strips.shape} / valid {valid.shape}: expected [N, {spec.strip_rows}, "
                         f"{spec.strip_cols}] each, as the spec's strip size")
    f_img, f_ok = np.fft.fft(strips, axis=2), np.fft.fft(valid.astype(float), axis=2)
    step = cols // spec.n_cols
    resp = np.zeros((n, len(spec.filters), spec.n_rows, spec.n_cols), complex)
    frac = np.zeros(resp.shape)
    for f, gabor in enumerate(spec.filters):
        k = gabor.kernel()
        kk, kw = _column_kernels(k, cols), _column_kernels(np.abs(k.imag), cols)
        for i, (top, ktop, hgt) in enumerate(_row_windows(spec, k.shape[0])):
            sl, ks = slice(top, top + hgt), slice(ktop, ktop + hgt)
            resp[:, f, i] = np.fft.ifft((f_img[:, sl] * kk[ks]).sum(1), axis=1)[:, ::step]
            w = np.abs(k.imag[ks]).sum()
            frac[:, f, i] = np.fft.ifft((f_ok[:, sl] * kw[ks].real).sum(1), axis=1).real[:, ::step] / w
    return resp, frac


def encode_strips(strips: np.ndarray, noise: np.ndarray, spec: IrisCodeSpec = IrisCodeSpec(),
                  batch: int = 256) -> IrisCodes:
    """Codes of strips [N, strip_rows, strip_cols] in [0, 1] with noise masks (True = not iris) -> IrisCodes.
    A bit is usable when >= mask_threshold of its filter's weight lies on iris; real and imaginary bits share it."""
    strips, noise = np.asarray(strips, float), np.asarray(noise, bool)
    if strips.ndim == 2:
        strips, noise = strips[None], noise[None]
    out = []
    for s in range(0, len(strips), batch):           # bounds the FFT buffers (complex [batch, rows, cols])
        resp, frac = filter_responses(strips[s:s + batch], ~noise[s:s + batch], spec)
        bits = np.stack([resp.real > 0, resp.imag > 0], -1)                     # [n, F, R, C, 2]
        ok = (frac >= spec.mask_threshold - 1e-9) & (np.abs(resp) > 0)
        ok = np.repeat(ok[..., None], 2, -1)
        order = (0, 3, 1, 2, 4)                                                  # -> [n, C, F, R, 2]
        b = bits.transpose(order).reshape(len(resp), spec.n_cols, -1)
        m = ok.transpose(order).reshape(len(resp), spec.n_cols, -1)
        out.append(pack(b, m))
    return IrisCodes(np.concatenate([c.code for c in out]), np.concatenate([c.mask for c in out]),
                     spec.words_per_col)
