"""Server-rendered pages for people (Jinja2 and htmx, every asset served locally).

    from meldpunt.web import router as web_router
    app.include_router(web_router)

See ``docs/web.md``.
"""

from meldpunt.web.router import router

__all__ = ["router"]
