"""Release hygiene: one version everywhere (the workspace, every crate, the chart's appVersion, the
newest CHANGELOG entry), a LICENSE with the Apache-2.0 text the crates declare, and a rust-version."""

import glob
import os
import re
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(*path):
    with open(os.path.join(ROOT, *path)) as handle:
        return handle.read()


class ReleaseTest(unittest.TestCase):
    def setUp(self):
        workspace = read("Cargo.toml")
        self.version = re.search(r'^\[workspace\.package\]\n(?:.*\n)*?version = "([^"]+)"', workspace, re.M).group(1)
        self.workspace = workspace

    def test_every_crate_takes_the_workspace_version_and_license(self):
        manifests = glob.glob(os.path.join(ROOT, "crates", "*", "Cargo.toml")) + [
            os.path.join(ROOT, p, "Cargo.toml") for p in ("ingestion-storer", "ingestion-reloader", "tests/testkit")]
        self.assertGreaterEqual(len(manifests), 12)
        for manifest in manifests:
            with open(manifest) as handle:
                text = handle.read()
            for field in ("version", "license", "rust-version", "edition"):
                self.assertIn(f"\n{field}.workspace = true\n", text, f"{manifest}: {field}")

    def test_the_chart_and_the_changelog_name_the_same_release(self):
        chart = yaml.safe_load(read("deploy", "helm", "bucket-storage-support", "Chart.yaml"))
        self.assertEqual(chart["appVersion"], self.version)
        released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", read("CHANGELOG.md"), re.M)
        self.assertEqual(released[0], self.version, "the newest CHANGELOG entry is not this version")

    def test_the_license_is_the_apache_2_text_and_a_rust_version_is_declared(self):
        self.assertIn('license = "Apache-2.0"', self.workspace)
        license_text = read("LICENSE")
        self.assertIn("Apache License\n                           Version 2.0, January 2004", license_text)
        self.assertIn("END OF TERMS AND CONDITIONS", license_text)
        self.assertRegex(self.workspace, r'\nrust-version = "1\.\d+"\n')


if __name__ == "__main__":
    unittest.main()
