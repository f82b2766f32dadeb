"""meldpunt: open infrastructure against known illegal imagery. It handles hashes, never images."""

__version__ = "0.1.0"
