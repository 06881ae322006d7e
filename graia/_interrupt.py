"""Ctrl-C in the ``graia`` command outside its ``KeyboardInterrupt`` handler: while the package is
imported (before ``graia.cli.main`` runs) and after the command's result is printed.

This module imports nothing heavy, so that ``graia/__init__.py`` can install the handler as its
first instruction when the process is the ``graia`` command; library users' processes are left
alone.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from types import FrameType

#: While true (``graia.cli.main`` runs a command), the next Ctrl-C raises ``KeyboardInterrupt``
#: for the command's own handler (which says what was saved); otherwise it ends the process.
raising = False
#: What the command saved, named by a Ctrl-C after it finished.
saved: object = None


def is_command() -> bool:
    """Whether this process runs the ``graia`` command: its console script, or
    ``python -m graia``."""
    main = sys.modules.get("__main__")
    if os.path.basename(getattr(main, "__file__", None) or "") == "graia":
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b == "graia" for a, b in itertools.pairwise(argv))


def exit_on_interrupt() -> None:
    """Make Ctrl-C end the process at once with cli.md's message and exit status 130 (no
    traceback): ``graia: interrupted; saved <saved>`` or ``...; nothing saved``; or, while
    :data:`raising`, raise ``KeyboardInterrupt`` once (a second Ctrl-C ends the process)."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        global raising
        if raising:
            raising = False
            raise KeyboardInterrupt
        what = f"saved {saved}" if saved else "nothing saved"
        for stream, text in ((sys.stdout, ""), (sys.stderr, f"graia: interrupted; {what}\n")):
            try:  # what was printed before stays printed
                stream.write(text)
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed or reentered stream: exit anyway
                pass
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)
