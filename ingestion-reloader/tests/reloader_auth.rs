//! Access control against the running binary: API keys, HS256 and RS256 (JWKS) tokens, 401/403, open
//! health and metrics, and a configuration that cannot start without credentials.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bss_testkit::bucket::s3_settings;
use bss_testkit::process::{http_request, Service};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELOADER: &str = env!("CARGO_BIN_EXE_ingestion-reloader");
const HS_SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
const READ_KEY: &str = "viewer-key-0123456789abcdef";
const OPS_KEY: &str = "ops-key-fedcba9876543210fedcba";

/// Serves the JWKS fixture on a free port.
async fn jwks_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = include_str!("fixtures/jwks-test-only.json");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let response = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    port
}

fn token(algorithm: Algorithm, scope: &str, audience: &str, expires_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": "tester", "scope": scope, "aud": audience, "iss": "https://idp.test", "exp": now + expires_in});
    let (header, key) = match algorithm {
        Algorithm::HS256 => (
            Header::new(Algorithm::HS256),
            EncodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        _ => {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("test-key-1".into());
            (
                header,
                EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-test-only.key"))
                    .expect("pem"),
            )
        }
    };
    encode(&header, &claims, &key).expect("token")
}

fn status(
    service: &Service,
    method: &str,
    path: &str,
    auth: Option<(&str, String)>,
) -> (u16, String) {
    let headers: Vec<(&str, &str)> = auth
        .as_ref()
        .map(|(name, value)| vec![(*name, value.as_str())])
        .unwrap_or_default();
    let body = (method == "POST")
        .then_some(&br#"{"topic":"never-archived-topic","reIngestionTopic":"nowhere"}"#[..]);
    http_request(service.http_port, method, path, &headers, body).expect("answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_tokens_grant_exactly_their_permissions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("viewer:read:{READ_KEY}\nops:read+reingest:{OPS_KEY}\n"),
    )
    .expect("keys");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, HS_SECRET).expect("secret");
    let jwks_port = jwks_server().await;
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_API_KEYS_FILE".to_owned(),
            keys.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_JWT_HS256_SECRET_FILE".to_owned(),
            secret.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_JWKS_URL".to_owned(),
            format!("http://127.0.0.1:{jwks_port}/jwks"),
        ),
        (
            "RELOADER_JWT_ISSUER".to_owned(),
            "https://idp.test".to_owned(),
        ),
        ("RELOADER_JWT_AUDIENCE".to_owned(), "bss".to_owned()),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-auth", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));

    let bearer = |t: String| Some(("Authorization", format!("Bearer {t}")));
    let key = |k: &str| Some(("X-API-Key", k.to_owned()));
    // Open routes.
    assert_eq!(status(&reloader, "GET", "/-/health/live", None).0, 200);
    assert_eq!(status(&reloader, "GET", "/-/metrics", None).0, 200);
    // No or bad credentials: 401 with a challenge.
    let (code, body) = status(&reloader, "GET", "/reingestion/jobs", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("unauthenticated"));
    assert_eq!(
        status(
            &reloader,
            "GET",
            "/reingestion/jobs",
            key("wrong-key-0123456789abcdef")
        )
        .0,
        401
    );
    // API keys: read-only cannot start; ops can (the 404 proves authentication passed).
    assert_eq!(
        status(&reloader, "GET", "/reingestion/jobs", key(READ_KEY)).0,
        200
    );
    assert_eq!(
        status(&reloader, "POST", "/reingestion/topic", key(READ_KEY)).0,
        403
    );
    assert_eq!(
        status(&reloader, "POST", "/reingestion/topic", key(OPS_KEY)).0,
        404
    );
    // HS256 token with the read scope only.
    assert_eq!(
        status(
            &reloader,
            "GET",
            "/status/folders",
            bearer(token(Algorithm::HS256, "bss:read", "bss", 300))
        )
        .0,
        200
    );
    assert_eq!(
        status(
            &reloader,
            "POST",
            "/reingestion/topic",
            bearer(token(Algorithm::HS256, "bss:read", "bss", 300))
        )
        .0,
        403
    );
    // RS256 token checked against the JWKS.
    assert_eq!(
        status(
            &reloader,
            "POST",
            "/reingestion/topic",
            bearer(token(Algorithm::RS256, "bss:read bss:reingest", "bss", 300))
        )
        .0,
        404
    );
    // Expired, wrong audience, tampered.
    assert_eq!(
        status(
            &reloader,
            "GET",
            "/reingestion/jobs",
            bearer(token(Algorithm::RS256, "bss:read", "bss", -600))
        )
        .0,
        401
    );
    assert_eq!(
        status(
            &reloader,
            "GET",
            "/reingestion/jobs",
            bearer(token(Algorithm::HS256, "bss:read", "someone-else", 300))
        )
        .0,
        401
    );
    let mut tampered = token(Algorithm::HS256, "bss:read", "bss", 300);
    tampered.push('x');
    assert_eq!(
        status(&reloader, "GET", "/reingestion/jobs", bearer(tampered)).0,
        401
    );
    let log = reloader.log();
    assert!(
        !log.contains(OPS_KEY) && !log.contains(HS_SECRET),
        "secrets in the log"
    );
    reloader.kill();
}

#[test]
fn without_credentials_or_an_explicit_none_the_service_does_not_start() {
    let mut env = s3_settings().service_env();
    env.push(("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()));
    let mut reloader = Service::start(RELOADER, "reloader-noauth", &env, &[]);
    let exit = reloader.wait_exit(Duration::from_secs(20));
    assert!(!exit.success());
    let log = reloader.log();
    assert!(
        log.lines()
            .next()
            .unwrap_or_default()
            .contains("RELOADER_AUTH=none"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_needs_its_own_permission_and_records_who_asked() {
    use bss_format::{Compression, Record, TimestampType};
    // An archive of 60 records (keys k0…k5) in objects of 10, cataloged; another one without catalog.
    let topic = bss_testkit::unique("erasable");
    let uncataloged = bss_testkit::unique("uncataloged");
    let store = s3_settings().store();
    let records: Vec<Record> = (0..60)
        .map(|o| Record {
            topic: topic.as_str().into(),
            partition: 0,
            offset: o,
            timestamp_ms: Some(1_700_000_000_000 + o),
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{}", o % 6).into_bytes()),
            payload: Some(b"{}".to_vec()),
            headers: vec![],
        })
        .collect();
    bss_testkit::archive::write_objects(&store, &topic, &records, 10, Compression::Zstd).await;
    bss_testkit::archive::catalog_folder(&store, &topic).await;
    bss_testkit::archive::write_objects(&store, &uncataloged, &records, 10, Compression::Zstd)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    let dpo_key = "dpo-key-00112233445566778899";
    std::fs::write(
        &keys,
        format!("ops:read+reingest:{OPS_KEY}\ndpo:read+erase:{dpo_key}\n"),
    )
    .expect("keys");
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_API_KEYS_FILE".to_owned(),
            keys.to_string_lossy().into_owned(),
        ),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-erase", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));
    let call = |method: &str, path: &str, key: &str, body: Option<serde_json::Value>| {
        let body = body.map(|b| b.to_string());
        let (code, text) = http_request(
            reloader.http_port,
            method,
            path,
            &[("X-API-Key", key)],
            body.as_deref().map(str::as_bytes),
        )
        .expect("answer");
        (
            code,
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or(serde_json::Value::String(text)),
        )
    };
    let route = format!("/archive/{topic}/erasures");
    let request = serde_json::json!({"key": "k3", "reason": "ticket 7", "graceSeconds": 0});

    let (code, body) = call("POST", &route, OPS_KEY, Some(request.clone()));
    assert_eq!(code, 403, "{body}");
    assert!(body.to_string().contains("scope erase"), "{body}");
    let (code, body) = call(
        "POST",
        &format!("/archive/{uncataloged}/erasures"),
        dpo_key,
        Some(request.clone()),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("catalog_incomplete")),
        "{body}"
    );

    let mut dry = request.clone();
    dry["dryRun"] = true.into();
    let (code, plan) = call("POST", &route, dpo_key, Some(dry));
    assert_eq!((code, plan["records"].as_u64()), (200, Some(10)), "{plan}");
    let (code, started) = call("POST", &route, dpo_key, Some(request));
    assert_eq!(code, 202, "{started}");
    let id = started["erasureId"].as_str().expect("id").to_owned();

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let record = loop {
        let (code, list) = call("GET", &route, dpo_key, None);
        assert_eq!(code, 200, "{list}");
        let found = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["id"] == id.as_str()).cloned());
        if let Some(record) = found.filter(|r| r["state"] == "complete") {
            break record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{list}\n{}",
            reloader.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["requestedBy"], "api-key:dpo", "{record}");
    assert_eq!(record["reason"], "ticket 7");
    assert_eq!(record["records"], 10);
    assert!(
        !record.to_string().contains("\"k3\""),
        "the key itself is not kept: {record}"
    );

    let archive = bss_archive::Archive::new(store, std::sync::Arc::new(bss_archive::NoObserver));
    let mut keys_left = Vec::new();
    for object in archive
        .select(&topic, &bss_archive::Selection::all())
        .await
        .expect("select")
        .into_values()
        .flatten()
    {
        let mut chunks = archive.read(&object).await.expect("read");
        while let Some(chunk) = chunks.recv().await {
            keys_left.extend(chunk.expect("decode").into_iter().map(|r| r.key));
        }
    }
    assert_eq!(keys_left.len(), 50);
    assert!(!keys_left.contains(&Some(b"k3".to_vec())));
}

/// An identity provider that counts its JWKS requests and answers each with a 500 after `delay`.
async fn failing_jwks_server(
    delay: Duration,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counted = std::sync::Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, requests)
}

/// An HS256 token with exactly `claims` (plus `exp` in 5 minutes unless given).
fn token_with(mut claims: serde_json::Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    if claims.get("exp").is_none() {
        claims["exp"] = (now + 300).into();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("token")
}

/// A client-credentials token as Keycloak issues it: a service account, the client in `azp`,
/// realm roles nested under `realm_access`, no scope of ours: the roles are mapped by configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_tokens_get_their_scopes_from_configured_role_mapping() {
    let jwks_port = jwks_server().await;
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_JWKS_URL".to_owned(),
            format!("http://127.0.0.1:{jwks_port}/jwks"),
        ),
        (
            "RELOADER_JWT_ISSUER".to_owned(),
            "https://idp.test".to_owned(),
        ),
        ("RELOADER_JWT_AUDIENCE".to_owned(), "bss".to_owned()),
        (
            "RELOADER_JWT_ROLES_CLAIM".to_owned(),
            "realm_access.roles".to_owned(),
        ),
        (
            "RELOADER_JWT_ROLE_SCOPES".to_owned(),
            "bss-viewer=read;bss-ci=read+reingest:never-archived-*->*".to_owned(),
        ),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-roles", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));
    let machine = |roles: &[&str]| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let claims = serde_json::json!({
            "sub": "service-account-ci-pipeline", "azp": "ci-pipeline", "typ": "Bearer",
            "iss": "https://idp.test", "aud": "bss", "exp": now + 300, "iat": now,
            "scope": "profile email", "realm_access": {"roles": roles},
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        let key =
            EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-test-only.key")).expect("pem");
        Some((
            "Authorization",
            format!("Bearer {}", encode(&header, &claims, &key).expect("token")),
        ))
    };
    let viewer = machine(&["offline_access", "bss-viewer"]);
    assert_eq!(
        status(&reloader, "GET", "/status/folders", viewer.clone()).0,
        200
    );
    let (code, body) = status(&reloader, "POST", "/reingestion/topic", viewer);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("reingest"),
        "the missing scope is named: {body}"
    );
    // The CI role may replay that topic (404: authorized, but nothing is archived under it).
    let (code, body) = status(
        &reloader,
        "POST",
        "/reingestion/topic",
        machine(&["bss-ci"]),
    );
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        status(
            &reloader,
            "GET",
            "/status/folders",
            machine(&["uma_authorization"])
        )
        .0,
        403,
        "an unmapped role grants nothing"
    );
    let log = reloader.log();
    assert!(
        log.contains("jwt:service-account-ci-pipeline client:ci-pipeline"),
        "the access log names the subject and the client: {log}"
    );
    reloader.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_and_audience_are_required_and_a_failing_identity_provider_is_asked_once()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, HS_SECRET).expect("secret");
    // Slow (2 s) and failing: every request it gets holds its caller 2 s.
    let (jwks_port, jwks_requests) = failing_jwks_server(Duration::from_secs(2)).await;
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_JWT_HS256_SECRET_FILE".to_owned(),
            secret.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_JWKS_URL".to_owned(),
            format!("http://127.0.0.1:{jwks_port}/jwks"),
        ),
        (
            "RELOADER_JWT_ISSUER".to_owned(),
            "https://idp.test".to_owned(),
        ),
        ("RELOADER_JWT_AUDIENCE".to_owned(), "bss".to_owned()),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-strict", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));
    let bearer = |t: String| Some(("Authorization", format!("Bearer {t}")));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let full = serde_json::json!({"sub": "ci", "scope": "bss:read", "iss": "https://idp.test", "aud": "bss"});
    let without = |claim: &str| {
        let mut claims = full.clone();
        claims.as_object_mut().expect("object").remove(claim);
        claims
    };
    let with = |claim: &str, value: serde_json::Value| {
        let mut claims = full.clone();
        claims[claim] = value;
        claims
    };
    let get = |t: String| status(&reloader, "GET", "/status/folders", bearer(t)).0;
    assert_eq!(get(token_with(full.clone())), 200);
    assert_eq!(get(token_with(without("iss"))), 401, "no iss");
    assert_eq!(get(token_with(without("aud"))), 401, "no aud");
    assert_eq!(
        get(token_with(with("nbf", (now + 600).into()))),
        401,
        "not yet valid"
    );
    assert_eq!(
        get(token_with(with("nbf", (now + 20).into()))),
        200,
        "within the clock skew"
    );

    // 20 requests at once with a token of an unknown key: one JWKS fetch for all of them, then
    // none during the back-off, whatever comes.
    let rs256 = token(Algorithm::RS256, "bss:read", "bss", 300);
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| get(rs256.clone())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect()
    });
    assert!(answers.iter().all(|a| *a == 401), "{answers:?}");
    assert_eq!(
        jwks_requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one fetch for 20 requests"
    );
    for _ in 0..10 {
        assert_eq!(get(rs256.clone()), 401);
    }
    assert_eq!(
        jwks_requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the failing provider is not asked again during the back-off"
    );
    assert!(reloader.log().contains("cannot refresh the JWKS"));
    reloader.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_logged_and_every_mutating_call_audited_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("ops:read+reingest:{OPS_KEY}\n")).expect("keys");
    let audit_topic = bss_testkit::unique("audit");
    bss_testkit::kafka::create_topic(&audit_topic, 1).await;
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_API_KEYS_FILE".to_owned(),
            keys.to_string_lossy().into_owned(),
        ),
        ("RELOADER_AUDIT_TOPIC".to_owned(), audit_topic.clone()),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-audit", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));
    let port = reloader.http_port;
    let call =
        move |method: &str, path: &str, key: Option<&str>, body: Option<serde_json::Value>| {
            let headers: Vec<(&str, &str)> =
                key.map(|k| vec![("X-API-Key", k)]).unwrap_or_default();
            let body = body.map(|b| b.to_string());
            bss_testkit::process::http_exchange(
                port,
                method,
                path,
                &headers,
                body.as_deref().map(str::as_bytes),
            )
            .expect("answer")
        };
    let job = "0123456789abcdef01234567";
    let (status, head, _) = call(
        "POST",
        "/reingestion/topic",
        Some(OPS_KEY),
        Some(
            serde_json::json!({"topic": "never-archived", "reIngestionTopic": "nowhere", "startDate": "2026-01-01T00:00:00Z"}),
        ),
    );
    assert_eq!(status, 404);
    // Security headers on every answer.
    let head = head.to_ascii_lowercase();
    for expected in [
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "cache-control: no-store",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(head.contains(expected), "{expected} in {head}");
    }
    assert_eq!(
        call(
            "POST",
            "/reingestion/key",
            Some(OPS_KEY),
            Some(serde_json::json!({"topic": "never-archived", "key": "customer-4711-secret", "reIngestionTopic": "nowhere"})),
        )
        .0,
        404
    );
    assert_eq!(
        call(
            "DELETE",
            &format!("/reingestion/jobs/{job}"),
            Some(OPS_KEY),
            None
        )
        .0,
        404
    );
    assert_eq!(
        call(
            "GET",
            &format!("/reingestion/jobs/{job}"),
            Some(OPS_KEY),
            None
        )
        .0,
        404
    );
    assert_eq!(call("GET", "/reingestion/jobs", None, None).0, 401);

    // Audit records on the topic: the three mutating calls, who, what, outcome.
    let records = bss_testkit::kafka::read_topic(&audit_topic, 3, Duration::from_secs(30)).await;
    let audits: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_slice(r.record.payload.as_deref().expect("value")).expect("json"))
        .collect();
    assert_eq!(audits.len(), 3, "{audits:?}");
    assert!(
        audits.iter().all(|a| a["principal"] == "api-key:ops"
            && a["outcome"] == "refused"
            && a["status"] == 404),
        "{audits:?}"
    );
    assert_eq!(audits[0]["action"], "POST /reingestion/topic");
    assert_eq!(
        (audits[0]["topic"].as_str(), audits[0]["target"].as_str()),
        (Some("never-archived"), Some("nowhere"))
    );
    assert_eq!(audits[0]["startDate"], "2026-01-01T00:00:00Z");
    assert_eq!(audits[1]["keyBytes"], 20, "the key by its length only");
    assert_eq!(
        (audits[2]["action"].as_str(), audits[2]["jobId"].as_str()),
        (Some("DELETE /reingestion/jobs/{id}"), Some(job))
    );
    assert!(
        audits.iter().all(|a| a["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:"))),
        "{audits:?}"
    );

    // The access log: every request, with its route template and principal; never a secret.
    let log = reloader.log();
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "access")
        .collect();
    assert_eq!(access.len(), 5, "{access:?}");
    assert!(
        access.iter().any(|a| a["route"] == "/reingestion/jobs/{id}"
            && a["method"] == "GET"
            && a["principal"] == "api-key:ops"
            && a["status"] == 404),
        "{access:?}"
    );
    assert!(
        access
            .iter()
            .any(|a| a["status"] == 401 && a["principal"] == "(unauthenticated)"),
        "{access:?}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"target\":\"audit\""))
            .count(),
        3
    );
    assert!(
        !log.contains(OPS_KEY) && !log.contains("customer-4711-secret"),
        "secrets in the log"
    );
    reloader.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_grant_topics_and_protected_targets_are_refused_to_everyone() {
    const SUPPORT_KEY: &str = "support-key-0123456789abcdef";
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("support:read:orders.*+reingest:orders.*->orders.reingestion+stop:{SUPPORT_KEY}\nadmin:admin:{OPS_KEY}\n"),
    )
    .expect("keys");
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_API_KEYS_FILE".to_owned(),
            keys.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_PROTECTED_TOPICS".to_owned(),
            "audit.*, cdc.raw".to_owned(),
        ),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-scopes", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));
    let call = |key: &str, method: &str, path: &str, body: Option<serde_json::Value>| {
        let body = body.map(|b| b.to_string());
        let (status, text) = http_request(
            reloader.http_port,
            method,
            path,
            &[("X-API-Key", key)],
            body.as_deref().map(str::as_bytes),
        )
        .expect("answer");
        (status, text)
    };
    let start = |key: &str, source: &str, target: &str| {
        call(
            key,
            "POST",
            "/reingestion/topic",
            Some(serde_json::json!({"topic": source, "reIngestionTopic": target})),
        )
    };
    // Another source, or another target: 403 naming the missing scope, before any lookup.
    let (status, body) = start(SUPPORT_KEY, "payments.ingestion", "orders.reingestion");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("reingest:payments.ingestion->orders.reingestion"),
        "{body}"
    );
    let (status, body) = start(SUPPORT_KEY, "orders.ingestion", "payments.reingestion");
    assert_eq!(status, 403, "{body}");
    // Its own route passes the scope check (then nothing is archived: 404).
    assert_eq!(
        start(SUPPORT_KEY, "orders.ingestion", "orders.reingestion").0,
        404
    );
    let (status, body) = call(
        SUPPORT_KEY,
        "GET",
        "/archive/payments.ingestion/messages",
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read:payments.ingestion"), "{body}");
    assert_ne!(
        call(
            SUPPORT_KEY,
            "GET",
            "/archive/orders.ingestion/messages",
            None
        )
        .0,
        403
    );
    let (status, body) = call(
        SUPPORT_KEY,
        "POST",
        "/archive/orders.ingestion/erasures",
        Some(serde_json::json!({"key": "k", "reason": "test"})),
    );
    assert_eq!(status, 403, "no erase scope: {body}");
    assert!(body.contains("erase"), "{body}");
    // Protected targets: refused even to an admin.
    for target in ["audit.log", "cdc.raw"] {
        let (status, body) = start(OPS_KEY, "orders.ingestion", target);
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("protected"), "{body}");
    }
    reloader.kill();
}

/// A `reqwest` client that trusts only the certificate authority in `ca_file`, without pooling
/// (each call is a new TLS handshake, so it sees the certificate served right now).
fn client_trusting(ca_file: &str) -> reqwest::Client {
    let pem = std::fs::read(ca_file).expect("CA file");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_configured_certificate_and_reloads_it_when_the_files_change() {
    use bss_testkit::tls_file;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(tls_file("server.pem"), &cert).expect("cert");
    std::fs::copy(tls_file("server.key"), &key).expect("key");
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        ("RELOADER_AUTH".to_owned(), "none".to_owned()),
        (
            "RELOADER_TLS_CERT_FILE".to_owned(),
            cert.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_TLS_KEY_FILE".to_owned(),
            key.to_string_lossy().into_owned(),
        ),
    ]);
    let metrics_port = bss_testkit::free_port();
    env.push(("METRICS_PORT".to_owned(), metrics_port.to_string()));
    let reloader = Service::start(RELOADER, "reloader-https", &env, &[]);
    reloader.wait_log("serving the API", 1, Duration::from_secs(30));
    // Metrics have a port of their own, in plain HTTP for the scraper, and leave the API's port.
    let (status, metrics) = bss_testkit::process::http_get(metrics_port, "/-/metrics")
        .expect("metrics answer on METRICS_PORT");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("bss_build_info{") && metrics.contains("process_open_fds "),
        "{metrics}"
    );
    assert_eq!(
        bss_testkit::process::http_get(metrics_port, "/status/folders").map(|(s, _)| s),
        Some(404),
        "the metrics port serves metrics only"
    );
    let url = format!("https://127.0.0.1:{}/status/folders", reloader.http_port);
    let status_with = |ca: &str| {
        let (client, url) = (client_trusting(&tls_file(ca)), url.clone());
        async move { client.get(&url).send().await.map(|r| r.status().as_u16()) }
    };
    let answer = client_trusting(&tls_file("ca.pem"))
        .get(&url)
        .send()
        .await
        .expect("HTTPS answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["x-content-type-options"],
        "nosniff",
        "security headers over HTTPS too"
    );
    assert!(
        status_with("other-ca.pem").await.is_err(),
        "served by the other CA's certificate?"
    );
    let metrics_on_api_port = client_trusting(&tls_file("ca.pem"))
        .get(format!(
            "https://127.0.0.1:{}/-/metrics",
            reloader.http_port
        ))
        .send()
        .await
        .expect("HTTPS answer");
    assert_eq!(metrics_on_api_port.status(), 404);
    assert!(
        !matches!(
            http_request(reloader.http_port, "GET", "/status/folders", &[], None),
            Some((200, _))
        ),
        "plain HTTP must not be served on the HTTPS port"
    );
    // A silent client does not hold a handshake open.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", reloader.http_port))
        .await
        .expect("connect");
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buffer)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");

    // Rotation: a certificate of another authority is written first, its key a moment later
    // (as a non-atomic copy would): the half-written pair is refused and the old pair keeps
    // serving; once both are there, the new certificate is served.
    let ca = tls_file("other-ca");
    std::fs::write(
        dir.path().join("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        dir.path(),
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "new.key",
            "-out",
            "new.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "new.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-CAserial",
            "serial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "new.pem",
        ],
    );
    std::fs::copy(dir.path().join("new.pem"), &cert).expect("new cert");
    reloader.wait_log(
        "cannot reload the TLS certificate",
        1,
        Duration::from_secs(15),
    );
    assert_eq!(
        status_with("ca.pem").await.ok(),
        Some(200),
        "the old pair still serves"
    );
    std::fs::copy(dir.path().join("new.key"), &key).expect("new key");
    reloader.wait_log("TLS certificate reloaded", 1, Duration::from_secs(15));
    assert_eq!(status_with("other-ca.pem").await.ok(), Some(200));
    assert!(
        status_with("ca.pem").await.is_err(),
        "the old certificate is no longer served"
    );
    let log = reloader.log();
    assert!(!log.contains("PRIVATE KEY"), "no key material in the log");
    drop(reloader);
}
