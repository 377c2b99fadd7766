#!/usr/bin/env bash
# What goes into the image or runs its test, beyond the code `make test` covers: every tracked file
# under deploy/ but its docs, .dockerignore, the Makefile (image and image-test) and tests/test_image.py.
# With --paths, the git pathspec of them (.ci/run diffs it); without, one SHA-256 over their paths and
# contents as they are in the work tree, which a passing `make image-test` writes to .ci/image-tested.
set -euo pipefail
cd "$(dirname "$0")/../.."
paths=(deploy .dockerignore Makefile tests/test_image.py ':(exclude)deploy/*.md')
if [ "${1:-}" = --paths ]; then printf '%s\n' "${paths[@]}"; exit 0; fi
git ls-files -z -- "${paths[@]}" | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
