"""The installed package's version, read once from its metadata (the one place it is written is
pyproject.toml), here below everything that records it: saving, export and the CLI."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("graia")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
