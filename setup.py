"""Builds the optional C extension `auxpretrain.data.cspeedups` (the fast paths of `corrupt`).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler
the install still succeeds and `corrupt` runs its pure-Python path (the same output, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("auxpretrain.data.cspeedups", ["auxpretrain/data/cspeedups.c"],
                             extra_compile_args=["-O2"], optional=True)])
