#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the whole suite in a Release build, then
# the tests that feed hostile input (corrupt GGUF files, malformed messages, bad messages to a
# running broker and stages, requests cancelled and abandoned mid-flight, a stage killed
# mid-request) again under AddressSanitizer + UndefinedBehaviorSanitizer, the broker and stage
# processes included.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

cd "$root/build"
ctest --output-on-failure -j "$(nproc)" --timeout 900

sanitized_tests=(test_gguf test_tokenizer test_wire)
sanitized_cluster_tests='^Pipeline\.(BadInputIsRejected|CancelledAndAbandoned|AStageLostMidRequest)'
cmake -S "$root" -B "$root/build-sanitize" -DCMAKE_BUILD_TYPE=Debug -DLAYERBUS_SANITIZE=ON \
  -DLAYERBUS_BUILD_BENCH=OFF >/dev/null
cmake --build "$root/build-sanitize" -j "$(nproc)" --target "${sanitized_tests[@]}" \
  test_pipeline layerbus-broker layerbus-stage layerbus
cd "$root/build-sanitize"
ctest --output-on-failure -j "$(nproc)" --timeout 900 -L "^($(IFS='|'; echo "${sanitized_tests[*]}"))$"
ctest --output-on-failure --timeout 900 -R "$sanitized_cluster_tests"
