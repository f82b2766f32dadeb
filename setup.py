"""Builds meldpunt's one C extension (the PDQ index's search loops); everything else is in
pyproject.toml."""

import platform

from setuptools import Extension, setup

compile_args = ["-O3"]
if platform.machine().lower() in ("x86_64", "amd64"):
    compile_args.append("-mpopcnt")  # every x86-64 CPU of the last fifteen years has it

setup(
    ext_modules=[
        Extension(
            "meldpunt.index._mih",
            sources=["src/meldpunt/index/_mih.c"],
            extra_compile_args=compile_args,
        )
    ]
)
