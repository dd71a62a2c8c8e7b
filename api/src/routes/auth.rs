//! `/api/v1/auth/*`, `/api/v1/users/*` and `/.well-known/jwks.json` (seed section 4).

use advancia_auth::{AuthError, LoginOutcome, RegisterRequest, Role, UpdateUser};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::principal::{Client, Principal};
use crate::problem::{Problem, Result};

/// Roles that may read any user's profile.
const USER_READERS: &[Role] = &[Role::Admin, Role::ComplianceOfficer];

/// A display or key name as the auth service accepts it: 1 to 100 characters once trimmed,
/// none of them a control character, at least one not white space.
pub const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$";

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(example = "ada@example.org", format = Email, max_length = 254)]
    email: String,
    /// At least 12 characters (at most 1024 bytes), not the email address, not one
    /// character repeated: otherwise 422 `weak-password`.
    #[schema(example = "correct horse battery staple")]
    password: String,
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    display_name: String,
}

impl std::fmt::Debug for RegisterBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterBody")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Verify2faBody {
    challenge_token: String,
    /// A 6-digit TOTP code or a recovery code.
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CodeBody {
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SiwsChallengeBody {
    /// Base58 Solana address (a wallet's ed25519 key). One of this form that is no
    /// wallet's key (not 32 bytes, or off the curve) is refused with 422.
    #[schema(
        example = "9aE476sH92Vz7DMPyq5WLPkrKWivxeuTKEFKd2sZZcde",
        pattern = "^[1-9A-HJ-NP-Za-km-z]{32,44}$"
    )]
    address: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SiwsVerifyBody {
    /// The exact message returned by the challenge.
    message: String,
    /// Base58 ed25519 signature of the message bytes.
    signature: String,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateUserBody {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    display_name: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RolesBody {
    #[schema(inline, min_items = 1, value_type = Vec<RoleName>)]
    roles: Vec<String>,
}

/// A role's name, as `Role::parse` reads it (documentation of `Role`, which lives in a
/// crate without OpenAPI; a test keeps the two equal).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
enum RoleName {
    Patient,
    Provider,
    FacilityAdmin,
    ComplianceOfficer,
    Partner,
    Admin,
}

#[derive(Deserialize, ToSchema)]
pub struct ApiKeyBody {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    #[schema(min_items = 1, value_type = Vec<ScopeName>)]
    scopes: Vec<String>,
}

/// An API key scope, e.g. `indexer:read`, `analytics:read`.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9:._-]{1,64}$")]
#[allow(dead_code)]
struct ScopeName(String);

/// A new API key: shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    id: Uuid,
    /// Send as `X-Api-Key`.
    key: String,
}

/// The answer to every well-formed registration, whether or not the address already has
/// an account.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    /// Always `accepted`.
    status: &'static str,
    detail: &'static str,
}

const REGISTRATION_ACCEPTED: RegistrationAccepted = RegistrationAccepted {
    status: "accepted",
    detail: "if the address can be registered, the account exists now and you can sign in; \
             if it already has an account, its owner has been told by email",
};

/// Create an account (role `patient`). The answer is the same whether or not the address
/// already has an account, so it cannot be used to find out who has one; the owner of an
/// existing account is told by email instead.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 202, description = "Accepted (new account created, or the existing owner emailed)", body = RegistrationAccepted),
              (status = 400, description = "Invalid email or display name", body = Problem),
              (status = 422, description = "Password rejected by the policy", body = Problem)))]
pub async fn register(
    State(st): State<AppState>,
    JsonObject(b): JsonObject<RegisterBody>,
) -> Result<impl IntoResponse> {
    let email = b.email.clone();
    match st
        .auth
        .register(RegisterRequest {
            email: b.email,
            password: b.password,
            display_name: b.display_name,
        })
        .await
    {
        Ok(_) => {}
        Err(AuthError::EmailTaken) => tell_existing_owner(&st, &email).await,
        Err(e) => return Err(e.into()),
    }
    Ok((StatusCode::ACCEPTED, Json(REGISTRATION_ACCEPTED)))
}

/// Emails the owner of `email`'s account that someone tried to register it: at most once an
/// hour per account (the notification's source key), so the form cannot be used to flood a
/// mailbox. Failures are logged; the requester's answer must not change.
async fn tell_existing_owner(st: &AppState, email: &str) {
    let user = match st.auth.find_user_by_email(email).await {
        Ok(Some(u)) => u,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "registration notice: account lookup failed");
            return;
        }
    };
    let Some(address) = user.email.clone() else {
        return;
    };
    let hour = time::OffsetDateTime::now_utc().unix_timestamp() / 3600;
    let req = advancia_notifications::SendRequest {
        user_id: user.id,
        event_type: "account.registration_attempted".into(),
        data: serde_json::json!({ "email": address }),
        source_key: Some(format!("account.registration_attempted:{}:{hour}", user.id)),
        ..Default::default()
    };
    if let Err(e) = st.notifications.send_account_email(&req, &address).await {
        tracing::error!(error = %e, user_id = %user.id, "registration notice not queued");
    }
}

/// Password login. Answers tokens, or a 2FA challenge when the account has 2FA on.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "Tokens, or `{two_factor_required, challenge_token}`"),
              (status = 401, description = "Invalid credentials", body = Problem),
              (status = 429, description = "Locked out", body = Problem)))]
pub async fn login(
    State(st): State<AppState>,
    Client(client): Client,
    JsonObject(b): JsonObject<LoginBody>,
) -> Result<Response> {
    Ok(match st.auth.login(&b.email, &b.password, client).await? {
        LoginOutcome::Tokens(t) => Json(t).into_response(),
        LoginOutcome::TwoFactorRequired { challenge_token } => Json(serde_json::json!({
            "two_factor_required": true,
            "challenge_token": challenge_token,
        }))
        .into_response(),
    })
}

/// Second login step: TOTP or recovery code.
#[utoipa::path(post, path = "/api/v1/auth/verify-2fa", tag = "auth", request_body = Verify2faBody,
    responses((status = 200, description = "Tokens"),
              (status = 401, description = "Invalid code or challenge", body = Problem)))]
pub async fn verify_2fa(
    State(st): State<AppState>,
    JsonObject(b): JsonObject<Verify2faBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(st.auth.verify_2fa(&b.challenge_token, &b.code).await?))
}

/// Exchange a refresh token for a new pair (the old one is spent; reuse revokes the session).
#[utoipa::path(post, path = "/api/v1/auth/refresh-token", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "Tokens"),
              (status = 401, description = "Invalid, expired, revoked or reused token", body = Problem)))]
pub async fn refresh(
    State(st): State<AppState>,
    JsonObject(b): JsonObject<RefreshBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(st.auth.refresh(&b.refresh_token).await?))
}

/// Revoke the session the refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204, description = "Session revoked"),
              (status = 401, description = "Invalid, expired or revoked refresh token", body = Problem)))]
pub async fn logout(
    State(st): State<AppState>,
    JsonObject(b): JsonObject<RefreshBody>,
) -> Result<StatusCode> {
    st.auth.logout(&b.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrollment: secret, otpauth URI and recovery codes, shown once.
#[utoipa::path(post, path = "/api/v1/auth/2fa/enroll", tag = "auth",
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Enrollment"), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn enroll_2fa(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    Ok(Json(st.auth.enroll_2fa(claims.sub).await?))
}

/// Finish enrollment with a first valid code; 2FA is on from then on.
#[utoipa::path(post, path = "/api/v1/auth/2fa/confirm", tag = "auth", request_body = CodeBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 204, description = "2FA enabled"), (status = 401, body = Problem),
        (status = 409, description = "2FA is already on, or no enrollment was started", body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm_2fa(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<CodeBody>,
) -> Result<StatusCode> {
    let claims = p.require_role(&Role::ALL)?;
    st.auth.confirm_2fa(claims.sub, &b.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn 2FA off (needs a current code).
#[utoipa::path(post, path = "/api/v1/auth/2fa/disable", tag = "auth", request_body = CodeBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 204, description = "2FA disabled"), (status = 401, body = Problem),
        (status = 409, description = "2FA is not on", body = Problem)),
    security(("bearer" = [])))]
pub async fn disable_2fa(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<CodeBody>,
) -> Result<StatusCode> {
    let claims = p.require_role(&Role::ALL)?;
    st.auth.disable_2fa(claims.sub, &b.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign-In With Solana, step 1: the message the wallet must sign.
#[utoipa::path(post, path = "/api/v1/auth/siws/challenge", tag = "auth", request_body = SiwsChallengeBody,
    responses((status = 200, description = "Message, nonce, expiry"),
              (status = 400, description = "The address is not base58 of 32-44 characters", body = Problem),
              (status = 422, description = "The address is no wallet's key (not 32 bytes, or off the curve)", body = Problem)))]
pub async fn siws_challenge(
    State(st): State<AppState>,
    JsonObject(b): JsonObject<SiwsChallengeBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(st.auth.siws_challenge(&b.address).await?))
}

/// Sign-In With Solana, step 2: the signed message in, tokens out.
#[utoipa::path(post, path = "/api/v1/auth/siws/verify", tag = "auth", request_body = SiwsVerifyBody,
    responses((status = 200, description = "Tokens"),
              (status = 401, description = "Not a message we issued (malformed, unknown or used nonce, other domain, expired) or a signature that does not verify", body = Problem)))]
pub async fn siws_verify(
    State(st): State<AppState>,
    Client(client): Client,
    JsonObject(b): JsonObject<SiwsVerifyBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        st.auth
            .siws_verify_with_client(&b.message, &b.signature, client)
            .await?,
    ))
}

/// A user's profile: the user themself, admins and compliance officers.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "User"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_self_or(id, USER_READERS)?;
    Ok(Json(st.auth.get_user(id).await?))
}

/// Update display name or email: the user themself or an admin.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUserBody,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "User"), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<UpdateUserBody>,
) -> Result<impl IntoResponse> {
    p.require_self_or(id, &[Role::Admin])?;
    let update = UpdateUser {
        display_name: b.display_name,
        email: b.email,
    };
    Ok(Json(st.auth.update_user(id, update).await?))
}

/// Replace a user's roles (admins only).
#[utoipa::path(post, path = "/api/v1/users/{id}/roles", tag = "users", request_body = RolesBody,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "User with new roles"), (status = 403, body = Problem),
        (status = 422, description = "An admin removing their own admin role", body = Problem)),
    security(("bearer" = [])))]
pub async fn assign_roles(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<RolesBody>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&[Role::Admin])?;
    let roles = b
        .roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                advancia_auth::AuthError::InvalidInput(format!("unknown role `{r}`")).into()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(st.auth.assign_roles(claims, id, roles).await?))
}

/// Create a partner API key for the user (shown once). Partners for themselves; admins for anyone.
#[utoipa::path(post, path = "/api/v1/users/{id}/api-keys", tag = "users", request_body = ApiKeyBody,
    params(("id" = Uuid, Path, description = "Owner user id")),
    responses((status = 201, description = "The key, shown only here", body = ApiKeyCreated), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_api_key(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<ApiKeyBody>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&[Role::Partner, Role::Admin])?;
    if claims.sub != id && !claims.has_role(Role::Admin) {
        return Err(Problem::forbidden());
    }
    let (key_id, key) = st.auth.create_api_key(id, &b.name, b.scopes).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            id: key_id.0,
            key: key.expose().to_owned(),
        }),
    ))
}

/// List a user's API keys (metadata only).
#[utoipa::path(get, path = "/api/v1/users/{id}/api-keys", tag = "users",
    params(("id" = Uuid, Path, description = "Owner user id")),
    responses((status = 200, description = "Keys"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_self_or(id, &[Role::Admin])?;
    Ok(Json(st.auth.list_api_keys(id).await?))
}

/// Revoke an API key: its owner or an admin.
#[utoipa::path(delete, path = "/api/v1/users/{id}/api-keys/{key_id}", tag = "users",
    params(("id" = Uuid, Path, description = "Owner user id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_api_key(
    State(st): State<AppState>,
    p: Principal,
    Path((id, key_id)): Path<(Uuid, String)>,
) -> Result<StatusCode> {
    p.require_self_or(id, &[Role::Admin])?;
    let claims = p.require_role(&Role::ALL)?;
    let key_id = key_id.parse()?;
    st.auth.revoke_api_key(claims, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Public keys that verify access tokens (RFC 7517), including retired ones.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK set")))]
pub async fn jwks(State(st): State<AppState>) -> impl IntoResponse {
    Json(st.auth.jwks())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/refresh-token", post(refresh))
        .route("/api/v1/auth/verify-2fa", post(verify_2fa))
        .route("/api/v1/auth/2fa/enroll", post(enroll_2fa))
        .route("/api/v1/auth/2fa/confirm", post(confirm_2fa))
        .route("/api/v1/auth/2fa/disable", post(disable_2fa))
        .route("/api/v1/auth/siws/challenge", post(siws_challenge))
        .route("/api/v1/auth/siws/verify", post(siws_verify))
        .route("/api/v1/users/{id}", get(get_user).put(update_user))
        .route("/api/v1/users/{id}/roles", post(assign_roles))
        .route(
            "/api/v1/users/{id}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route(
            "/api/v1/users/{id}/api-keys/{key_id}",
            delete(revoke_api_key),
        )
        .route("/.well-known/jwks.json", get(jwks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of<T: utoipa::PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap_or_default()
    }

    #[test]
    fn documented_roles_are_the_roles() {
        let doc = schema_of::<RoleName>();
        let documented: Vec<&str> = doc["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(documented, roles);
    }

    #[test]
    fn documented_address_syntax_is_the_auth_service_s() {
        let doc = schema_of::<SiwsChallengeBody>();
        assert_eq!(
            doc["properties"]["address"]["pattern"],
            advancia_auth::siws::ADDRESS_PATTERN
        );
        let doc = schema_of::<RegisterBody>();
        assert_eq!(doc["properties"]["display_name"]["pattern"], NAME_PATTERN);
    }
}
