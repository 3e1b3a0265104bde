#!/usr/bin/env bash
# Builds a service image without Docker or a registry: from `scratch` with Debian's buildah, holding
# the stripped release binary (the storer's image also `bss`), the shared libraries they link (as
# `ldd` lists them), the CA certificates and nothing else: no shell, no package manager, user
# 65532. The Dockerfile builds the same layout from distroless where Docker is available.
#   deploy/image/build-offline.sh ingestion-storer|ingestion-reloader   (prints the image name)
# Needs: buildah (apt-get install buildah) and the release binaries (cargo build --release). Uses
# buildah's vfs storage and chroot isolation, which work without overlayfs, fuse or user namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
name=${1:?usage: build-offline.sh ingestion-storer|ingestion-reloader}
case "$name" in
  ingestion-storer) binaries=(ingestion-storer bss) ;;
  ingestion-reloader) binaries=(ingestion-reloader) ;;
  *) echo "build-offline.sh: unknown image $name" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
image="localhost/bss-rs/$name:$version"
release=${CARGO_TARGET_DIR:-target}/release

container=$(buildah from scratch)
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
libraries=()
for binary in "${binaries[@]}"; do
  [ -x "$release/$binary" ] || { echo "build-offline.sh: $release/$binary is not built (cargo build --release)" >&2; exit 1; }
  buildah copy --quiet --chmod 0555 "$container" "$release/$binary" "/app/$binary" >/dev/null
  # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x…)".
  while read -r library; do libraries+=("$library"); done < <(ldd "$release/$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done
for library in $(printf '%s\n' "${libraries[@]}" | sort -u); do
  # The file itself under the name the binary asks for (a symlink would point outside the layer).
  buildah copy --quiet "$container" "$(readlink -f "$library")" "$library" >/dev/null
done
buildah copy --quiet "$container" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
buildah config --user 65532:65532 --workingdir /app --entrypoint "[\"/app/$name\"]" --cmd '' \
  --port 3000 --port 9090 \
  --label org.opencontainers.image.title="$name" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$container"
buildah commit --quiet --rm "$container" "$image" >/dev/null
trap - EXIT
echo "$image"
