"""The HTTP faces of meldpunt (FastAPI): thin routes over the domain rooms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the pages import parts of the API (its state, its key checks) and the
    # application imports the pages, so importing a part must not build the application module.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
