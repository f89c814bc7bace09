#!/bin/sh
# Instructions per operation, counted with callgrind, for the downstream
# crate (this directory) and for the matching `spindle-bench switch --row`.
# Each command runs at two sizes, so that start-up cancels out:
# (Ir at 2N - Ir at N) / N. The count covers the whole process, libc
# included. Run from the repository root, after
# `cargo build --release -p spindle-bench`:
#
#     docs/tools/downstream/count.sh [N]      (N defaults to 200000)
set -eu
n=${1:-200000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release -q --manifest-path docs/tools/downstream/Cargo.toml
probe=docs/tools/downstream/target/release/downstream
bench=target/release/spindle-bench

ir() { # ir SIZE: total instructions of $cmd with N = SIZE
    c=$(echo "$cmd" | sed "s/@N@/$1/")
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$dir/out" $c >/dev/null 2>&1
    sed -n 's/^summary: //p' "$dir/out"
}
per_op() { # per_op LABEL COMMAND (with @N@ for the size)
    cmd=$2
    a=$(ir "$n")
    b=$(ir "$((2 * n))")
    echo "$1 $(((b - a) / n)) instructions per op"
}
per_op "downstream pingpong:           " "$probe pingpong @N@"
per_op "spindle-bench chan 1 worker:   " "$bench switch --row chan_pingpong_1worker --repeat 1 --n @N@"
per_op "downstream yield:              " "$probe yield @N@"
per_op "spindle-bench yield:           " "$bench switch --row yield_pingpong --repeat 1 --n @N@"
per_op "downstream select:             " "$probe select @N@"
per_op "spindle-bench select, 1 worker:" "$bench switch --row select_pingpong_1worker --repeat 1 --n @N@"
per_op "downstream spawn+join:         " "$probe spawnjoin @N@"
