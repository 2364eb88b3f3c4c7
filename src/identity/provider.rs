//! The OpenID provider as jitgate sees it: discovery (cached), the
//! authorization URL with PKCE S256, state and nonce, and the code exchange
//! whose ID token is checked by openidconnect (signature against the JWKS,
//! iss, aud, exp, nonce, bounded clock skew). An ID token signed by a key
//! the cached JWKS does not hold makes one refetch of the JWKS (the IdP may
//! have rotated its keys); still unknown after that, it is refused.

use super::http::{HttpError, IdpHttp};
use crate::config::OidcConfig;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, JsonWebKeySet, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How far the IdP's clock and ours may disagree on iat/exp.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Discovery is redone after this long (new endpoints, new keys).
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Every claim of the ID token beyond the standard ones, so that any
/// configured username_claim and groups_claim can be read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Extra {
    #[serde(flatten)]
    pub rest: HashMap<String, serde_json::Value>,
}
impl AdditionalClaims for Extra {}

type Fields = IdTokenFields<
    Extra,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResp = StandardTokenResponse<Fields, CoreTokenType>;
type OidcClient = Client<
    Extra,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResp,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("IdP discovery failed: {0}")]
    Discovery(String),
    #[error("the IdP's configuration is unusable: {0}")]
    Config(String),
    #[error("the IdP refused the code: {0}")]
    Token(String),
    /// The ID token failed a check: signature, issuer, audience, expiry,
    /// nonce. Not the IdP's outage: a refusal.
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// A login started: what to keep (state, nonce, verifier) and where to go.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The verified ID token's claims jitgate uses.
pub struct Claims {
    pub username: Option<String>,
    pub groups: Vec<String>,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    at: Instant,
}

pub struct Provider {
    cfg: OidcConfig,
    http: IdpHttp,
    cache: Mutex<Option<Arc<Discovered>>>,
}

impl Provider {
    pub fn new(cfg: OidcConfig) -> Result<Provider, ProviderError> {
        let http = IdpHttp::new(cfg.ca_file.as_ref())?;
        Ok(Provider {
            cfg,
            http,
            cache: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    async fn discovered(&self, fresh: bool) -> Result<Arc<Discovered>, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache.as_ref() {
            if !fresh && d.at.elapsed() < DISCOVERY_TTL {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| ProviderError::Config(format!("issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| ProviderError::Discovery(error_chain(&e)))?;
        let d = Arc::new(Discovered {
            metadata,
            at: Instant::now(),
        });
        *cache = Some(d.clone());
        Ok(d)
    }

    /// Only the JWKS, refetched when an ID token names a key it lacks.
    async fn refetch_keys(&self) -> Result<Arc<Discovered>, ProviderError> {
        let mut cache = self.cache.lock().await;
        let Some(old) = cache.as_ref() else {
            drop(cache);
            return self.discovered(true).await;
        };
        let keys = JsonWebKeySet::fetch_async(old.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| ProviderError::Discovery(error_chain(&e)))?;
        let metadata = old.metadata.clone().set_jwks(keys);
        let d = Arc::new(Discovered {
            metadata,
            at: old.at,
        });
        *cache = Some(d.clone());
        Ok(d)
    }

    fn client(&self, d: &Discovered) -> Result<OidcClient, ProviderError> {
        let mut client: OidcClient = Client::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.cfg.client_id.clone()),
            None,
        );
        if let Some(var) = &self.cfg.client_secret_env {
            let secret = std::env::var(var)
                .map_err(|_| ProviderError::Config(format!("{var} is not set")))?;
            client = client.set_client_secret(ClientSecret::new(secret));
        }
        let redirect = RedirectUrl::new(self.cfg.redirect_url.clone())
            .map_err(|e| ProviderError::Config(format!("redirect_url: {e}")))?;
        Ok(client.set_redirect_uri(redirect))
    }

    /// The origin (scheme://host[:port]) of the IdP's authorization
    /// endpoint, where a login's browser goes.
    pub async fn authorization_origin(&self) -> Result<String, ProviderError> {
        let d = self.discovered(false).await?;
        let origin = d.metadata.authorization_endpoint().url().origin();
        if !origin.is_tuple() {
            return Err(ProviderError::Config(
                "the IdP's authorization endpoint has no origin".into(),
            ));
        }
        Ok(origin.ascii_serialization())
    }

    /// The IdP's authorization URL for a new login, with fresh state, nonce
    /// and PKCE (S256) verifier.
    pub async fn start(&self) -> Result<Started, ProviderError> {
        let d = self.discovered(false).await?;
        let client = self.client(&d)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let groups_scope = self.cfg.groups_claim.clone();
        let mut req = client
            .authorize_url(
                AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        // Many IdPs give the groups claim only with a scope of that name;
        // ask for it when the IdP lists it.
        let offered = d
            .metadata
            .scopes_supported()
            .is_some_and(|s| s.iter().any(|x| x.as_str() == groups_scope));
        if offered {
            req = req.add_scope(Scope::new(groups_scope));
        }
        let (url, state, nonce) = req.url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades the IdP's code (with the PKCE verifier) for tokens and checks
    /// the ID token; returns its user name and groups claims.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Claims, ProviderError> {
        let d = self.discovered(false).await?;
        let client = self.client(&d)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Token(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ProviderError::Token("no ID token in the IdP's answer".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |client: &OidcClient| {
            // Bounded skew both ways: a token expired up to CLOCK_SKEW ago
            // passes (exp is checked against now - skew), one issued more
            // than CLOCK_SKEW in the future does not.
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(allowed_algs())
                .set_time_fn(|| chrono::Utc::now() - skew())
                .set_issue_time_verifier_fn(|iat| {
                    if iat > chrono::Utc::now() + skew() {
                        Err("the ID token was issued in the future".to_string())
                    } else {
                        Ok(())
                    }
                });
            id_token.claims(&verifier, &nonce).map(|c| self.identity(c))
        };
        match verify(&client) {
            Ok(id) => Ok(id),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                let d = self.refetch_keys().await?;
                verify(&self.client(&d)?).map_err(|e| ProviderError::IdToken(e.to_string()))
            }
            Err(e) => Err(ProviderError::IdToken(e.to_string())),
        }
    }

    fn identity(&self, c: &openidconnect::IdTokenClaims<Extra, CoreGenderClaim>) -> Claims {
        let extra = &c.additional_claims().rest;
        let username = match self.cfg.username_claim.as_str() {
            "preferred_username" => c.preferred_username().map(|u| u.as_str().to_string()),
            "email" => c.email().map(|e| e.as_str().to_string()),
            "sub" => Some(c.subject().as_str().to_string()),
            other => extra
                .get(other)
                .and_then(|v| v.as_str())
                .map(str::to_string),
        };
        let groups = match extra.get(&self.cfg.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Claims { username, groups }
    }
}

fn skew() -> chrono::Duration {
    chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_else(|_| chrono::Duration::seconds(60))
}

/// Asymmetric signatures only: an HMAC "signature" keyed with the client
/// secret proves nothing about the IdP to a public client.
fn allowed_algs() -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm as A;
    vec![
        A::RsaSsaPkcs1V15Sha256,
        A::RsaSsaPkcs1V15Sha384,
        A::RsaSsaPkcs1V15Sha512,
        A::RsaSsaPssSha256,
        A::RsaSsaPssSha384,
        A::RsaSsaPssSha512,
        A::EcdsaP256Sha256,
        A::EcdsaP384Sha384,
        A::EdDsa,
    ]
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
