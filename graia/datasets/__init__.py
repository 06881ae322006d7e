"""Datasets, returned like ``keras.datasets``: ``((x_train, y_train), (x_test, y_test))``.

* :mod:`graia.datasets.digits` - scikit-learn's 8x8 digits, fixed 80/20 split;
* :mod:`graia.datasets.fashion_mnist` - Fashion-MNIST, 28x28;
* :mod:`graia.datasets.mnist` - MNIST, 28x28;
* :mod:`graia.datasets.cifar10` - CIFAR-10, 32x32 RGB (channels-last), from the binary archive.

All arrays are uint8. See ``docs/datasets.md`` for where files are looked for and cached.
"""

from __future__ import annotations

import os

import numpy as np

from graia.datasets import cifar10, digits, fashion_mnist, idx, mnist
from graia.errors import DatasetError

__all__ = ["NAMES", "cifar10", "digits", "fashion_mnist", "idx", "load_data", "mnist"]

#: Dataset names accepted by :func:`load_data` (and the CLI's ``--dataset``).
NAMES: tuple[str, ...] = ("cifar10", "digits", "fashion-mnist", "mnist")


def load_data(
    name: str, path: str | os.PathLike[str] | None = None, **kwargs: object
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a dataset by name: ``"cifar10"``, ``"digits"``, ``"fashion-mnist"`` or ``"mnist"``.

    Args:
        name: The dataset.
        path: Directory holding the files (ignored by ``"digits"``, which ships with
            scikit-learn).
        **kwargs: Passed to the dataset's ``load_data`` (``download``, ``mirror``, ``progress``).

    Raises:
        DatasetError: Unknown name, or the dataset's own errors.
    """
    key = name.replace("_", "-").lower() if isinstance(name, str) else name
    if key == "digits":
        return digits.load_data()
    if key == "fashion-mnist":
        return fashion_mnist.load_data(path, **kwargs)  # type: ignore[arg-type]
    if key == "mnist":
        return mnist.load_data(path, **kwargs)  # type: ignore[arg-type]
    if key in ("cifar10", "cifar-10"):
        return cifar10.load_data(path, **kwargs)  # type: ignore[arg-type]
    raise DatasetError(f"name: unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
