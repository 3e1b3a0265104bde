"""docker-compose.yml stays valid and safe: it matches the compose specification's JSON schema, every
image is pinned to a version and none comes from a repository known to be gone, every published port
listens on 127.0.0.1 only, the reloader requires an API key, and every setting of the storer and the
reloader is documented and accepted by their --check-config.
(No Docker engine runs here; the stack itself is exercised where Docker is available.)"""

import json
import os
import subprocess
import unittest

import jsonschema
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TOOLS = os.environ.get("BSS_DEPLOY_TOOLS", os.path.join(ROOT, "target", "stack", "deploy-tools"))
# Repositories removed from Docker Hub (a pull fails): minio/minio and minio/mc since 2026, bitnami's
# free images since 2025.
REMOVED = ("minio/minio", "minio/mc", "bitnami/")


class ComposeTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "docker-compose.yml")) as handle:
            self.text = handle.read()
        self.compose = yaml.safe_load(self.text)
        with open(os.path.join(ROOT, "docs", "configuration.md")) as handle:
            self.documented = handle.read()

    def test_the_file_matches_the_compose_specification(self):
        schema_path = os.path.join(TOOLS, "compose_spec.json")
        if not os.path.exists(schema_path):
            self.skipTest(f"{schema_path} is not installed (tests/stack/up.sh installs it)")
        with open(schema_path) as handle:
            schema = json.load(handle)
        validator = jsonschema.Draft201909Validator(schema)
        validator.validate(self.compose)
        # The validator really rejects what the specification forbids.
        broken = {"services": {"kafka": {"image": "apache/kafka:3.9.1", "ports": {"not": "a list"}}}}
        with self.assertRaises(jsonschema.ValidationError):
            validator.validate(broken)

    def test_every_image_is_pinned_and_still_published(self):
        services = self.compose["services"]
        for name, service in services.items():
            if "build" in service:
                continue
            image = service["image"]
            repository, _, tag = image.rpartition(":")
            self.assertTrue(repository and "/" not in tag, f"{name}: {image} has no version tag")
            self.assertNotIn(tag, ("latest", "stable", "edge", "main"), f"{name}: {image} is not pinned")
            self.assertTrue(any(c.isdigit() for c in tag), f"{name}: {image} is not a version")
            self.assertFalse(image.startswith(REMOVED), f"{name}: {image} is no longer published")

    def test_ports_listen_on_localhost_only(self):
        for name, service in self.compose["services"].items():
            for port in service.get("ports", []):
                self.assertTrue(str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface")

    def test_the_stack_has_kafka_a_bucket_gcs_topics_and_both_services(self):
        services = self.compose["services"]
        for name in ("kafka", "topics", "s3", "fake-gcs", "storer", "reloader"):
            self.assertIn(name, services)
        self.assertEqual(services["storer"]["build"]["target"], "ingestion-storer")
        self.assertEqual(services["reloader"]["build"]["target"], "ingestion-reloader")
        self.assertIn("-bucket=bss-archive", services["s3"]["command"])
        self.assertEqual(services["storer"]["environment"]["BUCKET_NAME"], "bss-archive")

    def test_the_reloader_requires_an_api_key(self):
        reloader = self.compose["services"]["reloader"]
        env = reloader["environment"]
        self.assertEqual(env["RELOADER_AUTH"], "required")
        mounts = {v.split(":")[1]: v.split(":")[0] for v in reloader["volumes"]}
        with open(os.path.join(ROOT, mounts[env["RELOADER_API_KEYS_FILE"]])) as handle:
            keys = [line.split(":") for line in handle.read().splitlines() if line.strip()]
        self.assertEqual(len(keys), 1)
        self.assertIn(keys[0][2], self.text, "the file's header shows how to call with the key")

    def test_service_settings_exist_and_are_accepted(self):
        for name, binary in (("storer", "ingestion-storer"), ("reloader", "ingestion-reloader")):
            service = self.compose["services"][name]
            for variable in service["environment"]:
                self.assertIn(f"`{variable}`", self.documented, f"{name}: {variable} is not a documented setting")
            mounts = {v.split(":")[1]: os.path.join(ROOT, v.split(":")[0]) for v in service["volumes"]}
            config = mounts[service["command"][1]]
            executable = os.path.join(TARGET, "debug", binary)
            if not os.path.exists(executable):
                self.skipTest(f"{executable} is not built")
            env = {k: str(v) for k, v in service["environment"].items()}
            # Files mounted into the container are read from the repository.
            for key, value in env.items():
                if value in mounts:
                    env[key] = mounts[value]
            env["PATH"] = os.environ.get("PATH", "")
            done = subprocess.run([executable, "--check-config", "--config", config], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"{name}: {done.stderr}")


if __name__ == "__main__":
    unittest.main()
