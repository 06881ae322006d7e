"""The multicore target: Futhark's C backend on a pool of CPU threads.

Environment: ``GRAIA_NUM_THREADS``, the number of threads (default: every core this process may
use).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from graia.errors import GraiaError


def default_threads() -> int:
    """``GRAIA_NUM_THREADS``, else every core this process may use."""
    env = os.environ.get("GRAIA_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise GraiaError(f"GRAIA_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise GraiaError(f"GRAIA_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Multicore:
    """The ``multicore`` backend: ``num_threads`` threads (default: :func:`default_threads`)."""

    name = "multicore"
    module = "graia.backends._futhark_multicore"
    not_built = (
        "the compiled module graia.backends._futhark_multicore is not installed: graia was "
        "installed without the futhark compiler. Run scripts/install-toolchain (as root), then "
        "reinstall graia (pip install .)"
    )
    runs_on_cpu = True

    def __init__(self, *, num_threads: int | None = None) -> None:
        self.num_threads = num_threads

    def configure(self, mod: ModuleType, cfg: Any, keep: list) -> None:
        self.num_threads = self.num_threads or default_threads()
        mod.lib.futhark_context_config_set_num_threads(cfg, self.num_threads)

    def unusable(self, mod: ModuleType) -> str:
        return ""  # the module loaded: it runs

    def details(self, mod: ModuleType) -> dict[str, Any]:
        return {"threads": self.num_threads or default_threads()}
