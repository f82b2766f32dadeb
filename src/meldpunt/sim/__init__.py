"""The simulated internet (docs/simulation.md): hosters serving benign pictures over HTTP on
loopback addresses (``internet``, ``serving``, ``pictures``), their name table (``names``),
their behaviours on meldpunt's clock (``behaviour``), a mail sink that hands notices to them
(``mailsink``), their IP-to-ASN table and abuse directory (``tables``), all together in
``simulation``; whole scenarios on a controlled clock (``scenario``, ``plan``, ``analyst``) and
the simulation beside a running service (``live``).

It sits above the domain rooms and the worker, which it drives as an operator would, and below
the faces (``demo``, ``cli``).
"""
