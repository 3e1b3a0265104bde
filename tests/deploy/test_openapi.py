"""docs/openapi.json (generated from the reloader's route declarations; a Rust test keeps it current)
is valid OpenAPI 3.1 and declares the error answers every protected route can give."""

import json
import os
import unittest

from openapi_spec_validator import validate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class OpenApiTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "docs", "openapi.json")) as handle:
            self.document = json.load(handle)

    def test_valid_openapi_3_1(self):
        self.assertTrue(self.document["openapi"].startswith("3.1"))
        validate(self.document)

    def test_every_protected_operation_declares_its_errors(self):
        operations = 0
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                operations += 1
                statuses = set(operation["responses"])
                self.assertIn("500", statuses, f"{method} {path}")
                if operation.get("security"):
                    for status in ("401", "403", "503"):
                        self.assertIn(status, statuses, f"{method} {path}")
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path":
                        self.assertIn("{" + parameter["name"] + "}", path, f"{method} {path}")
        self.assertGreater(operations, 10)


if __name__ == "__main__":
    unittest.main()
