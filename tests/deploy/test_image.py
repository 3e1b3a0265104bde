"""The shipped binaries and images: release binaries carry no symbols or debug info, the Dockerfile
passes hadolint, and an image built offline from `scratch` (deploy/image/build-offline.sh, buildah)
runs each binary's --version and --check-config as user 65532 with nothing but the binary, its
shared libraries and the CA certificates. Image sizes are printed (recorded in docs/deployment.md)."""

import os
import shutil
import subprocess
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RELEASE = os.path.join(TARGET, "release")
TOOLS = os.environ.get("BSS_DEPLOY_TOOLS", os.path.join(ROOT, "target", "stack", "deploy-tools"))
BUILDAH_ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
BINARIES = ("ingestion-storer", "ingestion-reloader", "bss")


def workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as handle:
        for line in handle:
            if line.startswith("version = "):
                return line.split('"')[1]
    raise AssertionError("no workspace version")


def section_names(path):
    """Section names of a 64-bit little-endian ELF file."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not a 64-bit LE ELF"
    number = lambda at, size: int.from_bytes(data[at:at + size], "little")  # noqa: E731
    offset, entry_size, count, names_index = number(0x28, 8), number(0x3A, 2), number(0x3C, 2), number(0x3E, 2)
    names_at = number(offset + names_index * entry_size + 0x18, 8)
    names = []
    for index in range(count):
        start = names_at + number(offset + index * entry_size, 4)
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


def release_binaries():
    missing = [b for b in BINARIES if not os.path.exists(os.path.join(RELEASE, b))]
    if missing:
        raise unittest.SkipTest(f"release binaries not built: {missing} (tests/run.sh builds them)")


def buildah(*args, check=True):
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, env=BUILDAH_ENV)
    if check and done.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)}: {done.stderr}")
    return done


class ImageTest(unittest.TestCase):
    def test_release_binaries_carry_no_symbols_or_debug_info(self):
        release_binaries()
        for binary in BINARIES:
            path = os.path.join(RELEASE, binary)
            sections = section_names(path)
            self.assertIn(".text", sections, binary)
            leftovers = [s for s in sections if s == ".symtab" or s.startswith(".debug")]
            self.assertEqual(leftovers, [], f"{binary} is not stripped")
            print(f"{binary}: {os.path.getsize(path) / 2**20:.1f} MiB")

    def test_the_dockerfile_passes_hadolint(self):
        hadolint = os.path.join(TOOLS, "bin", "hadolint")
        if not os.path.exists(hadolint):
            self.skipTest(f"{hadolint} is not installed (tests/stack/up.sh installs it)")
        done = subprocess.run([hadolint, os.path.join(ROOT, "Dockerfile")], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_images_built_offline_run_the_binaries_as_a_non_root_user(self):
        release_binaries()
        if shutil.which("buildah") is None:
            self.skipTest("buildah is not installed (tests/stack/up.sh installs it with apt-get)")
        version = workspace_version()
        config = os.path.join(ROOT, "deploy", "compose", "application.yaml")
        valid_env = ["KAFKA_BROKERS=kafka:9092", "KAFKA_GROUP_ID=g", "BSS_EVENTS_TOPIC=bss-events",
                     "BUCKET_TYPE=s3", "BUCKET_NAME=archive", "RELOADER_AUTH=none"]
        for image_name, binaries in (("ingestion-storer", ("ingestion-storer", "bss")),
                                     ("ingestion-reloader", ("ingestion-reloader",))):
            built = subprocess.run([os.path.join(ROOT, "deploy", "image", "build-offline.sh"), image_name],
                                   capture_output=True, text=True, env=BUILDAH_ENV)
            self.assertEqual(built.returncode, 0, built.stderr)
            image = built.stdout.strip()
            self.assertEqual(image, f"localhost/bss-rs/{image_name}:{version}")
            inspect = buildah("inspect", "--type", "image", "--format",
                              "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}", image).stdout.split()
            self.assertEqual(inspect[0], "65532:65532")
            size = buildah("images", "--format", "{{.Size}}", image).stdout.strip()
            print(f"{image}: {size}")
            container = buildah("from", "--quiet", image).stdout.strip()
            try:
                buildah("copy", "--quiet", container, config, "/app/config/application.yaml")
                # Nothing but the image's files: no shell to run, so each binary must start on its own.
                for binary in binaries:
                    run = ["run", "--user", "65532:65532"]
                    for variable in valid_env:
                        run += ["--env", variable]
                    version_out = buildah(*run, container, "--", f"/app/{binary}", "--version").stdout
                    self.assertTrue(version_out.startswith(f"{binary} {version} (rev "), version_out)
                    if binary == "bss":
                        continue
                    checked = buildah(*run, container, "--", f"/app/{binary}", "--check-config",
                                      "--config", "/app/config/application.yaml", check=False)
                    self.assertEqual(checked.returncode, 0, f"{binary}: {checked.stdout}{checked.stderr}")
                    self.assertIn("configuration is valid", checked.stdout)
                    # A bad setting is refused inside the image too, naming it.
                    refused = buildah(*run, "--env", "BUCKET_TYPE=azure", container, "--", f"/app/{binary}",
                                      "--check-config", "--config", "/app/config/application.yaml", check=False)
                    self.assertEqual(refused.returncode, 2, refused.stdout)
                    self.assertIn("BUCKET_TYPE", refused.stderr)
            finally:
                buildah("rm", container, check=False)
                # Each run builds the image again: keep buildah's storage from growing.
                buildah("rmi", image, check=False)


if __name__ == "__main__":
    unittest.main()
