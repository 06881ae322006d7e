"""Datasets, returned like ``keras.datasets``: ``((x_train, y_train), (x_test, y_test))``.

* :mod:`graia.datasets.digits` - scikit-learn's 8x8 digits, fixed 80/20 split;
* :mod:`graia.datasets.fashion_mnist` - Fashion-MNIST, 28x28;
* :mod:`graia.datasets.mnist` - MNIST, 28x28.

All arrays are uint8. See ``docs/datasets.md`` for where files are looked for and cached.
"""

from __future__ import annotations

import os

import numpy as np

from graia.datasets import digits, fashion_mnist, idx, mnist
from graia.errors import DatasetError

__all__ = ["NAMES", "digits", "fashion_mnist", "idx", "load_data", "mnist"]

#: Dataset names accepted by :func:`load_data` (and the CLI's ``--dataset``).
NAMES: tuple[str, ...] = ("digits", "fashion-mnist", "mnist")


def load_data(
    name: str, path: str | os.PathLike[str] | None = None, **kwargs: object
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a dataset by name: ``"digits"``, ``"fashion-mnist"`` or ``"mnist"``.

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
    raise DatasetError(f"name: unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
