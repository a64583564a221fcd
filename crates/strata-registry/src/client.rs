//! The HTTP side of the distribution protocol: which scheme and host a registry is reached
//! at, authentication (anonymous, basic, bearer tokens cached per scope), retries with
//! backoff, and turning error answers into [`RegistryError`]s that show the registry's
//! `errors[].code: message`.
//!
//! Every request goes through [`Client::send`], which takes a closure building the request so
//! that it can be rebuilt after a 401 (new token) or a transient failure (retry). TLS is
//! rustls on the `ring` provider with the system's trust roots; plain HTTP is only used for
//! loopback registries and those named insecure, after an HTTPS attempt fails, as docker does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::challenge::{self, Challenge};
use crate::credentials::{Credential, DockerConfig};
use crate::error::{ApiError, RegistryError, Result, parse_error_body};

/// The host serving a registry's API: Docker Hub's name `docker.io` is served elsewhere.
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Whether `registry` (`host[:port]`) is on the loopback network, where docker allows plain
/// HTTP without configuration.
pub fn is_loopback(registry: &str) -> bool {
    if let Ok(ip) = registry.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                registry
            }
        }),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// How a [`Client`] is set up.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) that may be reached over plain HTTP or with an unverified
    /// certificate, in addition to loopback ones.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from; `None` means anonymous unless `credentials` has an entry.
    pub docker_config: Option<DockerConfig>,
    /// Credentials given explicitly (e.g. by `login`), taking precedence over the config.
    pub credentials: HashMap<String, Credential>,
    /// Retries after a transient failure (connection error, 429, 5xx).
    pub max_retries: u32,
    /// First backoff delay; doubled on each retry.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (not a limit on the whole transfer).
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            docker_config: None,
            credentials: HashMap::new(),
            max_retries: 4,
            retry_delay: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// Registries allowed over plain HTTP (comma-separated `host[:port]`), besides loopback ones.
pub const INSECURE_REGISTRIES_ENV: &str = "STRATA_INSECURE_REGISTRIES";

impl ClientOptions {
    /// Options as a strata process uses them: credentials from `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json` (a missing file means anonymous access), insecure registries
    /// from `$STRATA_INSECURE_REGISTRIES`.
    pub fn from_environment() -> Result<ClientOptions> {
        let insecure_registries = std::env::var(INSECURE_REGISTRIES_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        Ok(ClientOptions {
            insecure_registries,
            docker_config: Some(DockerConfig::load_default()?),
            ..ClientOptions::default()
        })
    }
}

/// The authentication a registry asked for, learned from its first 401.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthScheme {
    /// Not known yet, or the registry never asked.
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct Token {
    value: String,
    expires: Instant,
}

#[derive(Debug)]
struct RegistryState {
    base: Option<Url>,
    scheme: AuthScheme,
    /// Bearer tokens by the space-joined sorted scopes they were issued for.
    tokens: HashMap<String, Token>,
    /// The token server's refusal of our credentials: they will not get better within this
    /// process, so concurrent and later requests fail at once instead of asking again.
    refused: Option<(bool, Vec<ApiError>)>,
}

/// A scope string as the token protocol names it: `repository:<name>:<actions>`.
pub fn repository_scope(repository: &str, push: bool) -> String {
    format!(
        "repository:{repository}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

/// A distribution-protocol HTTP client shared by every transfer of one strata process.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Used only for registries allowed to be insecure: certificate checks disabled.
    insecure_http: reqwest::Client,
    options: ClientOptions,
    state: Mutex<HashMap<String, RegistryState>>,
    /// Serializes registry probes and token requests so concurrent transfers share them.
    probe: tokio::sync::Mutex<()>,
    tokens: tokio::sync::Mutex<()>,
}

fn tls_config(verify: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls(e.to_string()))?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                rustls::crypto::ring::default_provider(),
            )))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for cert in loaded.certs {
        // A malformed system certificate is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any server certificate: only for registries the user marked insecure.
#[derive(Debug)]
struct NoVerification(rustls::crypto::CryptoProvider);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn build_http(options: &ClientOptions, verify: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls_config(verify)?)
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        // Redirects (blob storage) are followed; reqwest drops Authorization when the host
        // changes, so a token never leaks to the storage backend.
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(|e| RegistryError::Tls(e.to_string()))
}

/// Reads at most `limit` bytes of an error body (registries' are small; a proxy's may not be).
async fn error_body(response: Response) -> Vec<ApiError> {
    let mut response = response;
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    parse_error_body(&body)
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client> {
        let http = build_http(&options, true)?;
        let insecure_http = build_http(&options, false)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                insecure_http,
                options,
                state: Mutex::new(HashMap::new()),
                probe: tokio::sync::Mutex::new(()),
                tokens: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self
                .inner
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry)
    }

    fn http(&self, registry: &str) -> &reqwest::Client {
        if self.is_insecure(registry) {
            &self.inner.insecure_http
        } else {
            &self.inner.http
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RegistryState>> {
        // A panic while holding the lock cannot leave the maps inconsistent (each update is a
        // single insert), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.inner.options.credentials.get(registry) {
            return Ok(Some(c.clone()));
        }
        match &self.inner.options.docker_config {
            Some(config) => config.credentials(registry),
            None => Ok(None),
        }
    }

    /// The base URL of `registry` (`https://host/` or, for insecure registries that do not
    /// speak TLS, `http://host/`), probed once with `GET /v2/` and remembered.
    pub async fn base_url(&self, registry: &str) -> Result<Url> {
        if let Some(base) = self.lock().get(registry).and_then(|s| s.base.clone()) {
            return Ok(base);
        }
        // One probe per registry even when many transfers start at once.
        let _probing = self.inner.probe.lock().await;
        if let Some(base) = self.lock().get(registry).and_then(|s| s.base.clone()) {
            return Ok(base);
        }
        let host = api_host(registry);
        let https = parse_url(&format!("https://{host}/"))?;
        let ping = |base: &Url| {
            base.join("v2/").map_err(|_| RegistryError::InvalidUrl {
                url: base.to_string(),
            })
        };
        // Docker's ping: `GET /v2/` tells which scheme answers and, on a 401, how to
        // authenticate, before any real request races to find out.
        let (base, answer) = match self.http(registry).get(ping(&https)?).send().await {
            Ok(response) => (https, Some(response)),
            Err(e) if self.is_insecure(registry) => {
                tracing::debug!(registry, error = %e, "https probe failed, using plain http");
                let http = parse_url(&format!("http://{host}/"))?;
                let answer = self.http(registry).get(ping(&http)?).send().await.ok();
                (http, answer)
            }
            // A secure registry that cannot be reached: the real request will report it.
            Err(_) => (https, None),
        };
        let mut scopes = Vec::new();
        if let Some(response) = answer.filter(|r| r.status() == StatusCode::UNAUTHORIZED) {
            self.learn_challenge(registry, &response, &mut scopes, None);
        }
        self.state_mut(registry, |state| state.base = Some(base.clone()));
        Ok(base)
    }

    fn state_mut<T>(&self, registry: &str, edit: impl FnOnce(&mut RegistryState) -> T) -> T {
        let mut state = self.lock();
        let entry = state
            .entry(registry.to_string())
            .or_insert_with(|| RegistryState {
                base: None,
                scheme: AuthScheme::Anonymous,
                tokens: HashMap::new(),
                refused: None,
            });
        edit(entry)
    }

    /// `base_url(registry)` joined with `path` (which starts without a slash, e.g. `v2/x/...`),
    /// or an absolute URL a registry handed out (`Location`), resolved against the base.
    pub async fn url(&self, registry: &str, path: &str) -> Result<Url> {
        let base = self.base_url(registry).await?;
        base.join(path).map_err(|_| RegistryError::InvalidUrl {
            url: format!("{base}{path}"),
        })
    }

    /// The `Authorization` header for a request needing `scopes`, fetching a token if needed.
    async fn authorization(
        &self,
        registry: &str,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>> {
        let scheme = self
            .lock()
            .get(registry)
            .map(|s| s.scheme.clone())
            .unwrap_or(AuthScheme::Anonymous);
        match scheme {
            AuthScheme::Anonymous => Ok(None),
            AuthScheme::Basic => match self.credential(registry)? {
                Some(c) => Ok(Some(basic_header(&c))),
                None => Ok(None),
            },
            AuthScheme::Bearer { realm, service } => {
                let key = scope_key(scopes);
                let token = match self.cached_token(registry, &key)? {
                    Some(token) => token,
                    None => {
                        // Concurrent transfers needing the same scopes share one request.
                        let _fetching = self.inner.tokens.lock().await;
                        match self.cached_token(registry, &key)? {
                            Some(token) => token,
                            None => {
                                let fetched = self
                                    .fetch_token(registry, &realm, service.as_deref(), scopes)
                                    .await;
                                let token = match fetched {
                                    Ok(token) => token,
                                    Err(RegistryError::Unauthorized {
                                        registry,
                                        had_credentials,
                                        errors,
                                    }) => {
                                        let refusal = (had_credentials, errors.clone());
                                        self.state_mut(&registry, |s| s.refused = Some(refusal));
                                        return Err(RegistryError::Unauthorized {
                                            registry,
                                            had_credentials,
                                            errors,
                                        });
                                    }
                                    Err(e) => return Err(e),
                                };
                                let value = token.value.clone();
                                self.state_mut(registry, |s| s.tokens.insert(key, token));
                                value
                            }
                        }
                    }
                };
                let mut header =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        RegistryError::TokenMalformed {
                            realm,
                            detail: "token is not a valid header value".into(),
                        }
                    })?;
                header.set_sensitive(true);
                Ok(Some(header))
            }
        }
    }

    /// A valid cached token for the scope key, or the remembered refusal of our credentials.
    fn cached_token(&self, registry: &str, key: &str) -> Result<Option<String>> {
        let state = self.lock();
        let Some(state) = state.get(registry) else {
            return Ok(None);
        };
        if let Some((had_credentials, errors)) = &state.refused {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                had_credentials: *had_credentials,
                errors: errors.clone(),
            });
        }
        Ok(state
            .tokens
            .get(key)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone()))
    }

    /// Gets a bearer token for `scopes` from `realm` (docker's token protocol): a `GET` with
    /// basic credentials or anonymously, or the OAuth2 refresh-token `POST` for identity tokens.
    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token> {
        let realm_url = parse_url(realm)?;
        let credential = self.credential(registry)?;
        let http = &self.inner.http;
        let realm_http = if realm_url.host_str().is_some_and(is_loopback) {
            &self.inner.insecure_http
        } else {
            http
        };
        let request = match &credential {
            Some(c) if c.is_identity_token() => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.secret.as_str()),
                    ("client_id", "strata"),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let joined = scopes.join(" ");
                if !scopes.is_empty() {
                    form.push(("scope", &joined));
                }
                realm_http.post(realm_url.clone()).form(&form)
            }
            _ => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(service) = service {
                    query.push(("service", service));
                }
                for scope in scopes {
                    query.push(("scope", scope));
                }
                let request = realm_http.get(realm_url.clone()).query(&query);
                match &credential {
                    Some(c) => request.header(AUTHORIZATION, basic_header(c)),
                    None => request,
                }
            }
        };
        let response = request.send().await.map_err(|source| RegistryError::Http {
            method: "GET",
            url: realm_url.to_string(),
            source: source.without_url(),
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                had_credentials: credential.is_some(),
                errors: error_body(response).await,
            });
        }
        if !status.is_success() {
            return Err(RegistryError::TokenStatus {
                realm: realm.to_string(),
                status: status.as_u16(),
                errors: error_body(response).await,
            });
        }
        let body = read_limited(response, 1 << 20, realm).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::TokenMalformed {
                realm: realm.to_string(),
                detail: e.to_string(),
            })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::TokenMalformed {
                realm: realm.to_string(),
                detail: "neither token nor access_token".into(),
            })?;
        // Docker's default lifetime is 60 s; renew a little early so a request never carries a
        // token that expires in flight.
        let lifetime = parsed.expires_in.unwrap_or(60).max(10);
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime - lifetime / 10),
        })
    }

    /// Records what a 401 taught us about `registry`; false if it offered nothing usable.
    /// `sent_token` is the scope key of the token the failed request carried: that token is
    /// dropped (expired or too narrow); other cached tokens stay unless the scheme changed.
    fn learn_challenge(
        &self,
        registry: &str,
        response: &Response,
        scopes: &mut Vec<String>,
        sent_token: Option<&str>,
    ) -> bool {
        let parsed = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(challenge::parse);
        let Some(challenge) = parsed else {
            return false;
        };
        let scheme = match challenge {
            Challenge::Basic => AuthScheme::Basic,
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                if let Some(scope) = scope
                    && !scope.is_empty()
                    && !scopes_cover(scopes, &scope)
                {
                    scopes.push(scope);
                }
                AuthScheme::Bearer { realm, service }
            }
        };
        self.state_mut(registry, |state| {
            if state.scheme != scheme {
                state.scheme = scheme;
                state.tokens.clear();
                state.refused = None;
            } else if let Some(key) = sent_token {
                state.tokens.remove(key);
            }
        });
        true
    }

    /// Sends a request built by `make` (called again for every attempt), authenticating for
    /// `scopes` and retrying transient failures. Any status is returned except 401 (which
    /// becomes [`RegistryError::Unauthorized`] once re-authentication did not help), 429 and
    /// 5xx (returned only after the retries ran out).
    pub async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        method: &'static str,
        url: &Url,
        make: impl Fn(&reqwest::Client) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut scopes = scopes.to_vec();
        let mut reauthenticated = false;
        let mut attempt = 0;
        // Credentials go only to the registry itself, never to another host a `Location`
        // header pointed at.
        let same_origin = self.base_url(registry).await?.origin() == url.origin();
        loop {
            let auth = if same_origin {
                self.authorization(registry, &scopes).await?
            } else {
                None
            };
            let sent_token = auth.as_ref().map(|_| scope_key(&scopes));
            let mut request = make(self.http(registry))?;
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth);
            }
            let outcome = request.send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(source) => {
                    let error = RegistryError::Http {
                        method,
                        url: redact(url),
                        source: source.without_url(),
                    };
                    if error.is_transient() && attempt < self.inner.options.max_retries {
                        self.backoff(attempt, None, registry, &error).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                let had_auth = self
                    .lock()
                    .get(registry)
                    .is_some_and(|s| !matches!(s.scheme, AuthScheme::Anonymous));
                if !reauthenticated
                    && self.learn_challenge(registry, &response, &mut scopes, sent_token.as_deref())
                {
                    reauthenticated = true;
                    // Basic auth without credentials cannot succeed: say so instead of retrying.
                    let basic_without_credentials = matches!(
                        self.lock().get(registry).map(|s| &s.scheme),
                        Some(AuthScheme::Basic)
                    ) && self.credential(registry)?.is_none();
                    if !basic_without_credentials {
                        continue;
                    }
                }
                return Err(RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    had_credentials: had_auth && self.credential(registry)?.is_some(),
                    errors: error_body(response).await,
                });
            }
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            if transient && attempt < self.inner.options.max_retries {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let error = RegistryError::Status {
                    method,
                    url: redact(url),
                    status: status.as_u16(),
                    errors: vec![],
                };
                self.backoff(attempt, retry_after, registry, &error).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    async fn backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        registry: &str,
        error: &RegistryError,
    ) {
        let exponential = self.inner.options.retry_delay * 2u32.saturating_pow(attempt);
        // A server asking for a long pause is obeyed up to a minute; beyond that, fail.
        let delay = retry_after.map_or(exponential, |d| d.min(Duration::from_secs(60)));
        tracing::warn!(registry, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, %error, "retrying");
        tokio::time::sleep(delay).await;
    }

    /// Turns a non-success answer into an error carrying the registry's `errors[]`.
    pub async fn check(
        &self,
        response: Response,
        method: &'static str,
        url: &Url,
    ) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let errors = error_body(response).await;
        if status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied {
                registry: url.host_str().unwrap_or_default().to_string(),
                errors,
            });
        }
        Err(RegistryError::Status {
            method,
            url: redact(url),
            status: status.as_u16(),
            errors,
        })
    }

    /// Checks that `registry` answers the distribution API and that the configured credentials
    /// are accepted (what `login` verifies): `GET /v2/`, authenticating as the registry asks.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let url = self.url(registry, "v2/").await?;
        let response = self
            .send(registry, &[], "GET", &url, |http| Ok(http.get(url.clone())))
            .await?;
        self.check(response, "GET", &url).await.map(|_| ())
    }

    /// Runs `request` as `method` against `url` within `Method` semantics; a convenience for
    /// requests without a body.
    pub(crate) async fn simple(
        &self,
        registry: &str,
        scopes: &[String],
        method: Method,
        url: &Url,
        headers: &[(&'static str, &str)],
    ) -> Result<Response> {
        let name = method_name(&method);
        self.send(registry, scopes, name, url, |http| {
            let mut request = http.request(method.clone(), url.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            Ok(request)
        })
        .await
    }
}

pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

fn parse_url(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|_| RegistryError::InvalidUrl {
        url: url.to_string(),
    })
}

/// A URL for messages: without userinfo or query (upload URLs carry opaque state, blob
/// storage redirects carry signatures).
pub(crate) fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.to_string()
}

fn basic_header(c: &Credential) -> HeaderValue {
    let encoded = BASE64.encode(format!("{}:{}", c.username, c.secret));
    // Base64 output is always a valid header value.
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or(HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// Whether `scopes` already grant `wanted` (same resource, a superset of its actions).
fn scopes_cover(scopes: &[String], wanted: &str) -> bool {
    let Some((resource, actions)) = wanted.rsplit_once(':') else {
        return scopes.iter().any(|s| s == wanted);
    };
    scopes.iter().any(|s| {
        s.rsplit_once(':').is_some_and(|(r, have)| {
            r == resource && actions.split(',').all(|a| have.split(',').any(|h| h == a))
        })
    })
}

fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut response: Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(RegistryError::ManifestTooLarge {
                        reference: what.to_string(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(source) => {
                return Err(RegistryError::Http {
                    method: "GET",
                    url: what.to_string(),
                    source: source.without_url(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("LOCALHOST:5000", true),
            ("127.0.0.1:5000", true),
            ("127.3.4.5", true),
            ("[::1]:5000", true),
            ("::1", true),
            ("registry.example:5000", false),
            ("10.0.0.1:5000", false),
            ("localhost.example", false),
        ];
        for (registry, expected) in cases {
            assert_eq!(is_loopback(registry), expected, "{registry}");
        }
    }

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn scope_coverage() {
        let ours = vec![
            "repository:a/b:pull,push".to_string(),
            "repository:c:pull".to_string(),
        ];
        let cases = [
            ("repository:a/b:pull", true),
            ("repository:a/b:push,pull", true),
            ("repository:c:pull", true),
            ("repository:c:push", false),
            ("repository:a:pull", false),
            ("registry:catalog:*", false),
        ];
        for (wanted, expected) in cases {
            assert_eq!(scopes_cover(&ours, wanted), expected, "{wanted}");
        }
    }

    #[test]
    fn scope_keys_ignore_order_and_duplicates() {
        let a = scope_key(&["repository:b:pull".into(), "repository:a:pull,push".into()]);
        let b = scope_key(&[
            "repository:a:pull,push".into(),
            "repository:b:pull".into(),
            "repository:b:pull".into(),
        ]);
        assert_eq!(a, b);
    }

    #[test]
    fn redacted_urls_drop_query_and_userinfo() {
        let url = Url::parse(
            "https://u:p@h.example/v2/x/blobs/uploads/abc?_state=secret&digest=sha256:1",
        )
        .expect("url");
        assert_eq!(redact(&url), "https://h.example/v2/x/blobs/uploads/abc");
    }
}
