//! Access control: API keys and OAuth2 bearer JWTs (HS256, RS256 from a PEM file or a JWKS URL),
//! granting topic-scoped actions ([`Grants`]): `read:<topics>`, `reingest:<sources>-><targets>`,
//! `stop`, `erase:<topics>`, `admin`. The middleware checks the kind of scope a route needs; the
//! handlers check the topics.
//! Health and metrics routes are open. `RELOADER_AUTH=none` turns checks off (local use; warned).
//!
//! - API keys: `X-API-Key: <key>`. The keys file has one key per line, `name:scopes:key`, scopes
//!   joined by `+`; `#` starts a comment.
//! - JWT: `Authorization: Bearer <token>`. Scopes come from the `scope` claim (space-separated) or a
//!   `scp`/`permissions` array, prefixed `bss:` (`bss:read:orders.*`), and from the roles claim
//!   (`RELOADER_JWT_ROLES_CLAIM`): `bss:` entries are scopes, other role names are mapped to scopes
//!   by `RELOADER_JWT_ROLE_SCOPES`. `exp` is required; a configured
//!   issuer or audience is required too (a token without `iss`/`aud` is refused); `nbf` is honoured;
//!   60 s of clock skew are tolerated. JWKS keys are fetched by one request at a time, and while the
//!   provider fails it is asked again only after a doubling back-off (10 s to 5 min).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::error::ApiError;
use crate::config::{AuthSettings, Pattern};

/// What a caller may do, as scopes (keys file and token claims, `bss:` prefix in tokens):
/// `read:<source>`, `reingest:<source>-><target>`, `stop`, `erase:<source>`, `admin` (all of
/// them); the short forms `read`, `reingest` (= `reingest:*->*` + `stop`) and `erase` grant them on
/// every topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    read: Vec<Pattern>,
    reingest: Vec<(Pattern, Pattern)>,
    stop: bool,
    erase: Vec<Pattern>,
    admin: bool,
}

impl Grants {
    /// Everything (checks off).
    pub fn all() -> Self {
        Self {
            admin: true,
            ..Self::default()
        }
    }

    /// Adds one scope; `false` when it is not one.
    fn add(&mut self, scope: &str) -> bool {
        let (action, argument) = match scope.split_once(':') {
            Some((action, argument)) => (action, Some(argument)),
            None => (scope, None),
        };
        match (action, argument) {
            ("admin", None) => self.admin = true,
            ("stop", None) => self.stop = true,
            ("read", None) => self.read.push(Pattern::any()),
            ("erase", None) => self.erase.push(Pattern::any()),
            ("reingest", None) => {
                self.reingest.push((Pattern::any(), Pattern::any()));
                self.stop = true;
            }
            ("read", Some(p)) => match Pattern::parse(p) {
                Some(p) => self.read.push(p),
                None => return false,
            },
            ("erase", Some(p)) => match Pattern::parse(p) {
                Some(p) => self.erase.push(p),
                None => return false,
            },
            ("reingest", Some(route)) => {
                let parsed = route
                    .split_once("->")
                    .and_then(|(from, to)| Some((Pattern::parse(from)?, Pattern::parse(to)?)));
                match parsed {
                    Some(pair) => self.reingest.push(pair),
                    None => return false,
                }
            }
            _ => return false,
        }
        true
    }

    fn parse(text: &str) -> Option<Self> {
        let mut grants = Self::default();
        text.split('+')
            .all(|scope| grants.add(scope.trim()))
            .then_some(grants)
    }

    /// Adds everything `other` grants.
    fn merge(&mut self, other: &Grants) {
        self.read.extend(other.read.iter().cloned());
        self.reingest.extend(other.reingest.iter().cloned());
        self.erase.extend(other.erase.iter().cloned());
        self.stop |= other.stop;
        self.admin |= other.admin;
    }

    fn can_read_some(&self) -> bool {
        self.admin || !self.read.is_empty()
    }

    fn can_reingest_some(&self) -> bool {
        self.admin || !self.reingest.is_empty()
    }

    fn can_stop(&self) -> bool {
        self.admin || self.stop
    }

    fn can_erase_some(&self) -> bool {
        self.admin || !self.erase.is_empty()
    }

    /// 403 naming the scope, unless `source` may be read.
    pub fn check_read(&self, source: &str) -> Result<(), ApiError> {
        if self.admin || self.read.iter().any(|p| p.matches(source)) {
            return Ok(());
        }
        Err(missing(format!("read:{source}")))
    }

    /// 403 naming the scope, unless `source` may be replayed into `target`.
    pub fn check_reingest(&self, source: &str, target: &str) -> Result<(), ApiError> {
        if self.admin
            || self
                .reingest
                .iter()
                .any(|(from, to)| from.matches(source) && to.matches(target))
        {
            return Ok(());
        }
        Err(missing(format!("reingest:{source}->{target}")))
    }

    /// 403 naming the scope, unless records of `source` may be erased.
    pub fn check_erase(&self, source: &str) -> Result<(), ApiError> {
        if self.admin || self.erase.iter().any(|p| p.matches(source)) {
            return Ok(());
        }
        Err(missing(format!("erase:{source}")))
    }
}

fn missing(scope: String) -> ApiError {
    ApiError::Forbidden(format!("this credential lacks the scope {scope}"))
}

/// Who made a request (for audit records): the API key's name, the token's `sub`, or `anonymous`
/// when checks are off. The middleware puts it in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The loaded verifier, shared by requests.
pub struct Authenticator {
    disabled: bool,
    api_keys: Vec<(String, Vec<u8>, Grants)>,
    static_keys: Vec<(Algorithm, DecodingKey)>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: Vec<String>,
    role_scopes: HashMap<String, Grants>,
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<JwksState>,
    /// Held while a fetch runs: concurrent requests wait for that one fetch (single flight).
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, DecodingKey>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last fetch attempt, and how many failed in a row (the backoff before the next).
    attempted_at: Option<Instant>,
    failures: u32,
}

impl JwksState {
    /// Whether a fetch may run now: at most one per [`JWKS_MIN_REFRESH`], and after failures
    /// one per a doubling interval up to [`JWKS_MAX_BACKOFF`] (the identity provider is not
    /// asked again per request while it fails: an unknown key id is refused at once meanwhile).
    fn may_fetch(&self) -> bool {
        let wait = JWKS_MIN_REFRESH
            .saturating_mul(1 << self.failures.min(5))
            .min(JWKS_MAX_BACKOFF);
        self.attempted_at.is_none_or(|at| at.elapsed() >= wait)
    }
}

/// How long fetched JWKS keys are trusted before a refresh; an unknown `kid` refreshes sooner.
const JWKS_TTL: Duration = Duration::from_secs(600);
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);
const JWKS_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Tolerated clock difference with the token issuer for `exp` and `nbf`.
const CLOCK_SKEW_SECONDS: u64 = 60;

/// Why the credentials cannot be loaded; each names the setting (and the file).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A credential file cannot be read.
    #[error("cannot read {setting} {path}: {source}")]
    Read {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A credential file or setting holds something unusable.
    #[error("{setting} {place}: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// The file (and line), or the entry.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// Checks are on and nothing could pass them.
    #[error("no credentials configured: set RELOADER_API_KEYS_FILE and/or JWT settings (RELOADER_JWT_HS256_SECRET_FILE, RELOADER_JWT_RS256_PUBLIC_KEY_FILE, RELOADER_JWKS_URL), or RELOADER_AUTH=none for local use")]
    NoCredentials,
}

fn read_file(setting: &'static str, path: &str) -> Result<String, AuthError> {
    std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

impl Authenticator {
    /// Loads keys from files. Errors name the setting and the file.
    pub fn load(settings: &AuthSettings) -> Result<Self, AuthError> {
        let mut api_keys = Vec::new();
        if let Some(path) = &settings.api_keys_file {
            for (number, line) in read_file("RELOADER_API_KEYS_FILE", path)?
                .lines()
                .enumerate()
            {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                // Scopes hold `:` themselves: the name is before the first, the key after the last.
                let parsed = line
                    .split_once(':')
                    .and_then(|(name, rest)| Some((name, rest.rsplit_once(':')?)));
                let invalid = |reason: String| AuthError::Invalid {
                    setting: "RELOADER_API_KEYS_FILE",
                    place: format!("{path} line {}", number + 1),
                    reason,
                };
                let Some((name, (permissions, key))) = parsed else {
                    return Err(invalid("expected name:permissions:key".into()));
                };
                let permissions = Grants::parse(permissions).ok_or_else(|| {
                    invalid("scopes must be read[:<topics>], reingest[:<topics>-><topics>], stop, erase[:<topics>] or admin, joined by +".into())
                })?;
                if key.len() < 16 {
                    return Err(invalid(format!(
                        "key {name:?} is shorter than 16 characters"
                    )));
                }
                api_keys.push((name.to_owned(), key.as_bytes().to_vec(), permissions));
            }
        }
        let mut static_keys = Vec::new();
        if let Some(path) = &settings.hs256_secret_file {
            let secret = read_file("RELOADER_JWT_HS256_SECRET_FILE", path)?;
            if secret.trim().len() < 32 {
                return Err(AuthError::Invalid {
                    setting: "RELOADER_JWT_HS256_SECRET_FILE",
                    place: path.clone(),
                    reason: "the secret must be at least 32 characters".into(),
                });
            }
            static_keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.trim().as_bytes()),
            ));
        }
        if let Some(path) = &settings.rs256_public_key_file {
            let pem = read_file("RELOADER_JWT_RS256_PUBLIC_KEY_FILE", path)?;
            let key =
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| AuthError::Invalid {
                    setting: "RELOADER_JWT_RS256_PUBLIC_KEY_FILE",
                    place: path.clone(),
                    reason: format!("not an RSA public key in PEM: {e}"),
                })?;
            static_keys.push((Algorithm::RS256, key));
        }
        let jwks = settings.jwks_url.as_ref().map(|url| Jwks {
            url: url.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(JwksState::default()),
            refresh: tokio::sync::Mutex::new(()),
        });
        let configured = !api_keys.is_empty() || !static_keys.is_empty() || jwks.is_some();
        if !settings.disabled && !configured {
            return Err(AuthError::NoCredentials);
        }
        Ok(Self {
            disabled: settings.disabled,
            api_keys,
            static_keys,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            roles_claim: match settings.roles_claim.trim() {
                "" => vec!["roles".to_owned()],
                path => path.split('.').map(str::to_owned).collect(),
            },
            role_scopes: parse_role_scopes(settings.role_scopes.as_deref().unwrap_or(""))?,
        })
    }

    /// Whether checks are off.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    fn check_api_key(&self, presented: &[u8]) -> Option<(Caller, Grants)> {
        // Compare every key in full, without early exit, so timing reveals nothing about the keys.
        let mut found = None;
        for (name, key, permissions) in &self.api_keys {
            let same = key.len() == presented.len()
                && key
                    .iter()
                    .zip(presented)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if same {
                found = Some((Caller(format!("api-key:{name}")), permissions.clone()));
            }
        }
        found
    }

    async fn check_jwt(&self, token: &str) -> Result<(Caller, Grants), String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let mut candidates: Vec<DecodingKey> = self
            .static_keys
            .iter()
            .filter(|(alg, _)| *alg == header.alg)
            .map(|(_, key)| key.clone())
            .collect();
        if header.alg == Algorithm::RS256 {
            if let (Some(jwks), Some(kid)) = (&self.jwks, header.kid.as_deref()) {
                if let Some(key) = jwks.key(kid).await {
                    candidates.push(key);
                }
            }
        }
        if candidates.is_empty() {
            return Err(format!("no key for algorithm {:?}", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        // A configured issuer or audience is required, not only checked when present.
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW_SECONDS;
        let mut last_error = String::new();
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
                Ok(data) => {
                    let claim = |name: &str| data.claims.get(name).and_then(|s| s.as_str());
                    let mut caller = format!("jwt:{}", claim("sub").unwrap_or("(no sub)"));
                    // The OAuth2 client (machine-to-machine flows): `azp`, or `client_id` (RFC 9068).
                    if let Some(client) = claim("azp").or_else(|| claim("client_id")) {
                        caller.push_str(&format!(" client:{client}"));
                    }
                    return Ok((Caller(caller), self.grants_of(&data.claims)));
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(format!("invalid token: {last_error}"))
    }

    /// What a verified token grants: its `bss:` scopes and its mapped roles.
    fn grants_of(&self, claims: &serde_json::Value) -> Grants {
        let mut scopes: Vec<&str> = claims
            .get("scope")
            .and_then(|s| s.as_str())
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        for field in ["scp", "permissions"] {
            if let Some(items) = claims.get(field).and_then(|v| v.as_array()) {
                scopes.extend(items.iter().filter_map(|i| i.as_str()));
            }
        }
        let roles = self
            .roles_claim
            .iter()
            .try_fold(claims, |value, step| value.get(step))
            .and_then(|v| v.as_array());
        let mut grants = Grants::default();
        for role in roles.into_iter().flatten().filter_map(|r| r.as_str()) {
            match self.role_scopes.get(role) {
                Some(mapped) => grants.merge(mapped),
                None => scopes.push(role),
            }
        }
        for scope in scopes {
            // Other applications' scopes are none of ours.
            if let Some(ours) = scope.strip_prefix("bss:") {
                grants.add(ours);
            }
        }
        grants
    }
}

/// `role=scopes;role=scopes`, scopes as in the keys file.
fn parse_role_scopes(text: &str) -> Result<HashMap<String, Grants>, AuthError> {
    let mut roles = HashMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .split_once('=')
            .and_then(|(role, scopes)| Some((role.trim(), Grants::parse(scopes)?)));
        match parsed {
            Some((role, grants)) if !role.is_empty() => {
                roles.insert(role.to_owned(), grants);
            }
            _ => {
                return Err(AuthError::Invalid {
                    setting: "RELOADER_JWT_ROLE_SCOPES",
                    place: format!("entry {entry:?}"),
                    reason: "expected role=scopes, scopes joined by + (read[:<topics>], reingest[:<topics>-><topics>], stop, erase[:<topics>], admin)".into(),
                })
            }
        }
    }
    Ok(roles)
}

impl Jwks {
    fn cached(&self, kid: &str) -> (Option<DecodingKey>, bool, bool) {
        let state = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < JWKS_TTL);
        (state.keys.get(kid).cloned(), fresh, state.may_fetch())
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let (cached, fresh, may_fetch) = self.cached(kid);
        if cached.is_some() && fresh || !may_fetch {
            // A stale key still serves while the provider cannot be asked.
            return cached;
        }
        // Unknown kid or stale set: one fetch at a time; whoever waited behind it reads its result.
        let _flight = self.refresh.lock().await;
        let (cached, fresh, may_fetch) = self.cached(kid);
        if cached.is_some() && fresh || !may_fetch {
            return cached;
        }
        let fetched = self.fetch().await;
        let mut state = self.keys.write().unwrap_or_else(|p| p.into_inner());
        state.attempted_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = state.attempted_at;
                state.failures = 0;
            }
            Err(e) => {
                state.failures += 1;
                tracing::warn!(url = %self.url, error = %e, failures = state.failures, "cannot refresh the JWKS; tokens signed by unknown keys are refused until the next attempt");
            }
        }
        state.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect())
    }
}

fn deny(status: StatusCode, code: &str, message: &str) -> Response {
    let body = Json(serde_json::json!({"code": code, "message": message}));
    if status == StatusCode::UNAUTHORIZED {
        (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
    } else {
        (status, body).into_response()
    }
}

/// Middleware for the API routes: authenticates, checks that the credential holds the kind of
/// scope the route needs (the topics are checked by the handlers, which know them) and hands the
/// grants and the caller on.
pub async fn require(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    if auth.disabled {
        let caller = Caller("anonymous (RELOADER_AUTH=none)".into());
        request.extensions_mut().insert(caller.clone());
        request.extensions_mut().insert(Grants::all());
        let mut response = next.run(request).await;
        response.extensions_mut().insert(caller);
        return response;
    }
    let path = request.uri().path();
    let needed = match *request.method() {
        Method::DELETE => "stop",
        Method::POST if path == "/reingestion/stop-reingestion" => "stop",
        Method::POST if path.ends_with("/erasures") => "erase",
        Method::POST => "reingest",
        _ => "read",
    };
    let headers = request.headers();
    let authenticated = if let Some(key) = headers.get("x-api-key") {
        auth.check_api_key(key.as_bytes())
            .ok_or_else(|| "unknown API key".to_owned())
    } else if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        auth.check_jwt(bearer.trim()).await
    } else {
        Err("missing credentials: send X-API-Key or Authorization: Bearer".to_owned())
    };
    let (caller, grants) = match authenticated {
        Err(reason) => return deny(StatusCode::UNAUTHORIZED, "unauthenticated", &reason),
        Ok(found) => found,
    };
    let allowed = match needed {
        "stop" => grants.can_stop(),
        "erase" => grants.can_erase_some(),
        "reingest" => grants.can_reingest_some(),
        _ => grants.can_read_some(),
    };
    let mut response = if allowed {
        request.extensions_mut().insert(caller.clone());
        request.extensions_mut().insert(grants);
        next.run(request).await
    } else {
        let scope = match needed {
            "stop" => "stop",
            "erase" => "erase:<topic>",
            "reingest" => "reingest:<source>-><target>",
            _ => "read:<topic>",
        };
        deny(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("this credential lacks the scope {scope}"),
        )
    };
    // For the access log and the audit record.
    response.extensions_mut().insert(caller);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_files_are_validated_line_by_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        std::fs::write(
            &path,
            "# comment\nops:read+reingest:0123456789abcdef0123\nviewer:read:fedcba9876543210fedc\ndpo:erase:abcdefabcdefabcdef00\nsupport:read:orders.*+reingest:orders.*->orders.reingestion+stop:aaaabbbbccccdddd\n",
        )
        .expect("write");
        let settings = AuthSettings {
            api_keys_file: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let auth = Authenticator::load(&settings).expect("valid");
        let grants = |key: &[u8]| auth.check_api_key(key).map(|(_, g)| g).expect("known key");
        let viewer = grants(b"fedcba9876543210fedc");
        assert!(viewer.check_read("anything").is_ok() && !viewer.can_reingest_some());
        let ops = grants(b"0123456789abcdef0123");
        assert!(ops.check_reingest("a", "b").is_ok() && ops.can_stop() && !ops.can_erase_some());
        let dpo = grants(b"abcdefabcdefabcdef00");
        assert!(dpo.check_erase("orders").is_ok() && !dpo.can_read_some());
        let support = grants(b"aaaabbbbccccdddd");
        assert!(support.check_read("orders.ingestion").is_ok());
        assert!(support.check_read("payments.ingestion").is_err());
        assert!(support
            .check_reingest("orders.ingestion", "orders.reingestion")
            .is_ok());
        let refused = support
            .check_reingest("orders.ingestion", "payments.reingestion")
            .expect_err("other target");
        assert!(
            refused
                .to_string()
                .contains("reingest:orders.ingestion->payments.reingestion"),
            "{refused}"
        );
        assert_eq!(
            auth.check_api_key(b"abcdefabcdefabcdef00")
                .map(|(c, _)| c.0),
            Some("api-key:dpo".to_owned()),
            "the key's name identifies the caller in audit records"
        );
        assert!(auth.check_api_key(b"0123456789abcdef012").is_none());

        std::fs::write(&path, "ops:superuser:0123456789abcdef0123\n").expect("write");
        assert!(Authenticator::load(&settings)
            .err()
            .expect("invalid")
            .to_string()
            .contains("line 1"));
        std::fs::write(&path, "ops:read:short\n").expect("write");
        assert!(Authenticator::load(&settings)
            .err()
            .expect("invalid")
            .to_string()
            .contains("16 characters"));
        assert!(Authenticator::load(&AuthSettings::default())
            .err()
            .expect("no credentials")
            .to_string()
            .contains("RELOADER_AUTH=none"));
    }

    #[test]
    fn token_scopes_and_patterns() {
        let auth = |roles_claim: &str, role_scopes: &str| Authenticator {
            disabled: false,
            api_keys: Vec::new(),
            static_keys: Vec::new(),
            jwks: None,
            issuer: None,
            audience: None,
            roles_claim: roles_claim.split('.').map(str::to_owned).collect(),
            role_scopes: parse_role_scopes(role_scopes).expect("role scopes"),
        };
        let plain = auth("roles", "");
        let claims = serde_json::json!({"scope": "openid bss:read bss:erase:orders", "roles": ["bss:reingest:orders->orders.*"]});
        let grants = plain.grants_of(&claims);
        assert!(grants.check_read("x").is_ok() && grants.check_erase("orders").is_ok());
        assert!(grants.check_erase("payments").is_err() && !grants.can_stop());
        assert!(grants.check_reingest("orders", "orders.replay").is_ok());
        assert!(grants.check_reingest("orders", "payments").is_err());
        assert_eq!(
            plain.grants_of(&serde_json::json!({"scope": "openid read", "roles": ["operator"]})),
            Grants::default(),
            "only bss: scopes count, and unmapped roles grant nothing"
        );

        // Keycloak-style nested roles, mapped by configuration.
        let keycloak = auth(
            "realm_access.roles",
            "bss-analyst=read:orders.* ; bss-operator=reingest:*->*.reingestion+stop+read",
        );
        let analyst = keycloak.grants_of(
            &serde_json::json!({"realm_access": {"roles": ["offline_access", "bss-analyst"]}}),
        );
        assert!(analyst.check_read("orders.ingestion").is_ok());
        assert!(analyst.check_read("payments").is_err() && !analyst.can_reingest_some());
        let operator = keycloak.grants_of(
            &serde_json::json!({"realm_access": {"roles": ["bss-operator", "bss-analyst"]}}),
        );
        assert!(
            operator
                .check_reingest("orders", "orders.reingestion")
                .is_ok()
                && operator.can_stop()
        );
        assert!(operator.check_reingest("orders", "orders").is_err());
        assert_eq!(
            keycloak.grants_of(&serde_json::json!({"roles": ["bss-operator"]})),
            Grants::default(),
            "roles elsewhere than the configured claim are ignored"
        );
        for bad in ["operator", "=read", "operator=superuser", "a=read;b"] {
            assert!(
                parse_role_scopes(bad)
                    .expect_err(bad)
                    .to_string()
                    .contains("RELOADER_JWT_ROLE_SCOPES"),
                "{bad}"
            );
        }
        let pattern = |p: &str| Pattern::parse(p).expect("pattern");
        assert!(pattern("orders.*").matches("orders.ingestion"));
        assert!(!pattern("orders.*").matches("orders"));
        assert!(pattern("*.reingestion").matches("orders.reingestion"));
        assert!(pattern("a*b*c").matches("a-x-b-y-c") && !pattern("a*b*c").matches("a-c"));
        assert!(pattern("exact").matches("exact") && !pattern("exact").matches("exact2"));
        assert!(Pattern::parse("with space").is_none());
    }
}
