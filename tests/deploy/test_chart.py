"""Renders the Helm chart with a real Helm 3 binary (installed by tests/stack/up.sh) for several value
sets and checks the manifests; the rendered configuration is fed to the services' --check-config."""

import os
import re
import subprocess
import tempfile
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "deploy", "helm", "bucket-storage-support")
HELM = os.environ.get("BSS_HELM", os.path.join(ROOT, "target", "stack", "venv", "bin", "helm"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BASE = [
    "kafka.brokers=kafka-0:9092\\,kafka-1:9092",
    "bucket.name=archive",
    "topics.mapping[0].ingestion=orders.ingestion",
    "topics.mapping[0].bucketFolder=orders",
    "topics.mapping[0].postIngestion[0]=orders.post",
    "topics.mapping[0].reingestion=orders.reingestion",
]


def render(*sets, expect_ok=True, namespace=None):
    args = [HELM, "template", "bss", CHART] + (["--namespace", namespace] if namespace else [])
    for item in BASE + list(sets):
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True)
    if not expect_ok:
        return done
    if done.returncode != 0:
        raise AssertionError(f"helm template failed: {done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def find(docs, kind, suffix=""):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(deployment):
    return {e["name"]: e for e in container(deployment)["env"]}


def write_config(docs, folder):
    """Writes the rendered application.yaml into `folder`; returns its path."""
    (config,) = find(docs, "ConfigMap")
    path = os.path.join(folder, "application.yaml")
    with open(path, "w") as handle:
        handle.write(config["data"]["application.yaml"])
    return path


def documented_env(test, entries):
    """The environment of a rendered container, each variable checked against docs/configuration.md."""
    with open(os.path.join(ROOT, "docs", "configuration.md")) as doc:
        documented = doc.read()
    env = {"PATH": os.environ.get("PATH", "")}
    for entry in entries:
        test.assertIn(f"`{entry['name']}`", documented, f"{entry['name']} is not in docs/configuration.md")
        env[entry["name"]] = entry.get("value", "from-a-secret")
    return env


class ChartTest(unittest.TestCase):
    def test_both_services_are_hardened_and_probed(self):
        docs = render()
        for suffix in ("-storer", "-reloader"):
            (deployment,) = find(docs, "Deployment", suffix)
            pod = deployment["spec"]["template"]["spec"]
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            security = container(deployment)["securityContext"]
            self.assertTrue(security["readOnlyRootFilesystem"])
            self.assertFalse(security["allowPrivilegeEscalation"])
            self.assertEqual(security["capabilities"]["drop"], ["ALL"])
            probes = {p: container(deployment)[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
            self.assertEqual(probes, {"livenessProbe": "/-/health/live", "readinessProbe": "/-/health/ready", "startupProbe": "/-/health/started"})
            self.assertIn("checksum/config", deployment["spec"]["template"]["metadata"]["annotations"])
            self.assertEqual(len(find(docs, "PodDisruptionBudget", suffix)), 1)

    def test_the_storer_grace_period_exceeds_its_drain_deadline(self):
        (storer,) = find(render("storer.shutdownTimeoutSeconds=50"), "Deployment", "-storer")
        self.assertEqual(env_of(storer)["BSS_SHUTDOWN_TIMEOUT"]["value"], "50s")
        self.assertGreater(storer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 50)

    def test_a_configuration_change_rolls_the_pods(self):
        def checksum(*sets):
            (storer,) = find(render(*sets), "Deployment", "-storer")
            return storer["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        self.assertEqual(checksum(), checksum())
        self.assertNotEqual(checksum(), checksum("topics.mapping[1].ingestion=customers.ingestion"))

    def test_the_reloader_scales_to_zero_or_autoscales(self):
        (reloader,) = find(render("reloader.replicas=0"), "Deployment", "-reloader")
        self.assertEqual(reloader["spec"]["replicas"], 0)
        docs = render("reloader.autoscaling.enabled=true", "reloader.autoscaling.maxReplicas=6")
        (reloader,) = find(docs, "Deployment", "-reloader")
        self.assertNotIn("replicas", reloader["spec"])
        (hpa,) = find(docs, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["maxReplicas"], 6)
        # Scale-down is slow and one replica at a time: each removal hands jobs over.
        scale_down = hpa["spec"]["behavior"]["scaleDown"]
        self.assertEqual(scale_down["stabilizationWindowSeconds"], 600)
        self.assertEqual(scale_down["policies"], [{"type": "Pods", "value": 1, "periodSeconds": 120}])

    def test_each_service_can_be_switched_off(self):
        docs = render("storer.enabled=false")
        self.assertEqual(find(docs, "Deployment", "-storer"), [])
        self.assertEqual(len(find(docs, "Deployment", "-reloader")), 1)
        docs = render("reloader.enabled=false")
        self.assertEqual(find(docs, "Deployment", "-reloader"), [])

    def test_credentials_come_from_existing_secrets_only(self):
        docs = render(
            "kafka.sasl.enabled=true", "kafka.sasl.existingSecret=kafka-creds", "kafka.tls.enabled=true",
            "kafka.tls.caSecret=kafka-ca", "bucket.s3.existingSecret=s3-creds",
            "reloader.auth.apiKeysSecret=reloader-keys", "reloader.auth.jwt.jwksUrl=https://idp.example/jwks",
            "reloader.erasureHashKeySecret=erasure-key",
        )
        (storer,) = find(docs, "Deployment", "-storer")
        env = env_of(storer)
        self.assertEqual(env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"], "kafka-creds")
        self.assertEqual(env["S3_KEY"]["valueFrom"]["secretKeyRef"]["name"], "s3-creds")
        (config,) = find(docs, "ConfigMap")
        application = yaml.safe_load(config["data"]["application.yaml"])
        self.assertEqual(application["kafka"]["security.protocol"], "SASL_SSL")
        self.assertEqual(application["kafka"]["ssl.ca.location"], "/app/kafka-ca/ca.crt")
        (reloader,) = find(docs, "Deployment", "-reloader")
        self.assertEqual(env_of(reloader)["RELOADER_API_KEYS_FILE"]["value"], "/app/secrets/api-keys/api-keys")
        self.assertEqual(env_of(reloader)["RELOADER_JWKS_URL"]["value"], "https://idp.example/jwks")
        self.assertEqual(
            env_of(reloader)["RELOADER_ERASURE_HASH_KEY_FILE"]["value"], "/app/secrets/erasure-hash-key/key"
        )
        volumes = {v["name"]: v for v in reloader["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["api-keys"]["secret"]["secretName"], "reloader-keys")
        for doc in docs:
            self.assertNotEqual(doc["kind"], "Secret", "the chart never creates secrets")

        docs = render("bucket.type=google", "bucket.gcs.existingSecret=gcs-key")
        (storer,) = find(docs, "Deployment", "-storer")
        self.assertEqual(env_of(storer)["GOOGLE_APPLICATION_CREDENTIALS"]["value"], "/app/keys/credentials.json")
        mounts = {m["name"]: m["mountPath"] for m in container(storer)["volumeMounts"]}
        self.assertEqual(mounts["gcs-key"], "/app/keys")

    def test_reloader_https_and_role_mapping(self):
        docs = render(
            "reloader.tls.secretName=reloader-tls", "reloader.auth.jwt.jwksUrl=https://idp.example/jwks",
            "reloader.auth.jwt.rolesClaim=realm_access.roles",
            "reloader.auth.jwt.roleScopes=bss-ci=reingest:ci.*->ci.*",
        )
        (reloader,) = find(docs, "Deployment", "-reloader")
        env = env_of(reloader)
        self.assertEqual(env["RELOADER_TLS_CERT_FILE"]["value"], "/app/secrets/tls/tls.crt")
        self.assertEqual(env["RELOADER_TLS_KEY_FILE"]["value"], "/app/secrets/tls/tls.key")
        self.assertEqual(env["RELOADER_JWT_ROLES_CLAIM"]["value"], "realm_access.roles")
        self.assertEqual(env["RELOADER_JWT_ROLE_SCOPES"]["value"], "bss-ci=reingest:ci.*->ci.*")
        documented_env(self, container(reloader)["env"])
        volumes = {v["name"]: v for v in reloader["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["tls"]["secret"]["secretName"], "reloader-tls")
        mounts = {m["name"]: m["mountPath"] for m in container(reloader)["volumeMounts"]}
        self.assertEqual(mounts["tls"], "/app/secrets/tls")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertEqual(container(reloader)[probe]["httpGet"]["scheme"], "HTTPS", probe)
        (storer,) = find(docs, "Deployment", "-storer")
        self.assertEqual(container(storer)["readinessProbe"]["httpGet"]["scheme"], "HTTP")
        plain = find(render(), "Deployment", "-reloader")[0]
        self.assertNotIn("RELOADER_TLS_CERT_FILE", env_of(plain))
        self.assertEqual(container(plain)["readinessProbe"]["httpGet"]["scheme"], "HTTP")

    def test_optional_resources(self):
        docs = render(
            "serviceMonitor.enabled=true", "networkPolicy.enabled=true", "reloader.ingress.enabled=true",
            "reloader.ingress.host=bss.example.com", "networkPolicy.apiFrom[0].team=fast-data",
        )
        self.assertEqual(len(find(docs, "ServiceMonitor")), 1)
        (policy,) = find(docs, "NetworkPolicy")
        self.assertEqual(policy["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"], {"team": "fast-data"})
        (ingress,) = find(docs, "Ingress")
        self.assertEqual(ingress["spec"]["rules"][0]["host"], "bss.example.com")
        self.assertEqual(find(render(), "ServiceMonitor"), [])

    def test_the_optional_organizer_runs_bss_with_the_storer_configuration(self):
        self.assertEqual(find(render(), "CronJob"), [])
        docs = render("organizer.enabled=true", "organizer.schedule=*/30 * * * *", "organizer.memory=1GiB")
        (cronjob,) = find(docs, "CronJob", "-organizer")
        self.assertEqual(cronjob["spec"]["concurrencyPolicy"], "Forbid")
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        (job,) = pod["containers"]
        self.assertTrue(job["securityContext"]["readOnlyRootFilesystem"])
        self.assertEqual(job["command"], ["/app/bss"])
        self.assertIn("/work", [m["mountPath"] for m in job["volumeMounts"]])
        # The rendered configuration, environment and arguments are accepted by bss itself: a dry run
        # against an empty local-folder bucket.
        executable = os.path.join(TARGET, "debug", "bss")
        if not os.path.exists(executable):
            self.skipTest(f"{executable} is not built")
        with tempfile.TemporaryDirectory() as folder:
            path = write_config(docs, folder)
            env = documented_env(self, job["env"])
            env.update({"BUCKET_TYPE": "local", "BUCKET_NAME": folder})
            args = [a if a != "/app/config/application.yaml" else path for a in job["args"]]
            args = [a if a != "/work" else folder for a in args]
            done = subprocess.run([executable, *args, "--dry-run"], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("orders: nothing archived", done.stdout)
            # The Parquet organizer, with its own default prefix.
            docs = render("organizer.enabled=true", "organizer.format=parquet")
            (cronjob,) = find(docs, "CronJob", "-organizer")
            (job,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            self.assertNotIn("--prefix", job["args"])
            args = [a if a != "/app/config/application.yaml" else path for a in job["args"]]
            args = [a if a != "/work" else folder for a in args]
            done = subprocess.run([executable, *args, "--dry-run"], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("Converting orders to Parquet under .bss-parquet/: 0 new archive objects", done.stdout)

    def test_bad_values_are_rejected_with_the_field_named(self):
        cases = [
            (["bucket.type=azure"], "bucket.type"),
            (["storer.compression=lz4"], "storer.compression"),
            (["storer.replicas=-1"], "storer.replicas"),
            (["storer.memoryBudget=lots"], "storer.memoryBudget"),
            (["kafka.brokers="], "kafka.brokers"),
            (["reloader.auth.mode=open"], "reloader.auth.mode"),
            (["storer.dequeueStrategy=oldest"], "storer.dequeueStrategy"),
            (["topics.mapping[0].colour=red"], "colour"),
            (["organizer.prefix=/abs/"], "organizer.prefix"),
            (["organizer.workDirSizeLimit=lots"], "organizer.workDirSizeLimit"),
            (["organizer.format=csv"], "organizer.format"),
        ]
        for sets, field in cases:
            done = render(*sets, expect_ok=False)
            self.assertNotEqual(done.returncode, 0, sets)
            self.assertIn(field, done.stderr, sets)

    def check_config(self, docs, secrets=None, mounts=None):
        """Feeds the rendered application.yaml and environment to both services' --check-config.
        `mounts` maps a mount path of the pods to a local folder (the Secret's files); `secrets`
        gives the values of variables read from Secrets. Returns {binary: completed process}."""
        results = {}
        with tempfile.TemporaryDirectory() as folder:
            path = write_config(docs, folder)
            with open(path) as handle:
                text = handle.read()
            for mount, local in (mounts or {}).items():
                text = text.replace(mount, local)
            with open(path, "w") as handle:
                handle.write(text)
            for suffix, binary in (("-storer", "ingestion-storer"), ("-reloader", "ingestion-reloader")):
                (deployment,) = find(docs, "Deployment", suffix)
                env = documented_env(self, container(deployment)["env"])
                env.update(secrets or {})
                executable = os.path.join(TARGET, "debug", binary)
                if not os.path.exists(executable):
                    self.skipTest(f"{executable} is not built")
                results[binary] = subprocess.run([executable, "--check-config", "--config", path], env=env, capture_output=True, text=True)
        return results

    def test_the_rendered_configuration_is_accepted_by_the_services(self):
        docs = render("reloader.auth.mode=none", "kafka.properties.session\\.timeout\\.ms=10000")
        for binary, done in self.check_config(docs).items():
            self.assertEqual(done.returncode, 0, f"{binary}: {done.stderr}")

    def test_tls_scram_and_a_client_certificate_from_secrets_pass_the_services_checks(self):
        tls = os.path.join(TARGET, "stack", "tls")
        if not os.path.exists(os.path.join(tls, "client.key")):
            self.skipTest("the test stack's certificates are not made (tests/stack/secure.sh)")
        docs = render(
            "reloader.auth.mode=none", "kafka.sasl.enabled=true", "kafka.sasl.mechanism=SCRAM-SHA-512",
            "kafka.sasl.existingSecret=kafka-creds", "kafka.tls.enabled=true", "kafka.tls.caSecret=kafka-ca",
            "kafka.tls.clientCertSecret=kafka-client", "kafka.tls.clientKeyPasswordKey=password",
            # Integers from a values file stay integers (Helm holds them as floats).
            "kafka.properties.message\\.max\\.bytes=52428800",
        )
        (config,) = find(docs, "ConfigMap")
        self.assertIn("message.max.bytes: 52428800\n", config["data"]["application.yaml"])
        # The Secrets' files, as the pods would see them mounted.
        with tempfile.TemporaryDirectory() as ca, tempfile.TemporaryDirectory() as client:
            os.symlink(os.path.join(tls, "ca.pem"), os.path.join(ca, "ca.crt"))
            os.symlink(os.path.join(tls, "client.pem"), os.path.join(client, "tls.crt"))
            os.symlink(os.path.join(tls, "client.key"), os.path.join(client, "tls.key"))
            mounts = {"/app/kafka-ca": ca, "/app/kafka-client": client}
            good = self.check_config(docs, {"KAFKA_SSL_KEY_PASSWORD": "bss-key-secret"}, mounts)
            for binary, done in good.items():
                self.assertEqual(done.returncode, 0, f"{binary}: {done.stderr}")
            # A wrong key password is refused at the check, naming the setting and not the secret.
            bad = self.check_config(docs, {"KAFKA_SSL_KEY_PASSWORD": "not-the-password"}, mounts)
            for binary, done in bad.items():
                self.assertEqual(done.returncode, 2, f"{binary}: {done.stdout}")
                self.assertIn("ssl.key", done.stderr, binary)
                self.assertNotIn("not-the-password", done.stderr + done.stdout, binary)


if __name__ == "__main__":
    unittest.main()
