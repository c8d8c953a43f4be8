#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The install test (ctest -L install): installs an already built tree into a
# scratch prefix, checks that the prefix holds every public header and no
# internal one, and that none of them pulls in yaml-cpp or spdlog, then
# configures, builds and runs the consumer project against that prefix alone.
#
#   run.sh SOURCE_DIR BUILD_DIR SCRATCH_DIR [extra cmake args for the consumer...]
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 SOURCE_DIR BUILD_DIR SCRATCH_DIR [cmake args...]" >&2
    exit 2
fi
source_dir="$(cd "$1" && pwd)"
build_dir="$(cd "$2" && pwd)"
mkdir -p "$3"
scratch="$(cd "$3" && pwd)"
shift 3

prefix="$scratch/prefix"
consumer_build="$scratch/consumer-build"
examples_build="$scratch/examples-build"
# A stale prefix could hide a header the install no longer ships.
rm -rf "$prefix" "$consumer_build" "$examples_build"

echo "==> cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$scratch/install.log"

echo "==> checking the installed headers"
status=0
while IFS= read -r header; do
    relative="${header#*/include/}"
    if [ ! -f "$prefix/include/$relative" ]; then
        echo "not installed: $relative" >&2
        status=1
    fi
done < <(find "$source_dir" -path "$source_dir/build*" -prune -o \
              -path '*/include/troupe/*.hpp' -type f -print | sort)
# Internal headers (transport/internal/) serve the build tree only.
while IFS= read -r header; do
    relative="${header#"$source_dir"/}"
    relative="${relative#*/internal/}"
    if [ -f "$prefix/include/$relative" ]; then
        echo "installed, but internal: $relative" >&2
        status=1
    fi
done < <(find "$source_dir" -path "$source_dir/build*" -prune -o \
              -path '*/internal/troupe/*.hpp' -type f -print | sort)
# STYLE §3: embedders compile without yaml-cpp and spdlog headers.
if grep -rnE '#[[:space:]]*include[[:space:]]*[<"](yaml-cpp|spdlog)/' "$prefix/include/troupe"; then
    echo "public headers above include yaml-cpp or spdlog" >&2
    status=1
fi
[ -f "$prefix/include/troupe/troupe.hpp" ] || { echo "troupe/troupe.hpp missing" >&2; status=1; }
[ "$status" -eq 0 ] || exit 1

echo "==> configuring the consumer against $prefix"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Only the prefix: no package registry, no system-wide troupe by accident.
cmake -S "$source_dir/tests/install/consumer" -B "$consumer_build" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
      -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF -DCONSUMER_CHECK_HEADERS=ON \
      "${launcher[@]}" "$@"
found="$(sed -n 's/^troupe_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")"
case "$found" in
    "$prefix"/*) echo "troupe_DIR=$found" ;;
    *) echo "find_package(troupe) found '$found', not the scratch prefix" >&2; exit 1 ;;
esac

echo "==> building the consumer"
cmake --build "$consumer_build"

echo "==> running the consumer"
output="$("$consumer_build/embedded")" || { echo "$output"; echo "the consumer failed" >&2; exit 1; }
echo "$output"
if ! grep -qx 'embedded ok' <<<"$output"; then
    echo "the consumer did not print 'embedded ok'" >&2
    exit 1
fi

echo "==> building the examples (examples/) against $prefix"
cmake -S "$source_dir/examples" -B "$examples_build" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
      -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF "${launcher[@]}" "$@"
cmake --build "$examples_build"
