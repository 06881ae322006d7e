"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of clothes, 28x28, ten classes.

``load_data()`` looks for the four IDX files as described in :mod:`graia.datasets.download`
(``path``, ``$GRAIA_DATA/fashion-mnist``, ``~/.graia/datasets/fashion-mnist``, then Debian's
``/usr/share/datasets/fashion-mnist`` from package ``dataset-fashion-mnist``) and downloads them,
SHA-256-verified, when they are nowhere to be found.
"""

from __future__ import annotations

import os

from graia.datasets.download import Resource, fetch
from graia.datasets.mnist import Split, load_idx_files

__all__ = ["CLASS_NAMES", "DEBIAN_PACKAGE", "MIRRORS", "NAME", "RESOURCES", "load_data"]

#: Directory name of the dataset in every searched location (Debian's name).
NAME = "fashion-mnist"

#: Debian package installing the files into ``/usr/share/datasets/fashion-mnist``.
DEBIAN_PACKAGE = "dataset-fashion-mnist"

#: Download sources, tried in order: Zalando's own bucket, then the files in their repository.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

#: The files as Zalando publishes them, with their SHA-256 checksums and sizes in bytes.
#: (Debian's package holds the same data re-compressed, so its .gz files hash differently;
#: local files are checked by their IDX structure, downloads by these checksums.)
RESOURCES: tuple[Resource, ...] = (
    Resource(
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        26421880,
    ),
    Resource(
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        29515,
    ),
    Resource(
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        4422102,
    ),
    Resource(
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        5148,
    ),
)

#: Class names, indexed by label.
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_data(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progress: bool | None = None,
) -> tuple[Split, Split]:
    """Load Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, like Keras.

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
        (10000, 28, 28), ``y_test`` uint8 (10000,); pixels 0..255, labels 0..9 (see
        :data:`CLASS_NAMES`).

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
        debian_package=DEBIAN_PACKAGE,
    )
    return load_idx_files(files, RESOURCES)
