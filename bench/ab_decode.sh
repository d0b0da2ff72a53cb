#!/usr/bin/env bash
# Decode speed of two revisions side by side: builds `layerbus` at OLD and NEW (git worktrees
# under build/ab/), then runs `layerbus run --json` with each in turn for ROUNDS rounds, the order
# alternating every round, and prints each round's tokens/s, the geometric mean of NEW / OLD and
# in how many rounds NEW was faster.
#
# Why this shape: on a shared machine the speed of one process swings by 10% and more within
# minutes, so two builds timed minutes apart say little. Paired runs seconds apart, in both
# orders, leave a small difference visible.
#
# usage: bench/ab_decode.sh OLD NEW [MODEL] [ROUNDS] [TOKENS] [THREADS]
#   OLD, NEW  git revisions (anything `git worktree add` takes; NEW may be "." for the checkout)
#   MODEL     a GGUF file (default: the bench's synthetic 1.1B Q4_0, written by bench_engine)
#   ROUNDS    pairs of runs (default 6); TOKENS generated per run (default 300); THREADS (2)
# The worktrees stay for the next comparison; after deleting build/ab, `git worktree prune`
# forgets them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
old=$1
new=$2
model=${3:-${LAYERBUS_BENCH_DIR:-$root/build/bench-models}/tinyllama-1.1b-q4_0.gguf}
rounds=${4:-6}
tokens=${5:-300}
threads=${6:-2}
[ -f "$model" ] || { echo "ab_decode: no model file $model (run build/bin/bench_engine once)" >&2; exit 1; }

# Builds `layerbus` at a revision and prints the binary's path.
build_at() {
  local rev=$1 src out
  if [ "$rev" = . ]; then
    src=$root
    out=$root/build/ab/checkout
  else
    src=$root/build/ab/src-$(git -C "$root" rev-parse --short "$rev^{commit}")
    out=$src/build
    [ -d "$src" ] || git -C "$root" worktree add --detach "$src" "$rev" >/dev/null
  fi
  cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DLAYERBUS_BUILD_BENCH=OFF >/dev/null
  cmake --build "$out" -j "$(nproc)" --target layerbus >/dev/null
  echo "$out/bin/layerbus"
}

old_bin=$(build_at "$old")
new_bin=$(build_at "$new")

# tokens/s of one run; the JSON field is on one line as "tokens_per_second":X. A failed run
# (its error on stderr) ends the comparison.
speed() {
  local json
  json=$("$1" run --model "$model" --prompt "hello world" -n "$tokens" --threads "$threads" \
    --json) || { echo "ab_decode: $1 run failed" >&2; return 1; }
  grep -o '"tokens_per_second": *[0-9.e+-]*' <<<"$json" | sed 's/.*: *//'
}

echo "decode tokens/s, $tokens tokens, $threads threads, $(basename "$model")"
printf '%-6s %10s %10s %8s\n' round "$old" "$new" ratio
for ((r = 1; r <= rounds; ++r)); do
  if ((r % 2)); then
    a=$(speed "$old_bin")
    b=$(speed "$new_bin")
  else
    b=$(speed "$new_bin")
    a=$(speed "$old_bin")
  fi
  echo "$r $a $b"
done | awk -v rounds="$rounds" '
  { ratio = $3 / $2; printf "%-6s %10.2f %10.2f %8.3f\n", $1, $2, $3, ratio
    logsum += log(ratio); wins += ratio > 1 }
  END { if (NR < rounds) { printf "ab_decode: only %d of %d rounds ran\n", NR, rounds; exit 1 }
        printf "new / old: geometric mean %.3f, faster in %d of %d rounds\n",
               exp(logsum / rounds), wins, rounds }'
