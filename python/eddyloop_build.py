"""The PEP 517 backend of python/pyproject.toml: meson-python, run from the
repository root, because eddyloop's extension is built from the whole C++ tree
(the root meson project), which a project rooted in python/ could not reach."""

import functools
import os

import mesonpy

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _from_root(hook):
    @functools.wraps(hook)
    def run(*args, **kwargs):
        args = [os.path.abspath(a) if i == 0 and isinstance(a, str) else a for i, a in enumerate(args)]
        old = os.getcwd()
        os.chdir(_ROOT)
        try:
            return hook(*args, **kwargs)
        finally:
            os.chdir(old)
    return run


build_wheel = _from_root(mesonpy.build_wheel)
build_sdist = _from_root(mesonpy.build_sdist)
get_requires_for_build_wheel = _from_root(mesonpy.get_requires_for_build_wheel)
get_requires_for_build_sdist = _from_root(mesonpy.get_requires_for_build_sdist)
