"""scikit-learn's 8x8 handwritten digits (1797 images, ten classes) with a fixed split.

The images come from :func:`sklearn.datasets.load_digits` (bundled with scikit-learn, no
download). Pixels, integers 0..16, are scaled to uint8 by ``(p * 255 + 8) // 16`` (0 -> 0,
8 -> 128, 16 -> 255). The split is fixed and needs no stratification::

    perm = numpy.random.default_rng(0).permutation(1797)
    train = perm[:1437]   # 80 %, in this order
    test = perm[1437:]    # the remaining 360
"""

from __future__ import annotations

import numpy as np

from graia.errors import DatasetError

__all__ = [
    "CLASS_NAMES",
    "N_SAMPLES",
    "N_TRAIN",
    "SPLIT_SEED",
    "load_data",
    "quantize_pixels",
]

#: Number of images in scikit-learn's digits data.
N_SAMPLES = 1797
#: Number of training images; the other ``N_SAMPLES - N_TRAIN`` = 360 are the test set.
N_TRAIN = 1437
#: Seed of ``numpy.random.default_rng`` that draws the split permutation.
SPLIT_SEED = 0
#: Class names, indexed by label.
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))

Split = tuple[np.ndarray, np.ndarray]


def quantize_pixels(pixels: np.ndarray) -> np.ndarray:
    """Scale digits pixels 0..16 to uint8 0..255 by ``(p * 255 + 8) // 16``."""
    p = np.asarray(pixels).astype(np.int64)
    return ((p * 255 + 8) // 16).astype(np.uint8)


def load_data() -> tuple[Split, Split]:
    """Load the 8x8 digits as ``((x_train, y_train), (x_test, y_test))``, like Keras.

    Returns:
        ``x_train`` uint8 (1437, 8, 8), ``y_train`` uint8 (1437,), ``x_test`` uint8 (360, 8, 8),
        ``y_test`` uint8 (360,). Pixels are scaled from 0..16 to 0..255 by
        ``(p * 255 + 8) // 16``; the split is ``numpy.random.default_rng(0).permutation(1797)``,
        the first 1437 indices for training and the remaining 360 for testing, in that order.

    Raises:
        DatasetError: scikit-learn is not installed or its digits data is not as expected.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError(
            "the digits dataset needs scikit-learn: pip install scikit-learn"
        ) from exc
    bunch = load_digits()
    images = np.asarray(bunch.images)
    labels = np.asarray(bunch.target)
    if images.shape != (N_SAMPLES, 8, 8) or labels.shape != (N_SAMPLES,):
        raise DatasetError(
            f"scikit-learn's digits data has shape {images.shape}, expected ({N_SAMPLES}, 8, 8)"
        )
    if images.min() < 0 or images.max() > 16 or np.any(images != np.round(images)):
        raise DatasetError("scikit-learn's digits pixels are not integers in 0..16")
    x = quantize_pixels(images)
    y = labels.astype(np.uint8)
    perm = np.random.default_rng(SPLIT_SEED).permutation(N_SAMPLES)
    train, test = perm[:N_TRAIN], perm[N_TRAIN:]
    return (x[train], y[train]), (x[test], y[test])
