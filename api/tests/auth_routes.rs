#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Auth and user routes through the full gateway against real Postgres: every flow,
//! the specific error of each failure, and 403 for a wrong role on every guarded route.

use advancia_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::{TestApi as Api, kind};

impl Api {
    /// Registers and logs in; returns (user id, access token, refresh token).
    async fn user(&self, email: &str) -> (String, String, String) {
        let (s, u) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery", "display_name": "T"}),
            )
            .await;
        assert_eq!(s, 202, "{u}");
        let id = self
            .state
            .auth
            .find_user_by_email(email)
            .await
            .unwrap()
            .unwrap()
            .id;
        let (s, t) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(s, 200, "{t}");
        (
            id.to_string(),
            t["access_token"].as_str().unwrap().to_owned(),
            t["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A user with `role` (set through the operator path, as bootstrapping does).
    async fn user_with(&self, email: &str, role: Role) -> (String, String) {
        let (id, _, _) = self.user(email).await;
        self.state
            .auth
            .set_roles_as_operator(id.parse().unwrap(), vec![role])
            .await
            .unwrap();
        let (_, t) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        (id, t["access_token"].as_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn register_login_profile_and_errors() {
    let api = Api::start().await;
    let (id, access, _) = api.user("ada@example.org").await;

    // An address that has an account gets the very answer a new one gets.
    let (s, fresh) = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "new@example.org", "password": "another long one", "display_name": "x"}),
        )
        .await;
    let (s2, dup) = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "ADA@example.org", "password": "another long one", "display_name": "x"}),
        )
        .await;
    assert_eq!(
        (s, s2),
        (reqwest::StatusCode::ACCEPTED, reqwest::StatusCode::ACCEPTED)
    );
    assert_eq!(fresh, dup);

    let (s, weak) = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "b@example.org", "password": "short", "display_name": "x"}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&weak)), (422, "weak-password"));

    let (s, bad) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ada@example.org", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&bad)), (401, "invalid-credentials"));

    let (s, me) = api
        .call(
            Method::GET,
            &format!("/api/v1/users/{id}"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(me["email"], "ada@example.org");
    assert_eq!(me["roles"], json!(["patient"]));

    let (s, upd) = api
        .call(
            Method::PUT,
            &format!("/api/v1/users/{id}"),
            Some(&access),
            Some(json!({"display_name": "Ada L."})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(upd["display_name"], "Ada L.");

    // No credentials, a garbage token, a token signed by someone else: 401 each.
    let resp = api
        .http
        .get(format!("{}/api/v1/users/{id}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/api/v1/users/{id}"),
            Some("not.a.jwt"),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "invalid-token"));
    // A well-formed token for the same user, signed by a key this API does not know.
    let foreign = common::state(api.state.pool.clone());
    let tokens = foreign
        .auth
        .login(
            "ada@example.org",
            "correct horse battery",
            advancia_auth::ClientInfo::default(),
        )
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/api/v1/users/{id}"),
            Some(tokens.access_token.expose()),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "invalid-token"));
}

#[tokio::test]
async fn refresh_rotation_reuse_detection_and_logout() {
    let api = Api::start().await;
    let (_, _, refresh1) = api.user("r@example.org").await;
    let (s, pair2) = api
        .post(
            "/api/v1/auth/refresh-token",
            None,
            json!({"refresh_token": refresh1}),
        )
        .await;
    assert_eq!(s, 200);
    let refresh2 = pair2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);

    // Presenting the spent token again revokes the whole family...
    let (s, p) = api
        .post(
            "/api/v1/auth/refresh-token",
            None,
            json!({"refresh_token": refresh1}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "token-reused"));
    // ...so the newest token of that family is dead too.
    let (s, _) = api
        .post(
            "/api/v1/auth/refresh-token",
            None,
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(s, 401);

    // Logout revokes a fresh session.
    let (_, t) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "r@example.org", "password": "correct horse battery"}),
        )
        .await;
    let refresh3 = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = api
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": refresh3}),
        )
        .await;
    assert_eq!(s, 204);
    let (s, p) = api
        .post(
            "/api/v1/auth/refresh-token",
            None,
            json!({"refresh_token": refresh3}),
        )
        .await;
    assert_eq!(s, 401, "{p}");
}

#[tokio::test]
async fn two_factor_enrollment_and_login() {
    let api = Api::start().await;
    let (_, access, _) = api.user("totp@example.org").await;
    let (s, enrollment) = api
        .post("/api/v1/auth/2fa/enroll", Some(&access), json!({}))
        .await;
    assert_eq!(s, 200, "{enrollment}");
    let secret = data_encoding::BASE32_NOPAD
        .decode(
            enrollment["secret_base32"]
                .as_str()
                .unwrap()
                .trim_end_matches('=')
                .as_bytes(),
        )
        .unwrap();
    let recovery = enrollment["recovery_codes"][0].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let (s, p) = api
        .post(
            "/api/v1/auth/2fa/confirm",
            Some(&access),
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(s, 401, "{p}");
    let code = advancia_auth::totp::code_at(&secret, now);
    let (s, p) = api
        .post(
            "/api/v1/auth/2fa/confirm",
            Some(&access),
            json!({"code": code}),
        )
        .await;
    assert_eq!(s, 204, "{p}");

    // Password alone no longer yields tokens.
    let login = || {
        api.post(
            "/api/v1/auth/login",
            None,
            json!({"email": "totp@example.org", "password": "correct horse battery"}),
        )
    };
    let (s, challenge) = login().await;
    assert_eq!(s, 200);
    assert_eq!(challenge["two_factor_required"], true);
    assert!(challenge.get("access_token").is_none());
    let ch = challenge["challenge_token"].as_str().unwrap();

    // The code already used for confirmation cannot be replayed.
    let (s, p) = api
        .post(
            "/api/v1/auth/verify-2fa",
            None,
            json!({"challenge_token": ch, "code": code}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "invalid-2fa-code"));
    let next = advancia_auth::totp::code_at(&secret, now + 30);
    let (s, tokens) = api
        .post(
            "/api/v1/auth/verify-2fa",
            None,
            json!({"challenge_token": ch, "code": next}),
        )
        .await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["access_token"].is_string());

    // A recovery code works once.
    let (_, challenge) = login().await;
    let ch = challenge["challenge_token"].as_str().unwrap();
    let (s, _) = api
        .post(
            "/api/v1/auth/verify-2fa",
            None,
            json!({"challenge_token": ch, "code": recovery}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, challenge) = login().await;
    let ch = challenge["challenge_token"].as_str().unwrap();
    let (s, _) = api
        .post(
            "/api/v1/auth/verify-2fa",
            None,
            json!({"challenge_token": ch, "code": recovery}),
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn sign_in_with_solana() {
    use ed25519_dalek::{Signer, SigningKey};
    let api = Api::start().await;
    let wallet = SigningKey::from_bytes(&[7u8; 32]);
    let address = bs58::encode(wallet.verifying_key().as_bytes()).into_string();
    let (s, ch) = api
        .post(
            "/api/v1/auth/siws/challenge",
            None,
            json!({"address": address}),
        )
        .await;
    assert_eq!(s, 200, "{ch}");
    let message = ch["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&address));

    let wrong = SigningKey::from_bytes(&[8u8; 32]).sign(message.as_bytes());
    let (s, p) = api
        .post(
            "/api/v1/auth/siws/verify",
            None,
            json!({"message": message, "signature": bs58::encode(wrong.to_bytes()).into_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "invalid-signature"));

    let sig = bs58::encode(wallet.sign(message.as_bytes()).to_bytes()).into_string();
    let (s, tokens) = api
        .post(
            "/api/v1/auth/siws/verify",
            None,
            json!({"message": message, "signature": sig}),
        )
        .await;
    assert_eq!(s, 200, "{tokens}");
    // The nonce is single-use.
    let (s, p) = api
        .post(
            "/api/v1/auth/siws/verify",
            None,
            json!({"message": message, "signature": sig}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (401, "invalid-nonce"));

    // The access token verifies against the published JWKS key id.
    let (_, jwks) = api
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let header = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let header: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(header.as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], kid);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
}

#[tokio::test]
async fn api_keys_for_partners() {
    let api = Api::start().await;
    let (partner, partner_token) = api.user_with("p@example.org", Role::Partner).await;
    let (patient, patient_token) = api.user_with("q@example.org", Role::Patient).await;

    let (s, p) = api
        .post(
            &format!("/api/v1/users/{patient}/api-keys"),
            Some(&patient_token),
            json!({"name": "x", "scopes": ["indexer:read"]}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "forbidden"));

    let (s, created) = api
        .post(
            &format!("/api/v1/users/{partner}/api-keys"),
            Some(&partner_token),
            json!({"name": "dashboards", "scopes": ["indexer:read"]}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();

    let (s, list) = api
        .call(
            Method::GET,
            &format!("/api/v1/users/{partner}/api-keys"),
            Some(&partner_token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        !list.to_string().contains(&key),
        "list must not show the secret"
    );

    // A valid key identifies the caller (user routes still need a user token: 403)...
    let with_key = |k: &str| {
        api.http
            .get(format!("{}/api/v1/users/{partner}", api.base))
            .header("x-api-key", k)
            .send()
    };
    assert_eq!(with_key(&key).await.unwrap().status(), 403);
    // ...and a revoked or made-up one does not.
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{partner}/api-keys/{key_id}"),
            Some(&partner_token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let r = with_key(&key).await.unwrap();
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.unwrap();
    assert_eq!(kind(&p), "invalid-api-key");
    assert_eq!(with_key("adv_nope_nope").await.unwrap().status(), 401);
}

#[tokio::test]
async fn wrong_role_gets_403_on_every_guarded_route() {
    let api = Api::start().await;
    let (admin, admin_token) = api.user_with("admin@example.org", Role::Admin).await;
    let (victim, _) = api.user_with("victim@example.org", Role::Partner).await;
    let (_, patient_token) = api.user_with("patient@example.org", Role::Patient).await;
    let (_, provider_token) = api.user_with("provider@example.org", Role::Provider).await;

    let key_id = "00000000000000000000000000000001";
    let guarded: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/users/{victim}"), None),
        (
            Method::PUT,
            format!("/api/v1/users/{victim}"),
            Some(json!({"display_name": "pwned"})),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{victim}/roles"),
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{victim}/api-keys"),
            Some(json!({"name": "x", "scopes": []})),
        ),
        (
            Method::GET,
            format!("/api/v1/users/{victim}/api-keys"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{victim}/api-keys/{key_id}"),
            None,
        ),
    ];
    for token in [&patient_token, &provider_token] {
        for (method, path, body) in &guarded {
            let (s, p) = api
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_eq!(
                (s.as_u16(), kind(&p)),
                (403, "forbidden"),
                "{method} {path}"
            );
        }
    }
    // The same routes work for an admin (the role check is not a blanket refusal).
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/users/{victim}"),
            Some(&admin_token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, u) = api
        .post(
            &format!("/api/v1/users/{victim}/roles"),
            Some(&admin_token),
            json!({"roles": ["partner", "provider"]}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let roles: Vec<&str> = u["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        roles.contains(&"partner") && roles.contains(&"provider"),
        "{roles:?}"
    );
    let (s, p) = api
        .post(
            &format!("/api/v1/users/{admin}/roles"),
            Some(&admin_token),
            json!({"roles": ["nonsense"]}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"));
}
