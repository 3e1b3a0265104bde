"""docker-compose.yml stays consistent with the services' real settings: every environment variable of
the storer and the reloader is documented, and the configuration they get is accepted by --check-config.
(No Docker engine runs here; the stack itself is exercised where Docker is available.)"""

import os
import subprocess
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


class ComposeTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "docker-compose.yml")) as handle:
            self.compose = yaml.safe_load(handle)
        with open(os.path.join(ROOT, "docs", "configuration.md")) as handle:
            self.documented = handle.read()

    def test_the_stack_has_kafka_minio_gcs_topics_and_both_services(self):
        services = self.compose["services"]
        for name in ("kafka", "topics", "minio", "bucket", "fake-gcs", "storer", "reloader"):
            self.assertIn(name, services)
        self.assertEqual(services["storer"]["build"]["target"], "ingestion-storer")
        self.assertEqual(services["reloader"]["build"]["target"], "ingestion-reloader")

    def test_service_settings_exist_and_are_accepted(self):
        for name, binary in (("storer", "ingestion-storer"), ("reloader", "ingestion-reloader")):
            service = self.compose["services"][name]
            for variable in service["environment"]:
                self.assertIn(f"`{variable}`", self.documented, f"{name}: {variable} is not a documented setting")
            mount = service["volumes"][0].split(":")
            config = os.path.join(ROOT, mount[0])
            self.assertEqual(mount[1], service["command"][1])
            executable = os.path.join(TARGET, "debug", binary)
            if not os.path.exists(executable):
                self.skipTest(f"{executable} is not built")
            env = {k: str(v) for k, v in service["environment"].items()}
            env["PATH"] = os.environ.get("PATH", "")
            done = subprocess.run([executable, "--check-config", "--config", config], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"{name}: {done.stderr}")


if __name__ == "__main__":
    unittest.main()
