#!/usr/bin/env bash
# Installs the SQS and S3 emulators the cloud tests prefer, into a cache outside the repository
# (default ~/.cache/rtdp/emulators, or $RTDP_EMULATOR_CACHE). Idempotent: an emulator already in
# the cache is not touched. Needs only the package registries:
#   ElasticMQ  Maven Central, as a classpath built by Maven (java 17+ runs it)    ~15 s
#   MinIO      the Go module proxy, `go install` (a long build: ~6 min cold)
# A missing toolchain is reported and skipped, never fatal: the tests then use moto's server for
# that service and say why in their skip reason.
set -euo pipefail

ELASTICMQ_VERSION="1.7.1"
# MinIO tags releases as RELEASE.<date>, not semver, so the module proxy only has pseudo-versions.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

here="$(cd "$(dirname "$0")" && pwd)"
cache="${RTDP_EMULATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtdp/emulators}"
mkdir -p "$cache"

elasticmq_dir="$cache/elasticmq-$ELASTICMQ_VERSION"
if [[ -f "$elasticmq_dir/lib/elasticmq-server_2.13-$ELASTICMQ_VERSION.jar" ]]; then
    echo "elasticmq $ELASTICMQ_VERSION: cached in $elasticmq_dir"
elif command -v mvn >/dev/null && command -v java >/dev/null; then
    echo "elasticmq $ELASTICMQ_VERSION: fetching from Maven Central into $elasticmq_dir"
    rm -rf "$elasticmq_dir.partial"
    mkdir -p "$elasticmq_dir.partial"
    mvn --batch-mode --quiet -Dstyle.color=never -f "$here/elasticmq-pom.xml" \
        -Delasticmq.version="$ELASTICMQ_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$elasticmq_dir.partial/lib"
    mv "$elasticmq_dir.partial" "$elasticmq_dir"
else
    echo "elasticmq: skipped, needs mvn and java on PATH" >&2
fi

minio_dir="$cache/minio-$MINIO_VERSION"
if [[ -x "$minio_dir/bin/minio" ]]; then
    echo "minio $MINIO_VERSION: cached in $minio_dir"
elif command -v go >/dev/null; then
    echo "minio $MINIO_VERSION: go install (several minutes on a cold cache)"
    rm -rf "$minio_dir.partial"
    mkdir -p "$minio_dir.partial/bin"
    start=$SECONDS
    GOBIN="$minio_dir.partial/bin" GOFLAGS=-trimpath \
        go install "github.com/minio/minio@$MINIO_VERSION"
    mv "$minio_dir.partial" "$minio_dir"
    echo "minio: built in $((SECONDS - start)) s"
else
    echo "minio: skipped, needs go on PATH" >&2
fi
