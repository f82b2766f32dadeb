"""How signals are FOUND: exact digest lookup and an exact Hamming-radius index for PDQ.

Pure: imports nothing else of meldpunt, touches no database and no network. Indexes speak of
slots (integers the caller assigns meaning to) and can be saved to and loaded from snapshot files.
"""

from .exact import ExactIndex
from .pdq import Matches, PdqIndex, hashes_from_hex, hashes_to_hex
from .snapshot import SnapshotError, load, save

__all__ = [
    "ExactIndex",
    "Matches",
    "PdqIndex",
    "SnapshotError",
    "hashes_from_hex",
    "hashes_to_hex",
    "load",
    "save",
]
