# Shared by scripts/demo and scripts/test: install what is missing, then configure
# and build with Meson. Sourced, not run.

EDDY_PACKAGES=(meson ninja-build g++ pkg-config cmake python3 liburing-dev libuv1-dev
               libgtest-dev libbenchmark-dev libcereal-dev
               python3-dev python3-uvloop python3-aiohttp wrk openssl
               libssl-dev                       # io/tls (issue 22)
               redis-server libhiredis-dev      # sched/cluster (issue 25)
               libhttp-parser-dev               # samples/http_server (issue 23)
               python3-mesonpy python3-venv     # eddyloop from pip (issue 24)
               libpython3.11-testsuite)         # CPython's asyncio tests run on eddyloop

eddy_log() { printf '== %s\n' "$*" >&2; }

eddy_missing_packages() {
  local missing=() p
  for p in "${EDDY_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] || printf '%s\n' "${missing[@]}"
}

eddy_install_packages() {
  local missing
  mapfile -t missing < <(eddy_missing_packages)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    eddy_log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "eddy needs these Debian packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# eddy_check_disk GIB: say so, before building, when this checkout's file system has
# less than GIB GiB free (a full disk otherwise shows up as a linker error midway).
eddy_check_disk() {
  local need_kib=$(( $1 * 1024 * 1024 )) free_kib
  free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
  if [ -n "$free_kib" ] && [ "$free_kib" -lt "$need_kib" ]; then
    eddy_log "warning: $(( free_kib / 1024 )) MiB free here; the builds need about $1 GiB"
  fi
}

# eddy_configure DIR [meson options...]: set up DIR once, reconfigure if it exists.
eddy_configure() {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

# eddy_build DIR [meson options...]: configure and build everything in DIR.
eddy_build() {
  local dir=$1
  shift
  eddy_configure "$dir" "$@" || return 1
  eddy_ninja "$dir"
}

# eddy_ninja DIR [targets...]: build, showing the log only when it fails.
eddy_ninja() {
  local dir=$1
  shift
  if ! ninja -C "$dir" -j "$(nproc)" "$@" >"$dir/build-output.txt" 2>&1; then
    grep -E "error|FAILED" -A3 "$dir/build-output.txt" | head -n 60 >&2
    return 1
  fi
}

# eddy_suite_targets DIR SUITE...: the executables of the tests in those suites.
eddy_suite_targets() {
  local dir=$1
  shift
  meson introspect "$dir" --tests | python3 -c '
import json, os, sys
want = set(sys.argv[2:])
for t in json.load(sys.stdin):
    if want & {s.split(":")[-1] for s in t["suite"]}:
        print(os.path.relpath(t["cmd"][0], sys.argv[1]))
' "$dir" "$@" | sort -u
}

# eddy_ninja_progress DIR TARGET...: build only these targets, saying how far it
# got: on a terminal one line that updates in place ("building: 12 of 40 ..."),
# otherwise a line every 10% or 15 s. The full log is in DIR/build-output.txt; its
# errors are shown if the build fails.
eddy_ninja_progress() {
  local dir=$1
  shift
  local log="$dir/build-output.txt" tty=0
  [ -t 2 ] && tty=1
  set -o pipefail
  if ! NINJA_STATUS='[%f/%t] ' ninja -C "$dir" -j "$(nproc)" "$@" 2>&1 | tee "$log" | awk -v tty="$tty" '
      match($0, /^\[[0-9]+\/[0-9]+\] /) {
        split(substr($0, 2, RLENGTH - 3), n, "/")
        what = substr($0, RLENGTH + 1)
        sub(/^(Compiling C\+\+ object|Linking target|Linking static target) /, "", what)
        if (length(what) > 50) what = "..." substr(what, length(what) - 46)
        if (tty == 1) {
          printf "\r\033[K== building: %d of %d  %s", n[1], n[2], what > "/dev/stderr"
        } else if (n[1] == n[2] || n[1] * 10 >= next_pct * n[2] || systime() - last >= 15) {
          printf "== building: %d of %d  %s\n", n[1], n[2], what > "/dev/stderr"
          while (n[1] * 10 >= next_pct * n[2]) next_pct++
          last = systime()
        }
      }
      /^ninja: no work to do/ { print "== building: up to date" > "/dev/stderr" }
      END { if (tty == 1) printf "\n" > "/dev/stderr" }'; then
    grep -E "error|FAILED" -A3 "$log" | head -n 60 >&2
    return 1
  fi
}
