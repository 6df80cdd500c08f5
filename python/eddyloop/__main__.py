"""python -m eddyloop: eddyloop's version, the backend a loop would get here and
why, and what the kernel offers (the C++ side's eddy_info, from Python)."""

import sys

from . import __version__, _core


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print("usage: python -m eddyloop\n"
              "Prints eddyloop's version, the backend a loop would get here (EDDY_BACKEND\n"
              "is honoured) and why, each backend's availability and the kernel's features.")
        return 0
    if argv:
        print(f"python -m eddyloop: unexpected argument {argv[0]!r} (try --help)", file=sys.stderr)
        return 2
    i = _core.info()
    f = i["features"]
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    print(f"eddyloop {__version__} (Python {sys.version.split()[0]}, {sys.executable})")
    print(f"kernel {i['kernel']}")
    print(f"backend: {i['backend']} ({i['reason']})")
    for name, state in i["backends"].items():
        print(f"  {name:9} {state}")
    print(f"io_uring: {yn(f['io_uring'])}" + ("" if f["io_uring"] else f" -- {f['io_uring_why']}"))
    if f["io_uring"]:
        print(f"  SINGLE_ISSUER {yn(f['single_issuer'])}, DEFER_TASKRUN {yn(f['defer_taskrun'])}, "
              f"multishot accept {yn(f['multishot_accept'])}, multishot recv {yn(f['multishot_recv'])}, "
              f"buffer ring {yn(f['buffer_ring'])}, cancel by fd {yn(f['cancel_by_fd'])}")
    print(f"epoll: {yn(f['epoll'])}" + (f" -- {f['epoll_why']}" if f["epoll_why"] else ""))
    print(f"libuv: {yn(f['libuv'])}" + (f" ({f['libuv_version']})" if f["libuv_version"] else "")
          + ("" if f["libuv"] else f" -- {f['libuv_why']}"))
    return 0 if i["backend"] != "none" else 1


if __name__ == "__main__":
    sys.exit(main())
