"""The web demo: draw a digit and watch a Graia network classify it, look inside, train one.

Start it with ``graia demo`` (or ``python -m graia demo``) and open the address it prints. See
:mod:`graia.demo.core` for what it computes and :mod:`graia.demo.server` for the web side.
"""

from graia.demo.server import make_server, serve

__all__ = ["make_server", "serve"]
