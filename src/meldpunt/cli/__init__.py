"""The meldpunt command line (thin: it parses, calls the domain, and prints).

`app` assembles the commands; `common` holds what they share. The command groups (`registry`,
`checks`, `match`, `service`) import `common` only, never each other.
"""

import os

# Hashing runs one image per process; let each process use one BLAS thread so that --jobs is
# what decides how many cores work (set before numpy is imported anywhere).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from meldpunt.cli.app import app, main  # noqa: E402

__all__ = ["app", "main"]
