//! Who is calling: the identify layer verifies a bearer token or an API key once per
//! request and records the result; handlers take a [`Principal`] (401 when absent or
//! invalid) and check roles (403). Identification never rejects by itself, so requests
//! with bad credentials still count against the client address's rate limit.

use advancia_auth::{ApiKeyPrincipal, AuthError, AuthService, Claims, ClientInfo, Role};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use crate::gateway::{API_KEY_HEADER, Identity, client_ip_from};
use crate::problem::Problem;

/// The verified caller.
#[derive(Debug, Clone)]
pub enum Principal {
    User(Claims),
    ApiKey(ApiKeyPrincipal),
}

/// Recorded by the identify layer when presented credentials did not verify.
#[derive(Debug, Clone)]
struct CredentialError(String);

impl Principal {
    /// The user a request acts for (an API key acts for its owner).
    pub fn user_id(&self) -> uuid::Uuid {
        match self {
            Principal::User(c) => c.sub,
            Principal::ApiKey(k) => k.owner,
        }
    }

    pub fn claims(&self) -> Option<&Claims> {
        match self {
            Principal::User(c) => Some(c),
            Principal::ApiKey(_) => None,
        }
    }

    /// A user token holding one of `roles`; API keys are refused (they carry scopes).
    pub fn require_role(&self, roles: &[Role]) -> Result<&Claims, Problem> {
        match self {
            Principal::User(c) if c.has_any(roles) => Ok(c),
            _ => Err(Problem::forbidden()),
        }
    }

    /// The user themself, or a user with one of `roles`.
    pub fn require_self_or(&self, user: uuid::Uuid, roles: &[Role]) -> Result<(), Problem> {
        match self {
            Principal::User(c) if c.sub == user || c.has_any(roles) => Ok(()),
            _ => Err(Problem::forbidden()),
        }
    }

    /// An API key with `scope`, or a user holding one of `roles`.
    pub fn require_scope_or_role(&self, scope: &str, roles: &[Role]) -> Result<(), Problem> {
        match self {
            Principal::ApiKey(k) if k.has_scope(scope) => Ok(()),
            Principal::User(c) if c.has_any(roles) => Ok(()),
            _ => Err(Problem::forbidden()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        match parts.extensions.get::<CredentialError>() {
            Some(CredentialError(kind)) if kind == "token-expired" => {
                Err(AuthError::TokenExpired.into())
            }
            Some(CredentialError(kind)) if kind == "invalid-api-key" => {
                Err(AuthError::InvalidApiKey.into())
            }
            _ => Err(AuthError::InvalidToken.into()),
        }
    }
}

#[derive(Clone)]
pub struct IdentifyState {
    pub auth: AuthService,
    pub trusted_proxy_hops: usize,
}

/// Where the request came from (address and user agent), for sessions and audit events.
pub struct Client(pub ClientInfo);

impl FromRequestParts<crate::AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(ClientInfo {
            ip: client_ip_from(&parts.extensions, &parts.headers, state.trusted_proxy_hops),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }))
    }
}

/// Verifies `Authorization: Bearer` or `X-Api-Key` and records the principal.
pub async fn identify(State(st): State<IdentifyState>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let api_key = req
        .headers()
        .get(&API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let outcome = if let Some(token) = bearer {
        st.auth.verify_access_token_now(&token).map(Principal::User)
    } else if let Some(key) = api_key {
        st.auth.verify_api_key(&key).await.map(Principal::ApiKey)
    } else {
        return next.run(req).await;
    };
    match outcome {
        Ok(p) => {
            let identity = match &p {
                Principal::User(c) => Identity::User(c.sub.to_string()),
                Principal::ApiKey(k) => Identity::ApiKey(k.key_id.to_string()),
            };
            req.extensions_mut().insert(identity);
            req.extensions_mut().insert(p);
        }
        Err(e) => {
            if e.is_internal() {
                tracing::error!(error = %e, "credential verification failed");
            }
            req.extensions_mut()
                .insert(CredentialError(e.kind().to_owned()));
        }
    }
    next.run(req).await
}
