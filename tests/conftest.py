"""Shared fixtures. In CI (``CI=true``) a backend that cannot run is a failure, not a skip, except
a GPU-only backend (``needs_gpu`` in the registry, e.g. cuda): CI has no GPU, so it is skipped
there with the reason the registry gives."""

from __future__ import annotations

import os

import pytest

from graia import backend
from graia.backends import futhark

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _require(name: str) -> None:
    """Skip (locally) or fail (in CI) when ``name`` cannot run here."""
    ok, reason = backend.available()[name]
    if not ok:
        message = f"backend {name!r} unavailable: {reason}"
        if IN_CI and not backend.BACKENDS[name].needs_gpu:
            pytest.fail(message + " (CI requires every backend)")
        pytest.skip(message)


@pytest.fixture
def require_backend():
    """A function that skips (locally) or fails (in CI) when its backend cannot run."""
    return _require


@pytest.fixture(params=backend.NAMES)
def backend_name(request) -> str:
    """Each backend in turn (skipped locally, failed in CI, when it cannot run)."""
    _require(request.param)
    return request.param


@pytest.fixture(params=list(futhark.KINDS))
def futhark_backend(request) -> str:
    """Each Futhark backend in turn."""
    _require(request.param)
    return request.param
