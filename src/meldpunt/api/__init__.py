"""The HTTP faces of meldpunt (FastAPI): thin routes over the domain rooms."""

from .app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
