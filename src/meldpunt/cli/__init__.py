"""The meldpunt command line (thin: it parses, calls the domain, and prints)."""

from meldpunt.cli.app import app, main

__all__ = ["app", "main"]
