"""What a platform team checks before installing the chart: every rendered object against Kubernetes'
own OpenAPI schemas (1.29 through the newest available offline, strict), a checkov security scan with
nothing failing beyond a justified allow-list, the service account and the metrics port wired into
every workload and policy, the NOTES and the values table of the chart's README."""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from chart_values import leaves, readme_table, table
from test_chart import BASE, CHART, HELM, find, render

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.environ.get("BSS_DEPLOY_TOOLS", os.path.join(ROOT, "target", "stack", "deploy-tools"))
# Kinds outside Kubernetes' own API (no schema to validate them against).
CUSTOM_KINDS = {"ServiceMonitor"}
# checkov checks the chart does not pass, each justified in the chart's README.
ALLOWED = {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"}
DIGEST = "sha256:" + "ab" * 32

VALUE_SETS = {
    "defaults": [],
    "everything on": [
        "organizer.enabled=true", "serviceMonitor.enabled=true", "reloader.autoscaling.enabled=true",
        "reloader.autoscaling.runningJobsPerReplica=2", "reloader.ingress.enabled=true",
        "reloader.ingress.host=bss.example.com", "reloader.ingress.tlsSecret=bss-tls",
        "networkPolicy.apiFrom[0].team=fast-data", "networkPolicy.metricsFrom[0].team=monitoring",
        "serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=bss@p.iam.gserviceaccount.com",
        "reloader.workTopic=bss-work", "reloader.exactlyOnce=true", "reloader.checkpointTopic=bss-ckpt",
    ],
    "secured": [
        "kafka.sasl.enabled=true", "kafka.sasl.existingSecret=kafka-creds", "kafka.tls.enabled=true",
        "kafka.tls.caSecret=kafka-ca", "kafka.tls.clientCertSecret=kafka-client",
        "kafka.tls.clientKeyPasswordKey=password", "bucket.s3.existingSecret=s3-creds",
        "reloader.auth.apiKeysSecret=reloader-keys", "reloader.auth.jwt.hs256Secret=jwt",
        "reloader.tls.secretName=reloader-tls", "reloader.erasureHashKeySecret=erasure-key",
    ],
    "gcs, existing account, metrics on the HTTP port": [
        "bucket.type=google", "bucket.gcs.existingSecret=gcs-key", "serviceAccount.create=false",
        "serviceAccount.name=bss-existing", "metrics.port=0", "reloader.replicas=0",
        "organizer.enabled=true",
    ],
    "pinned by digest": [f"image.digests.ingestion-storer={DIGEST}", f"image.digests.ingestion-reloader={DIGEST}"],
}


def tool(name):
    path = os.path.join(TOOLS, "bin", name)
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} is not installed (tests/stack/up.sh installs it)")
    return path


def write_manifests(folder, docs, prefix):
    """One file per object, custom kinds left out; returns the paths."""
    paths = []
    for index, doc in enumerate(docs):
        if doc["kind"] in CUSTOM_KINDS:
            continue
        path = os.path.join(folder, f"{prefix}-{index:02d}-{doc['kind'].lower()}.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump(doc, handle)
        paths.append(path)
    return paths


def checkov_failures(folder, *extra):
    done = subprocess.run(
        [tool("checkov"), "-d", folder, "--framework", "kubernetes", "--skip-download", "--quiet",
         "--compact", "-o", "json", *extra],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    if not done.stdout.strip():
        raise AssertionError(f"checkov printed nothing (exit {done.returncode}): {done.stderr[-2000:]}")
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = []
    for report in reports:
        for check in report.get("results", {}).get("failed_checks", []):
            failed.append((check["check_id"], check["resource"], check.get("file_path")))
    return failed


class ChartChecksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Every value set rendered once, into a namespace of its own as an install is (checkov flags
        # "default"), for the schema check and the scan.
        cls.rendered = tempfile.TemporaryDirectory()
        cls.manifests = []
        for index, sets in enumerate(VALUE_SETS.values()):
            cls.manifests += write_manifests(cls.rendered.name, render(*sets, namespace="fast-data"), f"set{index}")

    @classmethod
    def tearDownClass(cls):
        cls.rendered.cleanup()

    def test_every_object_matches_the_kubernetes_schemas_from_1_29_to_the_newest(self):
        validate = tool("kubernetes-validate")
        schemas = glob.glob(os.path.join(TOOLS, "lib", "python3*", "site-packages", "kubernetes_validate",
                                         "kubernetes-json-schema", "v*-local-strict"))
        versions = sorted({tuple(int(p) for p in re.search(r"v(\d+)\.(\d+)\.", s).groups()) for s in schemas})
        versions = [v for v in versions if v >= (1, 29)]
        self.assertIn((1, 29), versions)
        self.assertGreaterEqual(versions[-1], (1, 37))
        for major, minor in versions:
            done = subprocess.run([validate, "--strict", "--quiet", "-k", f"{major}.{minor}.0", *self.manifests],
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"Kubernetes {major}.{minor}:\n{done.stdout}{done.stderr}")

    def test_checkov_finds_nothing_beyond_the_justified_allow_list(self):
        failed = checkov_failures(self.rendered.name)
        unexpected = [f for f in failed if f[0] not in ALLOWED]
        self.assertEqual(unexpected, [], "checkov failures outside the allow-list")
        # Each allowed check is really hit (else it should leave the list) and justified in the README.
        with open(os.path.join(CHART, "README.md")) as handle:
            readme = handle.read()
        for check in ALLOWED:
            self.assertIn(check, {f[0] for f in failed}, f"{check} passes now: remove it from the allow-list")
            self.assertIn(f"| `{check}`", readme)

    def test_images_pinned_by_digest_pass_the_digest_check(self):
        with tempfile.TemporaryDirectory() as folder:
            write_manifests(folder, render(*VALUE_SETS["pinned by digest"]), "digest")
            self.assertEqual(checkov_failures(folder, "--check", "CKV_K8S_43"), [])

    def test_every_workload_runs_as_the_chart_service_account(self):
        docs = render(*VALUE_SETS["everything on"])
        (account,) = find(docs, "ServiceAccount")
        self.assertEqual(account["metadata"]["annotations"],
                         {"iam.gke.io/gcp-service-account": "bss@p.iam.gserviceaccount.com"})
        self.assertIs(account["automountServiceAccountToken"], False)
        pods = [d["spec"]["template"]["spec"] for d in find(docs, "Deployment")]
        pods += [d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in find(docs, "CronJob")]
        self.assertEqual(len(pods), 3)
        for pod in pods:
            self.assertEqual(pod["serviceAccountName"], account["metadata"]["name"])
            self.assertIs(pod["automountServiceAccountToken"], False)
        docs = render(*VALUE_SETS["gcs, existing account, metrics on the HTTP port"])
        self.assertEqual(find(docs, "ServiceAccount"), [])
        for deployment in find(docs, "Deployment"):
            self.assertEqual(deployment["spec"]["template"]["spec"]["serviceAccountName"], "bss-existing")
        done = render("serviceAccount.create=false", expect_ok=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("serviceAccount.name is required", done.stderr)

    def test_metrics_have_their_own_port_that_the_policy_opens_alone(self):
        docs = render(*VALUE_SETS["everything on"])
        (policy,) = find(docs, "NetworkPolicy")
        rules = {json.dumps(r["from"][0].get("namespaceSelector", {})): r.get("ports") for r in policy["spec"]["ingress"]}
        self.assertEqual(rules[json.dumps({"matchLabels": {"team": "monitoring"}})], [{"port": 9090, "protocol": "TCP"}])
        self.assertEqual(rules[json.dumps({"matchLabels": {"team": "fast-data"}})], [{"port": 3000, "protocol": "TCP"}])
        for deployment in find(docs, "Deployment"):
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            self.assertIn({"name": "metrics", "containerPort": 9090}, container["ports"])
            self.assertIn({"name": "METRICS_PORT", "value": "9090"}, container["env"])
        for service in find(docs, "Service"):
            self.assertIn("metrics", [p["name"] for p in service["spec"]["ports"]])
        (monitor,) = find(docs, "ServiceMonitor")
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "metrics")
        (hpa,) = find(docs, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["metrics"][1]["pods"]["metric"]["name"], "bss_reloader_jobs_running")
        # metrics.port=0: Mia-Platform's layout, metrics on the HTTP port.
        docs = render("metrics.port=0", "serviceMonitor.enabled=true", "networkPolicy.metricsFrom[0].team=monitoring")
        for deployment in find(docs, "Deployment"):
            env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            self.assertNotIn("METRICS_PORT", [e["name"] for e in env])
        (monitor,) = find(docs, "ServiceMonitor")
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "http")
        self.assertNotEqual(render("metrics.port=3000", expect_ok=False).returncode, 0)

    def test_the_readme_values_table_is_current_and_describes_every_value(self):
        self.assertEqual(readme_table(), table(), "run: python3 tests/deploy/chart_values.py --write")
        undocumented = [key for key, _, description in leaves() if not description]
        self.assertEqual(undocumented, [], "values without a comment in values.yaml")

    def test_the_install_notes_render_and_warn_about_missing_credentials(self):
        with tempfile.TemporaryDirectory() as folder:
            chart = os.path.join(folder, "chart")
            shutil.copytree(CHART, chart)
            # Helm renders NOTES.txt only on install; render it here as a ConfigMap's value.
            notes = os.path.join(chart, "templates", "NOTES.txt")
            with open(notes) as handle:
                text = handle.read()
            os.remove(notes)
            with open(os.path.join(chart, "templates", "_notes_under_test.tpl"), "w") as handle:
                handle.write('{{- define "notes.under.test" -}}\n' + text + "{{- end -}}\n")
            with open(os.path.join(chart, "templates", "notes-under-test.yaml"), "w") as handle:
                handle.write('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-under-test}\n'
                             'data:\n  notes: {{ include "notes.under.test" . | toJson }}\n')

            def rendered(*sets):
                args = [HELM, "template", "bss", chart, "--namespace", "fast-data",
                        "--show-only", "templates/notes-under-test.yaml"]
                for item in BASE + list(sets):
                    args += ["--set", item]
                done = subprocess.run(args, capture_output=True, text=True)
                self.assertEqual(done.returncode, 0, done.stderr)
                return yaml.safe_load(done.stdout)["data"]["notes"]

            without_keys = rendered()
            self.assertIn("kubectl -n fast-data port-forward svc/bss-bucket-storage-support-reloader", without_keys)
            self.assertIn("WARNING: reloader.auth.mode is \"required\" but no API keys", without_keys)
            self.assertIn("eks.amazonaws.com/role-arn", without_keys)
            with_keys = rendered(*VALUE_SETS["secured"])
            self.assertNotIn("WARNING", with_keys)
            self.assertIn("curl https://localhost:8080/status/folders", with_keys)
            self.assertNotIn("workload identity", with_keys)


if __name__ == "__main__":
    unittest.main()
