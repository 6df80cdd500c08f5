#!/usr/bin/env python3
"""Documentation travels with the code (issue 13, point 8):

  1. no file points outside the project (no `shared/` path, no absolute path
     into a developer's machine), and every `NAME.md` a source file or page
     mentions, and every relative Markdown link, exists in the project;
  2. the README links every page of docs/;
  3. tcp.hpp and unix.hpp document every member their streams inherit from
     detail::stream_socket (a `///` block on a using-declaration), so nobody is
     sent to a detail header;
  4. offload.hpp shows eddy::to_thread near its top, before any implementation.

usage: docs_test.py SOURCE_ROOT
"""
import os
import re
import sys

TEXT_EXT = (".hpp", ".cpp", ".h", ".md", ".py", ".sh", ".txt", ".build")
SKIP_DIRS = {".git", "__pycache__", "subprojects"}


def project_files(root):
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")
                   and not os.path.exists(os.path.join(d, x, "meson-private"))]
        for f in files:
            if f.endswith(TEXT_EXT) or f in ("demo", "test", "compare"):
                yield os.path.join(d, f)


def main():
    root = os.path.abspath(sys.argv[1])
    failed = []
    docs = sorted(f for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))
    md_names = set(docs) | {f for f in os.listdir(root) if f.endswith(".md")}
    this = os.path.abspath(__file__)

    outside = re.compile(r"(?:\.\./)+shared\b|[\w./-]*\bshared/[\w./-]*|/work/\w+|/home/\w+")
    mention = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[A-Za-z_][\w-]*\.md)\b")
    link = re.compile(r"\]\(([^)\s]+)\)")
    checked = 0
    for path in project_files(root):
        if os.path.abspath(path) == this:
            continue
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        checked += 1
        rel = os.path.relpath(path, root)
        for n, line in enumerate(text.split("\n"), 1):
            for m in outside.finditer(line):
                target = m.group(0)
                if not os.path.exists(os.path.join(root, target.lstrip("./"))):
                    failed.append(f"{rel}:{n}: points outside the project: {target}")
            # Scripts may name files they write; code comments and pages name
            # files to read, which must exist.
            for m in (mention.finditer(line) if path.endswith((".hpp", ".cpp", ".md", ".build")) else ()):
                name = m.group(1)
                here = os.path.join(os.path.dirname(path), name)
                if "/" in name:
                    ok = os.path.exists(here) or os.path.exists(os.path.join(root, name))
                else:
                    ok = name in md_names or os.path.exists(here)
                if not ok:
                    failed.append(f"{rel}:{n}: names {name}, which is not in the project")
            if path.endswith(".md"):
                for m in link.finditer(line):
                    target = m.group(1).split("#")[0]
                    if not target or re.match(r"[a-z]+:", target):
                        continue
                    if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                        failed.append(f"{rel}:{n}: broken link {m.group(1)}")
    print(f"ok: {checked} files checked for references outside the project" if not failed else "")

    readme = open(os.path.join(root, "README.md")).read()
    for d in docs:
        if f"](docs/{d})" not in readme:
            failed.append(f"README.md does not link docs/{d}")
        else:
            print(f"ok: README links docs/{d}")

    base = open(os.path.join(root, "include/eddy/io/detail/stream_socket.hpp")).read()
    body = base[base.index("class stream_socket {"):]
    body = body[:body.index(" protected:")]
    # Declarations sit at exactly two spaces of indentation in the class body.
    names = {m.group(1) for m in re.finditer(r"^  (?! )(?!//)[^(;=]*?\b(\w+)\(", body, re.M)}
    members = sorted((names - {"stream_socket", "bool"}) | ({"operator bool"} if "operator bool" in body else set()))
    for header in ("include/eddy/io/tcp.hpp", "include/eddy/io/unix.hpp"):
        lines = open(os.path.join(root, header)).read().split("\n")
        for name in members:
            decl = f"using stream_socket::{name};"
            idx = [i for i, ln in enumerate(lines) if ln.strip() == decl]
            if not idx:
                failed.append(f"{header}: does not bring in and document {name}")
            elif not lines[idx[0] - 1].strip().startswith("///"):
                failed.append(f"{header}:{idx[0] + 1}: {decl} has no /// comment")
        print(f"ok: {header} checked for {len(members)} stream members: {', '.join(members)}")

    off = open(os.path.join(root, "include/eddy/sched/offload.hpp")).read().split("\n")
    first = next((i for i, ln in enumerate(off) if re.search(r"\bauto to_thread\(", ln)), None)
    if first is None or first > 60:
        failed.append(f"include/eddy/sched/offload.hpp: to_thread is at line {first and first + 1}, not near the top")
    else:
        print(f"ok: offload.hpp defines to_thread at line {first + 1}")

    for f in failed:
        print("FAIL: " + f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
