#!/usr/bin/env python3
"""Checks that every #include in eddy points down the layer order of docs/layers.md.

Usage: check_includes.py [ROOT]   (ROOT defaults to the repository holding this file)

Every .hpp/.cpp under the project's folders is given a layer; every #include in it
is resolved to a file of the tree (as the compiler would: quoted includes first next
to the including file, then the include directories; <eddy/...> in include/) and
checked against the rules below. Includes that resolve outside the tree (the standard
library, liburing, gtest, ...) are not eddy's and are skipped. Each violation is
printed as `file:line: rule: explanation`; the exit status is 1 if there is any.

Lines are read without the preprocessor, so an #include under #if counts whatever the
condition: a layer rule holds in every configuration.
"""

import os
import re
import sys

# Layers, lowest first (docs/layers.md).
BASE, BACKENDS, RUNTIME, IO, SCHED, CLIENT = range(6)
LAYER_NAMES = {
    BASE: "L0 base",
    BACKENDS: "L1 contract & backends",
    RUNTIME: "L2 runtime",
    IO: "L3 io",
    SCHED: "L4 sched",
    CLIENT: "L5 clients",
}

SOURCE_EXTENSIONS = (".hpp", ".cpp", ".h", ".cc", ".hh", ".ipp")

# Folders that hold the library, and those that only use it. Clients see the public
# headers (include/) and their own folder (each one's meson.build adds it).
LIBRARY_ROOTS = ("include", "runtime", "io", "sched", "compat")
CLIENT_ROOTS = ("samples", "bench", "tests", "python")

# The contract between the loop and its backends: the only L1 files that runtime/,
# io/ and sched/ may include.
CONTRACT = frozenset(
    {
        "io/backend.hpp",
        "include/eddy/io/detail/io_op.hpp",
        "include/eddy/io/backend_kind.hpp",
        "include/eddy/io/kernel_features.hpp",
    }
)

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    """The layer of a repository-relative path (with '/'), or None if it has none."""
    if path in ("runtime/log.hpp", "runtime/log.cpp", "include/eddy/detail/intrusive_list.hpp"):
        return BASE
    if path == "include/eddy/eddy.hpp":
        return CLIENT
    if path in CONTRACT:
        return BACKENDS
    if re.fullmatch(r"io/backend_[^/]+\.cpp", path):
        return BACKENDS
    if path.startswith(("io/readiness/", "io/uring/", "io/epoll/", "compat/")):
        return BACKENDS
    if path.startswith(("include/eddy/runtime/", "runtime/")):
        return RUNTIME
    # Files use the blocking pool on epoll and libuv: they sit with sched/.
    if path.startswith("io/fs/") or path in ("include/eddy/io/fs.hpp", "include/eddy/io/send_file.hpp"):
        return SCHED
    if path.startswith(("include/eddy/io/", "io/")):
        return IO
    if path.startswith(("include/eddy/sched/", "sched/")):
        return SCHED
    if path.split("/", 1)[0] in CLIENT_ROOTS:
        return CLIENT
    return None


def backend_of(path):
    """Which backend a file belongs to ('uring', 'epoll', 'libuv'), or None."""
    if path.startswith("io/uring/"):
        return "uring"
    if path.startswith("io/epoll/"):
        return "epoll"
    if path.startswith("compat/"):
        name = path.rsplit("/", 1)[-1]
        if "libuv" in path or name.startswith("uv_"):
            return "libuv"
    return None


def is_selection_table(path):
    return re.fullmatch(r"io/backend_[^/]+\.cpp", path) is not None


def is_public(path):
    return path.startswith("include/eddy/")


def client_root(path):
    first = path.split("/", 1)[0]
    return first if first in CLIENT_ROOTS else None


def rules_broken(src, dst):
    """Every rule that `src` including `dst` breaks, as (rule, explanation) pairs."""
    out = []
    ls, ld = layer_of(src), layer_of(dst)
    if ld is None:
        return out  # dst itself is reported as a file without a layer
    if ls == CLIENT:
        # Clients (and the umbrella header) see only installed headers and their own.
        own = client_root(src)
        if not is_public(dst) and (own is None or client_root(dst) != own):
            out.append(
                (
                    "client-uses-private",
                    "%s may include only public <eddy/...> headers and its own folder's "
                    "headers, not %s" % (LAYER_NAMES[CLIENT], dst),
                )
            )
        return out
    if ld > ls:
        out.append(
            (
                "layer-order",
                "%s may not include %s (%s): includes point down the layers"
                % (LAYER_NAMES[ls], dst, LAYER_NAMES[ld]),
            )
        )
        return out
    if is_public(src) and not is_public(dst):
        out.append(
            (
                "public-uses-private",
                "an installed header may include only <eddy/...> headers, not %s" % dst,
            )
        )
    if ls == BASE and ld != BASE:
        out.append(("base-is-alone", "L0 base includes no other eddy header (%s)" % dst))
    if ls in (RUNTIME, IO, SCHED) and ld == BACKENDS and dst not in CONTRACT:
        out.append(
            (
                "backend-through-contract",
                "%s reaches the backends only through the contract (io/backend.hpp, "
                "<eddy/io/detail/io_op.hpp>, <eddy/io/backend_kind.hpp>, <eddy/io/kernel_features.hpp>), not %s"
                % (LAYER_NAMES[ls], dst),
            )
        )
    if ls == BACKENDS and ld == BACKENDS and not is_selection_table(src):
        bs, bd = backend_of(src), backend_of(dst)
        if bd is not None and bs != bd:
            what = "the %s backend" % bs if bs else (
                "the contract" if src in CONTRACT else
                "io/readiness" if src.startswith("io/readiness/") else "compat/ (not a backend)")
            out.append(
                (
                    "backends-apart",
                    "%s may not include the %s backend's %s: backends share only "
                    "io/backend.hpp and io/readiness/; only the selection table "
                    "(io/backend_*.cpp) knows them all" % (what, bd, dst),
                )
            )
        elif src in CONTRACT and dst not in CONTRACT:
            out.append(
                (
                    "contract-is-alone",
                    "the contract includes only contract headers, not %s" % dst,
                )
            )
    return out


# Comments, and the literals that could hide a comment opener. A quote right after a
# digit or letter is a digit separator (1'000) or a prefix, not a character literal.
TOKEN_RE = re.compile(
    r"//[^\n]*"
    r"|/\*.*?(?:\*/|\Z)"
    r'|"(?:\\.|[^"\\\n])*"'
    r"|(?<![0-9A-Za-z_])'(?:\\.|[^'\\\n])*'",
    re.S,
)


def strip_comments(text):
    """Blanks out comments, keeping their newlines so line numbers hold."""

    def blank(m):
        t = m.group(0)
        return "\n" * t.count("\n") if t.startswith("/") else t

    return TOKEN_RE.sub(blank, text)


def includes_of(full_path):
    with open(full_path, encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    for number, line in enumerate(text.split("\n"), 1):
        m = INCLUDE_RE.match(line)
        if m:
            yield number, m.group(1), m.group(2).strip()


def search_dirs(path):
    """Include directories of the target that builds `path` (meson.build), nearest first."""
    root = client_root(path)
    if root is not None:
        return [root, "include"]  # its own folder, then eddy_dep's public headers
    return ["include", "."]  # the library: eddy_private_inc


def resolve(root, src, kind, name):
    """The repository-relative file `name` names when included from `src`, or None."""
    candidates = []
    if kind == '"':
        candidates.append(os.path.dirname(src))
    candidates.extend(search_dirs(src))
    if name.startswith("eddy/"):
        candidates.append("include")  # every target sees the public headers
    # A library path spelled from the root ("io/backend.hpp") is still the library's
    # file when a client spells it: the compiler may not find it, but a relative path
    # ("../../io/backend.hpp") or an extra include directory would.
    candidates.append(".")
    for d in candidates:
        p = os.path.normpath(os.path.join(d, name)).replace(os.sep, "/")
        if p.startswith("../"):
            continue
        if os.path.isfile(os.path.join(root, p)):
            return p
    return None


def is_build_dir(full):
    return any(
        os.path.exists(os.path.join(full, marker))
        for marker in ("meson-private", "build.ninja", "CMakeCache.txt")
    )


def source_files(root):
    for top in LIBRARY_ROOTS + CLIENT_ROOTS:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and d not in ("subprojects", "__pycache__")
                and not is_build_dir(os.path.join(dirpath, d))
            )
            for name in sorted(filenames):
                if name.endswith(SOURCE_EXTENSIONS):
                    full = os.path.join(dirpath, name)
                    yield os.path.relpath(full, root).replace(os.sep, "/")


def check(root):
    """All violations in the tree at `root`, as (file, line, rule, explanation)."""
    violations = []
    for src in source_files(root):
        if layer_of(src) is None:
            violations.append((src, 1, "no-layer", "file is in no layer of docs/layers.md"))
            continue
        for line, kind, name in includes_of(os.path.join(root, src)):
            dst = resolve(root, src, kind, name)
            if dst is None:
                if name.startswith("eddy/"):
                    violations.append(
                        (src, line, "missing-header", "<%s> is not in include/" % name)
                    )
                continue  # not eddy's: the standard library, liburing, gtest, ...
            if dst == src:
                continue
            for rule, why in rules_broken(src, dst):
                violations.append((src, line, rule, why))
    return violations


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    root = argv[1] if len(argv) > 1 else os.path.normpath(os.path.join(here, "..", ".."))
    violations = check(root)
    for src, line, rule, why in violations:
        print("%s:%d: %s: %s" % (src, line, rule, why))
    if violations:
        print("%d include(s) break the layer order (docs/layers.md)" % len(violations))
        return 1
    print("includes follow the layer order (docs/layers.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
