"""The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28, ten classes.

``load_data()`` looks for the four IDX files as described in :mod:`graia.datasets.download`
(``path``, ``$GRAIA_DATA/mnist``, ``~/.graia/datasets/mnist``, ``/usr/share/datasets/mnist``)
and downloads them, SHA-256-verified, when they are nowhere to be found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from graia.datasets.download import Resource, fetch
from graia.datasets.idx import read_idx, read_idx_header
from graia.errors import DatasetError

__all__ = ["CLASS_NAMES", "MIRRORS", "NAME", "RESOURCES", "load_data"]

#: Directory name of the dataset in every searched location.
NAME = "mnist"

#: Download sources, tried in order (the original site often refuses downloads).
MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The published files, with their SHA-256 checksums and sizes in bytes.
RESOURCES: tuple[Resource, ...] = (
    Resource(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
    ),
    Resource(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
    ),
    Resource(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
    ),
    Resource(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
    ),
)

#: Class names, indexed by label.
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))

Split = tuple[np.ndarray, np.ndarray]


def _count(images: Path, labels: Path) -> int:
    """The number of samples, from the two files' headers, checked before any data is read."""
    x_dtype, x_dims = read_idx_header(images)
    if x_dtype != np.uint8 or len(x_dims) != 3 or x_dims[1:] != (28, 28):
        raise DatasetError(
            f"{images}: expected uint8 images of shape (n, 28, 28), got {x_dtype} {x_dims}"
        )
    y_dtype, y_dims = read_idx_header(labels)
    if y_dtype != np.uint8 or len(y_dims) != 1:
        raise DatasetError(f"{labels}: expected uint8 labels of shape (n,), got {y_dtype} {y_dims}")
    if y_dims[0] != x_dims[0]:
        raise DatasetError(f"{labels}: {y_dims[0]} labels for {x_dims[0]} images in {images}")
    return x_dims[0]


def _split(images: Path, labels: Path, classes: int) -> Split:
    n = _count(images, labels)
    x = read_idx(images, dtype=np.uint8, shape=(n, 28, 28))
    y = read_idx(labels, dtype=np.uint8, shape=(n,))
    if y.size and int(y.max()) >= classes:
        raise DatasetError(f"{labels}: label {int(y.max())} out of range 0..{classes - 1}")
    return x, y


def load_idx_files(
    files: Mapping[str, Path], resources: Sequence[Resource], classes: int = 10
) -> tuple[Split, Split]:
    """Read and check the four MNIST-format files (train images, train labels, test ...).

    Each pair's headers are checked against each other before any data is read, so a file that
    declares more samples than its companion costs nothing.

    Args:
        files: Each resource's ``filename`` mapped to its path on disk.
        resources: The four resources, in the order train images, train labels, test images,
            test labels.
        classes: Number of classes; labels must lie in ``0..classes-1``.

    Raises:
        DatasetError: A file is malformed or the images and labels do not fit together.
    """
    tr_x, tr_y, te_x, te_y = (files[r.filename] for r in resources)
    _count(te_x, te_y)  # both pairs' headers before either's data
    return _split(tr_x, tr_y, classes), _split(te_x, te_y, classes)


def load_data(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progress: bool | None = None,
) -> tuple[Split, Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``, like ``keras.datasets.mnist``.

    Args:
        path: Directory holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (each may also be
            uncompressed, without ``.gz``). When given, only this directory is used.
        download: Download the files into the cache when they are not found.
        mirror: Base URL to download from instead of the default sources (also settable with
            ``$GRAIA_DATASET_MIRROR``).
        progress: Show a download progress bar; ``None``: only on a terminal.

    Returns:
        ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,), ``x_test`` uint8
        (10000, 28, 28), ``y_test`` uint8 (10000,); pixels 0..255, labels 0..9.

    Raises:
        DatasetError: The files are missing and cannot be downloaded, or are malformed.
    """
    files = fetch(
        NAME,
        RESOURCES,
        MIRRORS,
        path=path,
        download=download,
        mirror=mirror,
        progress=progress,
    )
    return load_idx_files(files, RESOURCES)
