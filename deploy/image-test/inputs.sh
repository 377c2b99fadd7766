#!/usr/bin/env bash
# One SHA-256 over what goes into the image or runs its test: every tracked file under deploy/ but
# its docs, and .dockerignore, by path and content as they are in the work tree. `make image-test`
# writes it to .ci/image-tested when it passes; CI runs the image test when it differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
git ls-files -z -- deploy .dockerignore ':(exclude)deploy/*.md' | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
