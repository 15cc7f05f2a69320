"""Builds the optional C extensions: `auxpretrain.data.cspeedups` (the fast paths of `corrupt`)
and `auxpretrain.pretraining.ccontext` (the context objective's updates).

Everything else is declared in pyproject.toml. Both are optional: without a C compiler the
install still succeeds and the package runs its pure-Python and TensorFlow paths (the same
results, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("auxpretrain.data.cspeedups", ["auxpretrain/data/cspeedups.c"], extra_compile_args=["-O2"],
              optional=True),
    Extension("auxpretrain.pretraining.ccontext", ["auxpretrain/pretraining/ccontext.c"],
              extra_compile_args=["-O3"], optional=True),
])
