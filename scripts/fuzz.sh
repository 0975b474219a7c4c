#!/usr/bin/env bash
# Runs one cargo-fuzz campaign and says what it found.
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_ARG...]
#
# TARGET: interleaving_fixed, interleaving_legacy, interleaving_snapshot,
#   interleaving_updates, interleaving_unmanaged_update,
# scenario_parse or step_parse. With a nightly toolchain installed, the
# campaign runs on nightly with AddressSanitizer; otherwise on stable with
# `-s none` (coverage-guided, no sanitizer). FUZZ_TOOLCHAIN=stable or
# FUZZ_TOOLCHAIN=nightly forces the choice. Installs cargo-fuzz if missing.
#
# New inputs go to a working corpus, fuzz/target/corpus/TARGET (not
# committed), seeded from the committed fuzz/corpus/TARGET. Findings go to
# fuzz/artifacts/TARGET/; at the end the script lists the new ones with the
# `gpuclaim from-fuzz` command for each. Exit status: 0 when the campaign
# found nothing, 1 when it found something, 2 on a usage or build error.
set -euo pipefail
cd "$(dirname "$0")/.."

targets="interleaving_fixed interleaving_legacy interleaving_snapshot interleaving_updates interleaving_unmanaged_update scenario_parse step_parse"
usage() {
    echo "usage: scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_ARG...]" >&2
    echo "  TARGET: ${targets// /, }" >&2
    exit 2
}
[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
case " $targets " in *" $target "*) ;; *) echo "unknown target: $target" >&2; usage ;; esac
case $seconds in '' | *[!0-9]*) echo "SECONDS must be a whole number: $seconds" >&2; usage ;; esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        toolchain=nightly
    else
        toolchain=stable
    fi
fi
if [ "$toolchain" = nightly ]; then
    sanitizer=address
else
    sanitizer=none
fi

work=fuzz/target/corpus/$target
artifacts=fuzz/artifacts/$target
mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"
dict=()
if [ -f "fuzz/dict/$target.dict" ]; then
    dict=("-dict=fuzz/dict/$target.dict")
fi

before=$(mktemp)
trap 'rm -f "$before"' EXIT
ls "$artifacts" >"$before"

echo "== $target for ${seconds}s on $toolchain, sanitizer $sanitizer"
cargo "+$toolchain" fuzz build -s "$sanitizer" "$target" || exit 2
log=fuzz/target/$target.log
start=$(date +%s.%N)
set +e
cargo "+$toolchain" fuzz run -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" "$@" 2>&1 | tee "$log"
set -e
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo
echo "== $target: ${elapsed}s, ${execs:-?} executions$(
    [ -n "$execs" ] && awk -v n="$execs" -v t="$elapsed" 'BEGIN { printf ", %.0f per second", n / t }')"

found=$(ls "$artifacts" | grep -vxFf "$before" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
if [ -z "$found" ]; then
    echo "== nothing found; corpus now $(ls "$work" | wc -l) inputs in $work"
    exit 0
fi
echo "== findings in $artifacts/:"
for f in $found; do
    echo "   $artifacts/$f"
    echo "     cargo run --release -- from-fuzz $target $artifacts/$f"
done
echo "   (gpuclaim from-fuzz writes the shrunk scenario to reports/fuzz/ by default;"
echo "    keep the input as a regression: cp $artifacts/FILE fuzz/regressions/$target/)"
exit 1
