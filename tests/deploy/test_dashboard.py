"""The Grafana dashboard only queries metrics the services export (no drift after a rename)."""

import glob
import json
import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class DashboardTest(unittest.TestCase):
    def test_every_queried_metric_is_exported(self):
        with open(os.path.join(ROOT, "docs", "grafana-dashboard.json")) as handle:
            dashboard = json.load(handle)
        sources = ""
        # The Kafka client metrics (Mia-Platform's dashboard names) live in bss-kafka.
        paths = glob.glob(os.path.join(ROOT, "ingestion-*", "src", "*.rs"))
        paths += glob.glob(os.path.join(ROOT, "crates", "bss-kafka", "src", "*.rs"))
        # bss_build_info and the process metrics are registered by bss-telemetry.
        paths += glob.glob(os.path.join(ROOT, "crates", "bss-telemetry", "src", "*.rs"))
        for path in paths:
            with open(path) as handle:
                sources += handle.read()
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried.update(re.findall(r"\b((?:bss|fd_hd|kafka|process)_[a-z_]+)", target["expr"]))
        self.assertGreater(len(queried), 10)
        for metric in sorted(queried):
            if metric.startswith("process_"):
                # The prometheus crate's process collector exports these (resident memory, CPU, fds).
                self.assertIn("ProcessCollector::for_self()", sources, metric)
                continue
            # Histograms are queried through their _bucket series.
            base = re.sub(r"_bucket$", "", metric)
            self.assertIn(f'"{base}"', sources, f"{metric} is not exported by any service")


if __name__ == "__main__":
    unittest.main()
