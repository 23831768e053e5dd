#!/bin/bash -eu
# ClusterFuzzLite build: the same as OSS-Fuzz's (targets, seed corpus zips, options).
exec bash -eu "$SRC/wbfuzz/oss-fuzz/build.sh" "$@"
