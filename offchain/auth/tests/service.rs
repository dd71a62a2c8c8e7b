//! AuthService against real Postgres (a fresh database per test).
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::sync::Arc;
use std::time::Duration;

use advancia_auth::{
    AuthConfig, AuthError, AuthService, ClientInfo, Ed25519Key, LoginOutcome, MIGRATIONS,
    ManualClock, PasswordHashing, RegisterRequest, Role, SigningKeys, TokenPair, TotpEncryptionKey,
    UpdateUser, User, totp,
};
use advancia_test_support::TestDb;
use advancia_test_support::sqlx;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use time::OffsetDateTime;
use time::macros::datetime;

const PW: &str = "correct horse battery staple";
const START: OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

struct Env {
    db: TestDb,
    auth: AuthService,
    clock: Arc<ManualClock>,
    keys: SigningKeys,
    config: AuthConfig,
}

fn config() -> AuthConfig {
    AuthConfig {
        password_hashing: PasswordHashing::INSECURE_FAST,
        ..AuthConfig::default()
    }
}

async fn env() -> Env {
    env_with(config()).await
}

async fn env_with(config: AuthConfig) -> Env {
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let clock = Arc::new(ManualClock::new(START));
    let keys = SigningKeys::generate();
    let auth =
        AuthService::with_clock(db.pool.clone(), config.clone(), keys.clone(), clock.clone())
            .unwrap();
    Env {
        db,
        auth,
        clock,
        keys,
        config,
    }
}

impl Env {
    /// A second service on the same database (e.g. another replica or config).
    fn service(&self, config: AuthConfig, keys: SigningKeys) -> AuthService {
        AuthService::with_clock(self.db.pool.clone(), config, keys, self.clock.clone()).unwrap()
    }

    async fn user(&self, email: &str) -> User {
        self.auth
            .register(RegisterRequest {
                email: email.into(),
                password: PW.into(),
                display_name: "Test User".into(),
            })
            .await
            .unwrap()
    }

    async fn login(&self, email: &str) -> TokenPair {
        match self.auth.login(email, PW, client()).await.unwrap() {
            LoginOutcome::Tokens(t) => t,
            other => panic!("expected tokens, got {other:?}"),
        }
    }

    async fn challenge(&self, email: &str) -> String {
        match self.auth.login(email, PW, client()).await.unwrap() {
            LoginOutcome::TwoFactorRequired { challenge_token } => {
                challenge_token.expose().to_owned()
            }
            other => panic!("expected a 2FA challenge, got {other:?}"),
        }
    }

    async fn admin(&self, email: &str) -> (User, advancia_auth::Claims) {
        let u = self.user(email).await;
        self.auth
            .set_roles_as_operator(u.id, vec![Role::Admin])
            .await
            .unwrap();
        let t = self.login(email).await;
        (
            u,
            self.auth
                .verify_access_token(t.access_token.expose())
                .await
                .unwrap(),
        )
    }

    /// Enrolls and confirms TOTP; returns the raw secret. Leaves the clock one
    /// step later so the confirmation code's step is not reused by accident.
    async fn with_2fa(&self, user: &User) -> (Vec<u8>, Vec<String>) {
        let e = self.auth.enroll_2fa(user.id).await.unwrap();
        let secret = data_encoding::BASE32_NOPAD
            .decode(e.secret_base32.expose().as_bytes())
            .unwrap();
        self.auth
            .confirm_2fa(user.id, &self.code(&secret))
            .await
            .unwrap();
        self.clock.advance(Duration::from_secs(30));
        (
            secret,
            e.recovery_codes
                .iter()
                .map(|c| c.expose().to_owned())
                .collect(),
        )
    }

    fn code(&self, secret: &[u8]) -> String {
        use advancia_auth::Clock as _;
        totp::code_at(secret, self.clock.now().unix_timestamp())
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent: Some("tests/1.0".into()),
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T, AuthError>) -> &'static str {
    r.unwrap_err().kind()
}

// ------------------------------------------------------------------ registration and users

#[tokio::test]
async fn register_normalises_email_and_defaults_to_patient() {
    let env = env().await;
    let u = env
        .auth
        .register(RegisterRequest {
            email: "  Alice@Example.COM ".into(),
            password: PW.into(),
            display_name: " Alice ".into(),
        })
        .await
        .unwrap();
    assert_eq!(u.email.as_deref(), Some("alice@example.com"));
    assert_eq!(u.display_name, "Alice");
    assert_eq!(u.roles, vec![Role::Patient]);
    assert!(!u.two_factor_enabled);
    assert_eq!(env.auth.get_user(u.id).await.unwrap(), u);

    let phc: String = sqlx::query_scalar("SELECT password_hash FROM auth.users WHERE id = $1")
        .bind(u.id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{phc}");
    assert!(!phc.contains(PW));
    assert_eq!(
        PasswordHashing::default(),
        PasswordHashing {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1
        }
    );
}

#[tokio::test]
async fn register_rejects_duplicate_email_weak_password_and_bad_input() {
    let env = env().await;
    env.user("bob@example.com").await;
    let reg = |email: &str, pw: &str, name: &str| RegisterRequest {
        email: email.into(),
        password: pw.into(),
        display_name: name.into(),
    };
    assert_eq!(
        kind(env.auth.register(reg("BOB@example.com", PW, "Bob")).await),
        "email-taken"
    );
    let e = env
        .auth
        .register(reg("carol@example.com", "short", "Carol"))
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("weak-password", 422));
    assert_eq!(
        kind(
            env.auth
                .register(reg("carol@example.com", "Carol@Example.com", "C"))
                .await
        ),
        "weak-password"
    );
    assert_eq!(
        kind(
            env.auth
                .register(reg("carolcarolcarol@example.com", "carolcarolcarol", "C"))
                .await
        ),
        "weak-password"
    );
    assert_eq!(
        kind(
            env.auth
                .register(reg("carol@example.com", "aaaaaaaaaaaaaaaa", "C"))
                .await
        ),
        "weak-password"
    );
    assert_eq!(
        kind(env.auth.register(reg("not-an-email", PW, "Carol")).await),
        "invalid-input"
    );
    assert_eq!(
        kind(env.auth.register(reg("carol@example.com", PW, "   ")).await),
        "invalid-input"
    );
    assert_eq!(
        kind(env.auth.get_user(uuid::Uuid::new_v4()).await),
        "not-found"
    );
}

#[tokio::test]
async fn update_user_changes_name_and_email_with_uniqueness() {
    let env = env().await;
    let a = env.user("a@example.com").await;
    env.user("b@example.com").await;
    let upd = env
        .auth
        .update_user(
            a.id,
            UpdateUser {
                display_name: Some("Alpha".into()),
                email: Some("A2@Example.com".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (upd.display_name.as_str(), upd.email.as_deref()),
        ("Alpha", Some("a2@example.com"))
    );
    env.login("a2@example.com").await;
    assert_eq!(
        kind(env.auth.login("a@example.com", PW, client()).await),
        "invalid-credentials"
    );
    let taken = env
        .auth
        .update_user(
            a.id,
            UpdateUser {
                email: Some("b@example.com".into()),
                display_name: None,
            },
        )
        .await;
    assert_eq!(kind(taken), "email-taken");
    assert_eq!(
        kind(
            env.auth
                .update_user(uuid::Uuid::new_v4(), UpdateUser::default())
                .await
        ),
        "not-found"
    );
}

// ------------------------------------------------------------------ login, lockout, access tokens

#[tokio::test]
async fn login_issues_verifiable_access_token() {
    let env = env().await;
    let u = env.user("dana@example.com").await;
    let t = env.login("DANA@example.com").await;
    assert_eq!(
        (t.token_type, t.expires_in, t.refresh_expires_in),
        ("Bearer", 900, 30 * 24 * 3600)
    );
    let c = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    assert_eq!(c.sub, u.id);
    assert_eq!(c.roles, vec![Role::Patient]);
    assert_eq!(
        (c.iss.as_str(), c.aud.as_str()),
        ("advancia", "advancia-api")
    );
    assert_eq!(c.iat, START.unix_timestamp());
    assert_eq!(c.exp - c.iat, 900);
    assert_eq!(c.kid, env.keys.active_kid());
    assert_eq!(c.sid, Some(t.session_id));
    assert_eq!(c.amr, vec!["pwd".to_owned()]);
    assert!(c.has_any(&[Role::Admin, Role::Patient]) && !c.has_any(&[Role::Admin, Role::Provider]));
    c.require_any(&[Role::Patient]).unwrap();
    assert_eq!(
        kind(c.require_any(&[Role::Admin, Role::ComplianceOfficer])),
        "forbidden"
    );
    assert!(c.has_amr("pwd") && !c.has_amr("otp"));

    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.access_token.expose().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], env.keys.active_kid());

    // Secrets never leak through Debug.
    let dbg = format!("{t:?}");
    assert!(!dbg.contains(t.access_token.expose()) && !dbg.contains(t.refresh_token.expose()));
    let req = RegisterRequest {
        email: "x@example.com".into(),
        password: PW.into(),
        display_name: "X".into(),
    };
    assert!(!format!("{req:?}").contains(PW));

    let sessions = env.auth.list_sessions(u.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(sessions[0].user_agent.as_deref(), Some("tests/1.0"));
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_error() {
    let env = env().await;
    env.user("erin@example.com").await;
    let wrong = env
        .auth
        .login("erin@example.com", "wrong password!!", client())
        .await
        .unwrap_err();
    let unknown = env
        .auth
        .login("nobody@example.com", PW, client())
        .await
        .unwrap_err();
    let malformed = env
        .auth
        .login("not an email", PW, client())
        .await
        .unwrap_err();
    for e in [wrong, unknown, malformed] {
        assert_eq!(
            (e.kind(), e.status_code(), e.to_string()),
            (
                "invalid-credentials",
                401,
                "invalid email or password".into()
            )
        );
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_until_the_lockout_ends() {
    let env = env().await;
    env.user("finn@example.com").await;
    for i in 1..5 {
        let e = env
            .auth
            .login("finn@example.com", "wrong password!!", client())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "invalid-credentials", "attempt {i}");
    }
    let e = env
        .auth
        .login("finn@example.com", "wrong password!!", client())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("locked-out", 429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(900)));
    // Even the right password is refused while locked.
    env.clock.advance(Duration::from_secs(600));
    let e = env
        .auth
        .login("finn@example.com", PW, client())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "locked-out");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(300)));
    env.clock.advance(Duration::from_secs(301));
    env.login("finn@example.com").await;
    // A success resets the counter: one more failure does not lock again.
    assert_eq!(
        kind(
            env.auth
                .login("finn@example.com", "wrong password!!", client())
                .await
        ),
        "invalid-credentials"
    );
    env.login("finn@example.com").await;

    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM auth.events WHERE kind IN ('locked', 'login_locked') ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["locked", "login_locked"]);
    let u = env
        .auth
        .login("finn@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    let sub = env
        .auth
        .verify_access_token(u.access_token.expose())
        .await
        .unwrap()
        .sub;
    let events = env.auth.recent_events(sub, 100).await.unwrap();
    // Newest first; the lock is recorded inside the failure that triggered it.
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "login",
            "login",
            "login_failed",
            "login",
            "login_locked",
            "login_failed",
            "locked",
            "login_failed",
            "login_failed",
            "login_failed",
            "login_failed",
            "register"
        ]
    );
    assert_eq!(events[0].ip.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn access_token_expires_by_the_injected_clock() {
    let env = env().await;
    env.user("gus@example.com").await;
    let t = env.login("gus@example.com").await;
    // 15 min TTL plus 30 s leeway.
    env.clock.advance(Duration::from_secs(900 + 29));
    env.auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(1));
    let e = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("token-expired", 401));
}

#[tokio::test]
async fn tampered_wrong_alg_unknown_kid_and_wrong_issuer_tokens_are_rejected() {
    let env = env().await;
    env.user("hana@example.com").await;
    let t = env.login("hana@example.com").await;
    let tok = t.access_token.expose();
    let parts: Vec<&str> = tok.split('.').collect();

    // Escalate roles in the payload, keep the signature.
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = serde_json::json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(
        kind(env.auth.verify_access_token(&forged).await),
        "invalid-token"
    );

    // Flip one signature bit.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        kind(env.auth.verify_access_token(&flipped).await),
        "invalid-token"
    );

    // alg confusion: "none" and HS256 headers with the same kid.
    for alg in ["none", "HS256", "ES256"] {
        let h = serde_json::json!({ "alg": alg, "typ": "JWT", "kid": env.keys.active_kid() });
        let t2 = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            parts[1],
            parts[2]
        );
        assert_eq!(
            kind(env.auth.verify_access_token(&t2).await),
            "invalid-token",
            "{alg}"
        );
    }
    for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
        assert_eq!(
            kind(env.auth.verify_access_token(junk).await),
            "invalid-token",
            "{junk}"
        );
    }

    // Unknown kid: a token from a service with other keys.
    let other = env.service(env.config.clone(), SigningKeys::generate());
    let foreign = other
        .login("hana@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(
        kind(
            env.auth
                .verify_access_token(foreign.access_token.expose())
                .await
        ),
        "invalid-token"
    );

    // Same keys, another issuer / audience.
    let iss = env.service(
        AuthConfig {
            issuer: "someone-else".into(),
            ..env.config.clone()
        },
        env.keys.clone(),
    );
    let t_iss = iss
        .login("hana@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(
        kind(
            env.auth
                .verify_access_token(t_iss.access_token.expose())
                .await
        ),
        "invalid-token"
    );
    let aud = env.service(
        AuthConfig {
            audience: "other-api".into(),
            ..env.config.clone()
        },
        env.keys.clone(),
    );
    let t_aud = aud
        .login("hana@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(
        kind(
            env.auth
                .verify_access_token(t_aud.access_token.expose())
                .await
        ),
        "invalid-token"
    );
}

#[tokio::test]
async fn rotated_key_still_verifies_old_tokens_until_removed() {
    let env = env().await;
    env.user("ivy@example.com").await;
    let old = env.login("ivy@example.com").await;
    let old_kid = env.keys.active_kid().to_owned();

    let rotated = env.keys.clone().rotate(Ed25519Key::generate());
    let new_kid = rotated.active_kid().to_owned();
    assert_ne!(old_kid, new_kid);
    env.auth.set_signing_keys(rotated.clone());

    let c_old = env
        .auth
        .verify_access_token(old.access_token.expose())
        .await
        .unwrap();
    assert_eq!(c_old.kid, old_kid);
    let new = env.login("ivy@example.com").await;
    assert_eq!(
        env.auth
            .verify_access_token(new.access_token.expose())
            .await
            .unwrap()
            .kid,
        new_kid
    );
    let kids: Vec<String> = env.auth.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, [new_kid.clone(), old_kid.clone()]);

    env.auth.set_signing_keys(rotated.without_key(&old_kid));
    assert_eq!(
        kind(
            env.auth
                .verify_access_token(old.access_token.expose())
                .await
        ),
        "invalid-token"
    );
    env.auth
        .verify_access_token(new.access_token.expose())
        .await
        .unwrap();
}

// ------------------------------------------------------------------ refresh tokens

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let env = env().await;
    let u = env.user("jack@example.com").await;
    let t1 = env.login("jack@example.com").await;
    env.clock.advance(Duration::from_secs(60));
    let t2 = env.auth.refresh(t1.refresh_token.expose()).await.unwrap();
    assert_ne!(t2.refresh_token, t1.refresh_token);
    assert_eq!(t2.session_id, t1.session_id);
    let c = env
        .auth
        .verify_access_token(t2.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        (c.sub, c.iat, c.sid),
        (u.id, START.unix_timestamp() + 60, Some(t1.session_id))
    );
    let t3 = env.auth.refresh(t2.refresh_token.expose()).await.unwrap();

    // A separate session is not affected by the reuse below.
    let other = env.login("jack@example.com").await;

    // t1 was already rotated: reuse → whole family revoked, including the live t3.
    let e = env
        .auth
        .refresh(t1.refresh_token.expose())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("token-reused", 401));
    assert_eq!(
        kind(env.auth.refresh(t3.refresh_token.expose()).await),
        "token-revoked"
    );
    assert_eq!(
        kind(env.auth.refresh(t2.refresh_token.expose()).await),
        "token-reused"
    );
    let live: Vec<uuid::Uuid> = env
        .auth
        .list_sessions(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, [other.session_id]);
    env.auth
        .refresh(other.refresh_token.expose())
        .await
        .unwrap();

    let reason: String =
        sqlx::query_scalar("SELECT revoked_reason FROM auth.refresh_families WHERE id = $1")
            .bind(t1.session_id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(reason, "reuse");
    assert_eq!(kind(env.auth.refresh("not-a-token").await), "invalid-token");
}

#[tokio::test]
async fn concurrent_refresh_with_one_token_lets_exactly_one_win() {
    let env = env().await;
    env.user("kim@example.com").await;
    let t = env.login("kim@example.com").await;
    let (a, b) = tokio::join!(
        env.auth.refresh(t.refresh_token.expose()),
        env.auth.refresh(t.refresh_token.expose())
    );
    let mut outcomes = [
        a.map(|_| "ok").unwrap_or_else(|e| e.kind()),
        b.map(|_| "ok").unwrap_or_else(|e| e.kind()),
    ];
    outcomes.sort();
    assert_eq!(outcomes, ["ok", "token-reused"]);
}

#[tokio::test]
async fn refresh_token_expires_and_roles_update_on_refresh() {
    let env = env().await;
    let u = env.user("lee@example.com").await;
    let t = env.login("lee@example.com").await;
    env.auth
        .set_roles_as_operator(u.id, vec![Role::Provider, Role::Patient])
        .await
        .unwrap();
    let t2 = env.auth.refresh(t.refresh_token.expose()).await.unwrap();
    let c = env
        .auth
        .verify_access_token(t2.access_token.expose())
        .await
        .unwrap();
    assert_eq!(c.roles, vec![Role::Patient, Role::Provider]);
    env.clock.advance(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        kind(env.auth.refresh(t2.refresh_token.expose()).await),
        "token-expired"
    );
}

#[tokio::test]
async fn logout_revokes_the_session_and_logout_all_every_session() {
    let env = env().await;
    let u = env.user("max@example.com").await;
    let a = env.login("max@example.com").await;
    let b = env.login("max@example.com").await;
    let c = env.login("max@example.com").await;
    env.auth.logout(a.refresh_token.expose()).await.unwrap();
    env.auth.logout(a.refresh_token.expose()).await.unwrap(); // idempotent
    assert_eq!(
        kind(env.auth.refresh(a.refresh_token.expose()).await),
        "token-revoked"
    );
    assert_eq!(kind(env.auth.logout("unknown").await), "invalid-token");
    env.auth.refresh(b.refresh_token.expose()).await.unwrap();

    env.auth.revoke_session(u.id, c.session_id).await.unwrap();
    assert_eq!(
        kind(env.auth.refresh(c.refresh_token.expose()).await),
        "token-revoked"
    );
    assert_eq!(
        kind(
            env.auth
                .revoke_session(uuid::Uuid::new_v4(), b.session_id)
                .await
        ),
        "not-found"
    );

    let d = env.login("max@example.com").await;
    assert_eq!(env.auth.logout_all(u.id).await.unwrap(), 2); // b and d
    assert_eq!(
        kind(env.auth.refresh(d.refresh_token.expose()).await),
        "token-revoked"
    );
    assert!(env.auth.list_sessions(u.id).await.unwrap().is_empty());
}

// ------------------------------------------------------------------ TOTP 2FA

#[tokio::test]
async fn two_factor_enrollment_login_and_replay_protection() {
    let env = env().await;
    let u = env.user("nia@example.com").await;
    let e = env.auth.enroll_2fa(u.id).await.unwrap();
    assert_eq!(e.recovery_codes.len(), 10);
    assert!(
        e.otpauth_uri
            .expose()
            .starts_with("otpauth://totp/Advancia:nia@example.com?secret=")
    );
    assert!(e.otpauth_uri.expose().contains(e.secret_base32.expose()));
    assert!(!format!("{e:?}").contains(e.secret_base32.expose()));
    let secret = data_encoding::BASE32_NOPAD
        .decode(e.secret_base32.expose().as_bytes())
        .unwrap();
    assert_eq!(secret.len(), 20);

    // Pending enrollment does not gate login yet.
    env.login("nia@example.com").await;
    let right = env.code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(
        kind(env.auth.confirm_2fa(u.id, &wrong).await),
        "invalid-2fa-code"
    );
    assert!(!env.auth.get_user(u.id).await.unwrap().two_factor_enabled);
    env.auth
        .confirm_2fa(u.id, &env.code(&secret))
        .await
        .unwrap();
    assert!(env.auth.get_user(u.id).await.unwrap().two_factor_enabled);
    assert_eq!(
        kind(env.auth.enroll_2fa(u.id).await),
        "two-factor-already-enabled"
    );

    // The confirmation code's step is spent: the same code cannot finish a login.
    let ch = env.challenge("nia@example.com").await;
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, &env.code(&secret)).await),
        "invalid-2fa-code"
    );
    env.clock.advance(Duration::from_secs(30));
    let t = env.auth.verify_2fa(&ch, &env.code(&secret)).await.unwrap();
    let c = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        (c.sub, c.amr.clone()),
        (u.id, vec!["pwd".to_owned(), "otp".to_owned()])
    );
    // The challenge is single use.
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, &env.code(&secret)).await),
        "invalid-token"
    );
    // Replay of the same code on a fresh challenge, same step: rejected.
    let ch2 = env.challenge("nia@example.com").await;
    assert_eq!(
        kind(env.auth.verify_2fa(&ch2, &env.code(&secret)).await),
        "invalid-2fa-code"
    );
    // A code from the previous step is older than the last used one: rejected too.
    use advancia_auth::Clock as _;
    let prev = totp::code_at(&secret, env.clock.now().unix_timestamp() - 30);
    assert_eq!(
        kind(env.auth.verify_2fa(&ch2, &prev).await),
        "invalid-2fa-code"
    );
    // Next step, with one step of drift (the phone is 30 s behind): accepted.
    env.clock.advance(Duration::from_secs(60));
    let drifted = totp::code_at(&secret, env.clock.now().unix_timestamp() - 30);
    env.auth.verify_2fa(&ch2, &drifted).await.unwrap();

    // The stored secret is encrypted: the raw bytes are nowhere in the row.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT totp_secret_enc FROM auth.users WHERE id = $1")
            .bind(u.id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));
    // ...and a service with a different key cannot use it.
    let wrong_key = env.service(
        AuthConfig {
            totp_key: TotpEncryptionKey::generate(),
            ..env.config.clone()
        },
        env.keys.clone(),
    );
    let ch3 = wrong_key
        .login("nia@example.com", PW, client())
        .await
        .unwrap();
    let LoginOutcome::TwoFactorRequired { challenge_token } = ch3 else {
        panic!("expected challenge")
    };
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(
        kind(
            wrong_key
                .verify_2fa(challenge_token.expose(), &env.code(&secret))
                .await
        ),
        "misconfigured"
    );
}

#[tokio::test]
async fn recovery_codes_are_single_use() {
    let env = env().await;
    let u = env.user("omar@example.com").await;
    let (_secret, codes) = env.with_2fa(&u).await;
    let ch = env.challenge("omar@example.com").await;
    // Case and dashes do not matter.
    let typed = codes[3].replace('-', "").to_uppercase();
    env.auth.verify_2fa(&ch, &typed).await.unwrap();
    assert_eq!(env.auth.recovery_codes_remaining(u.id).await.unwrap(), 9);
    let ch = env.challenge("omar@example.com").await;
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, &codes[3]).await),
        "invalid-2fa-code"
    );
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, "aaaa-bbbb-cccc-dddd").await),
        "invalid-2fa-code"
    );
    env.auth.verify_2fa(&ch, &codes[4]).await.unwrap();
    assert_eq!(env.auth.recovery_codes_remaining(u.id).await.unwrap(), 8);

    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT code_hash FROM auth.recovery_codes WHERE user_id = $1")
            .bind(u.id)
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 10);
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 32 && !codes.iter().any(|c| c.as_bytes() == h.as_slice()))
    );
}

#[tokio::test]
async fn repeated_wrong_2fa_codes_lock_out_and_kill_the_challenge() {
    let env = env().await;
    let u = env.user("pia@example.com").await;
    let (secret, _) = env.with_2fa(&u).await;
    let ch = env.challenge("pia@example.com").await;
    let right = env.code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for i in 1..5 {
        assert_eq!(
            kind(env.auth.verify_2fa(&ch, &wrong).await),
            "invalid-2fa-code",
            "attempt {i}"
        );
    }
    let e = env.auth.verify_2fa(&ch, &wrong).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_after()),
        ("locked-out", Some(Duration::from_secs(900)))
    );
    // The right code no longer helps: the challenge is dead and the account locked.
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, &right).await),
        "invalid-token"
    );
    assert_eq!(
        kind(env.auth.login("pia@example.com", PW, client()).await),
        "locked-out"
    );
    env.clock.advance(Duration::from_secs(901));
    let ch = env.challenge("pia@example.com").await;
    env.auth.verify_2fa(&ch, &env.code(&secret)).await.unwrap();
}

#[tokio::test]
async fn two_factor_challenge_expires() {
    let env = env().await;
    let u = env.user("quinn@example.com").await;
    let (secret, _) = env.with_2fa(&u).await;
    let ch = env.challenge("quinn@example.com").await;
    env.clock.advance(Duration::from_secs(301));
    assert_eq!(
        kind(env.auth.verify_2fa(&ch, &env.code(&secret)).await),
        "token-expired"
    );
    assert_eq!(
        kind(env.auth.verify_2fa("bogus", "123456").await),
        "invalid-token"
    );
    // The first step's outcome is typed for callers that want tokens only.
    assert_eq!(
        kind(
            env.auth
                .login("quinn@example.com", PW, client())
                .await
                .unwrap()
                .into_tokens()
        ),
        "two-factor-required"
    );
}

#[tokio::test]
async fn disable_2fa_needs_a_valid_code() {
    let env = env().await;
    let u = env.user("ravi@example.com").await;
    assert_eq!(
        kind(env.auth.disable_2fa(u.id, "123456").await),
        "two-factor-not-enabled"
    );
    assert_eq!(
        kind(env.auth.confirm_2fa(u.id, "123456").await),
        "two-factor-not-enabled"
    );
    let (secret, codes) = env.with_2fa(&u).await;
    assert_eq!(
        kind(env.auth.disable_2fa(u.id, "not-a-code").await),
        "invalid-2fa-code"
    );
    let fresh = env
        .auth
        .regenerate_recovery_codes(u.id, &env.code(&secret))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 10);
    // Old codes died with the regeneration.
    assert_eq!(
        kind(env.auth.disable_2fa(u.id, &codes[0]).await),
        "invalid-2fa-code"
    );
    env.auth.disable_2fa(u.id, fresh[0].expose()).await.unwrap();
    assert!(!env.auth.get_user(u.id).await.unwrap().two_factor_enabled);
    assert_eq!(env.auth.recovery_codes_remaining(u.id).await.unwrap(), 0);
    env.login("ravi@example.com").await;
}

// ------------------------------------------------------------------ RBAC

#[tokio::test]
async fn only_admins_assign_roles() {
    let env = env().await;
    let target = env.user("sam@example.com").await;
    let t = env.login("sam@example.com").await;
    let patient = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    let e = env
        .auth
        .assign_roles(&patient, target.id, vec![Role::Admin])
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("forbidden", 403));

    let (admin_user, admin) = env.admin("root@example.com").await;
    let u = env
        .auth
        .assign_roles(&admin, target.id, vec![Role::Provider, Role::FacilityAdmin])
        .await
        .unwrap();
    assert_eq!(u.roles, vec![Role::Provider, Role::FacilityAdmin]);
    assert_eq!(
        kind(env.auth.assign_roles(&admin, target.id, vec![]).await),
        "invalid-input"
    );
    assert_eq!(
        kind(
            env.auth
                .assign_roles(&admin, uuid::Uuid::new_v4(), vec![Role::Patient])
                .await
        ),
        "not-found"
    );
    assert_eq!(
        kind(
            env.auth
                .assign_roles(&admin, admin_user.id, vec![Role::Patient])
                .await
        ),
        "input-refused"
    );

    // Demoted in the database: the still-valid admin token no longer suffices.
    env.auth
        .set_roles_as_operator(admin_user.id, vec![Role::Patient])
        .await
        .unwrap();
    assert_eq!(
        kind(
            env.auth
                .assign_roles(&admin, target.id, vec![Role::Admin])
                .await
        ),
        "forbidden"
    );
}

// ------------------------------------------------------------------ API keys

#[tokio::test]
async fn partner_api_keys_verify_scope_and_revoke() {
    let env = env().await;
    let patient = env.user("tia@example.com").await;
    assert_eq!(
        kind(
            env.auth
                .create_api_key(patient.id, "k", vec!["payments:read".into()])
                .await
        ),
        "forbidden"
    );

    let partner = env.user("partner@example.com").await;
    env.auth
        .set_roles_as_operator(partner.id, vec![Role::Partner])
        .await
        .unwrap();
    assert_eq!(
        kind(env.auth.create_api_key(partner.id, "k", vec![]).await),
        "invalid-input"
    );
    assert_eq!(
        kind(
            env.auth
                .create_api_key(partner.id, "k", vec!["Payments Read".into()])
                .await
        ),
        "invalid-input"
    );
    let (id, plain) = env
        .auth
        .create_api_key(
            partner.id,
            "billing sync",
            vec![
                "payments:write".into(),
                "payments:read".into(),
                "payments:read".into(),
            ],
        )
        .await
        .unwrap();
    assert!(
        plain.expose().starts_with(&format!("adv_{id}_")),
        "{}",
        plain.expose()
    );
    assert!(!format!("{plain:?}").contains(plain.expose()));

    let p = env.auth.verify_api_key(plain.expose()).await.unwrap();
    assert_eq!((p.key_id, p.owner), (id, partner.id));
    assert_eq!(p.scopes, ["payments:read", "payments:write"]);
    assert!(p.has_scope("payments:read") && !p.has_scope("ledger:read"));

    // Stored hashed: the secret part is nowhere in the table.
    let secret = plain
        .expose()
        .rsplit_once('_')
        .map(|(_, s)| s.to_owned())
        .unwrap();
    let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM auth.api_keys WHERE id = $1")
        .bind(id.0)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(hash.len(), 32);
    assert!(
        !hash
            .windows(8)
            .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
    );

    let mut tampered = plain.expose().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        tampered.as_str(),
        "adv_nothing",
        "",
        "Bearer x",
        &format!("adv_{}_x", uuid::Uuid::new_v4().simple()),
    ] {
        assert_eq!(
            kind(env.auth.verify_api_key(bad).await),
            "invalid-api-key",
            "{bad}"
        );
    }

    // Another user cannot revoke it (and cannot learn it exists).
    let t = env.login("tia@example.com").await;
    let stranger = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        kind(env.auth.revoke_api_key(&stranger, id).await),
        "not-found"
    );
    env.auth.verify_api_key(plain.expose()).await.unwrap();

    let t = env.login("partner@example.com").await;
    let owner = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    env.auth.revoke_api_key(&owner, id).await.unwrap();
    assert_eq!(
        kind(env.auth.verify_api_key(plain.expose()).await),
        "invalid-api-key"
    );
    let listed = env.auth.list_api_keys(partner.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].name.as_str(),
            listed[0].revoked_at.is_some(),
            listed[0].last_used_at
        ),
        ("billing sync", true, Some(START))
    );

    // A partner who loses the role loses their keys' power.
    let (_, plain2) = env
        .auth
        .create_api_key(partner.id, "second", vec!["payments:read".into()])
        .await
        .unwrap();
    env.auth.verify_api_key(plain2.expose()).await.unwrap();
    env.auth
        .set_roles_as_operator(partner.id, vec![Role::Patient])
        .await
        .unwrap();
    assert_eq!(
        kind(env.auth.verify_api_key(plain2.expose()).await),
        "invalid-api-key"
    );
}

// ------------------------------------------------------------------ Sign-In With Solana

struct Wallet(ed25519_dalek::SigningKey);

impl Wallet {
    fn new() -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&rand::random::<
            [u8; 32],
        >()))
    }
    fn address(&self) -> String {
        bs58::encode(self.0.verifying_key().as_bytes()).into_string()
    }
    fn sign(&self, msg: &str) -> String {
        bs58::encode(self.0.sign(msg.as_bytes()).to_bytes()).into_string()
    }
}

#[tokio::test]
async fn siws_happy_path_creates_then_reuses_the_wallet_account() {
    let env = env().await;
    let w = Wallet::new();
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    let m = advancia_auth::SiwsMessage::parse(&ch.message).unwrap();
    assert_eq!(m.domain, env.config.siws.domain);
    assert_eq!(m.address, w.address());
    assert_eq!(m.nonce, ch.nonce);
    assert_eq!(
        (m.uri.as_str(), m.version.as_str(), m.chain_id.as_deref()),
        ("http://localhost:8080", "1", Some("localnet"))
    );
    assert_eq!(m.issued_at, START);
    assert_eq!(m.expiration_time, Some(START + Duration::from_secs(300)));
    assert_eq!(ch.expires_at, START + Duration::from_secs(300));
    assert!(
        ch.message
            .starts_with("localhost:8080 wants you to sign in with your Solana account:\n")
    );

    let t = env
        .auth
        .siws_verify(&ch.message, &w.sign(&ch.message))
        .await
        .unwrap();
    let c = env
        .auth
        .verify_access_token(t.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        (c.roles.clone(), c.amr.clone()),
        (vec![Role::Patient], vec!["wallet".to_owned()])
    );
    let u = env.auth.get_user(c.sub).await.unwrap();
    assert_eq!(u.email, None);
    assert_eq!(
        env.auth.wallets(u.id).await.unwrap(),
        [(advancia_auth::WalletChain::Solana, w.address())]
    );

    let ch2 = env.auth.siws_challenge(&w.address()).await.unwrap();
    assert_ne!(ch2.nonce, ch.nonce);
    let t2 = env
        .auth
        .siws_verify(&ch2.message, &w.sign(&ch2.message))
        .await
        .unwrap();
    assert_eq!(
        env.auth
            .verify_access_token(t2.access_token.expose())
            .await
            .unwrap()
            .sub,
        u.id
    );
}

#[tokio::test]
async fn siws_rejects_wrong_signature_replay_wrong_domain_and_expiry() {
    let env = env().await;
    let w = Wallet::new();
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();

    // Signed by another key / over other bytes / garbage.
    let e = env
        .auth
        .siws_verify(&ch.message, &Wallet::new().sign(&ch.message))
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("invalid-signature", 401));
    assert_eq!(
        kind(
            env.auth
                .siws_verify(&ch.message, &w.sign("something else"))
                .await
        ),
        "invalid-signature"
    );
    assert_eq!(
        kind(env.auth.siws_verify(&ch.message, "0OIl").await),
        "invalid-signature"
    );

    // A message we did not issue (edited statement), validly signed by the wallet.
    let edited = ch.message.replace(
        "Sign in to Advancia Pay Ledger.",
        "Sign in and transfer everything.",
    );
    assert_eq!(
        kind(env.auth.siws_verify(&edited, &w.sign(&edited)).await),
        "invalid-nonce"
    );

    // Phishing site: same nonce, other domain.
    let phished = ch.message.replacen("localhost:8080", "evil.example", 1);
    let e = env
        .auth
        .siws_verify(&phished, &w.sign(&phished))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "domain-mismatch");

    // The nonce survived all the failures above; now it is used once, then never again.
    env.auth
        .siws_verify(&ch.message, &w.sign(&ch.message))
        .await
        .unwrap();
    assert_eq!(
        kind(
            env.auth
                .siws_verify(&ch.message, &w.sign(&ch.message))
                .await
        ),
        "invalid-nonce"
    );

    // Another wallet cannot redeem a nonce issued to this one.
    let w2 = Wallet::new();
    let ch2 = env.auth.siws_challenge(&w.address()).await.unwrap();
    let stolen = ch2.message.replace(&w.address(), &w2.address());
    assert_eq!(
        kind(env.auth.siws_verify(&stolen, &w2.sign(&stolen)).await),
        "invalid-nonce"
    );

    // Expired challenge.
    let ch3 = env.auth.siws_challenge(&w.address()).await.unwrap();
    env.clock.advance(Duration::from_secs(301));
    let e = env
        .auth
        .siws_verify(&ch3.message, &w.sign(&ch3.message))
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("challenge-expired", 401));

    assert_eq!(
        kind(env.auth.siws_challenge("not-base58-0OIl").await),
        "invalid-input"
    );
    assert_eq!(
        kind(env.auth.siws_challenge("11111111").await),
        "invalid-input"
    );
    // An overlong address is refused before decoding (base58 decoding is quadratic: 200 kB
    // of it held a worker for longer than a client waits).
    let started = std::time::Instant::now();
    assert_eq!(
        kind(env.auth.siws_challenge(&"x".repeat(200_000)).await),
        "invalid-input"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The documented address syntax (base58, 32-44 characters) but no key: 33 zero bytes.
    let e = env.auth.siws_challenge(&"1".repeat(33)).await.unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("invalid-address", 422));
    // A message that is not a sign-in message at all fails the sign-in.
    let e = env.auth.siws_verify("hello", "0OIl").await.unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("invalid-message", 401));
}

#[tokio::test]
async fn siws_link_binds_a_wallet_to_an_existing_account() {
    let env = env().await;
    let u = env.user("uma@example.com").await;
    let w = Wallet::new();
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    env.auth
        .siws_link(u.id, &ch.message, &w.sign(&ch.message))
        .await
        .unwrap();
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    let t = env
        .auth
        .siws_verify(&ch.message, &w.sign(&ch.message))
        .await
        .unwrap();
    assert_eq!(
        env.auth
            .verify_access_token(t.access_token.expose())
            .await
            .unwrap()
            .sub,
        u.id
    );

    // The wallet is taken: another account cannot link it.
    let other = env.user("vic@example.com").await;
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    assert_eq!(
        kind(
            env.auth
                .siws_link(other.id, &ch.message, &w.sign(&ch.message))
                .await
        ),
        "invalid-input"
    );
}

#[tokio::test]
async fn purge_removes_expired_challenges_and_dead_sessions() {
    let env = env().await;
    let u = env.user("wes@example.com").await;
    let live = env.login("wes@example.com").await;
    let dead = env.login("wes@example.com").await;
    env.auth.logout(dead.refresh_token.expose()).await.unwrap();
    env.auth
        .siws_challenge(&Wallet::new().address())
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(3600));
    let n = env.auth.purge_expired().await.unwrap();
    assert_eq!(n, 2); // the nonce and the revoked session
    env.auth.refresh(live.refresh_token.expose()).await.unwrap();
    assert_eq!(env.auth.list_sessions(u.id).await.unwrap().len(), 1);
}

// ------------------------------------------------------------------ passwords and email

#[tokio::test]
async fn change_password_requires_the_current_one_and_signs_out_everywhere() {
    let env = env().await;
    let u = env.user("xena@example.com").await;
    let s = env.login("xena@example.com").await;
    let new_pw = "a much better passphrase";
    assert_eq!(
        kind(
            env.auth
                .change_password(u.id, "not my password", new_pw)
                .await
        ),
        "invalid-credentials"
    );
    assert_eq!(
        kind(env.auth.change_password(u.id, PW, "short").await),
        "weak-password"
    );
    env.auth.change_password(u.id, PW, new_pw).await.unwrap();
    assert_eq!(
        kind(env.auth.refresh(s.refresh_token.expose()).await),
        "token-revoked"
    );
    assert_eq!(
        kind(env.auth.login("xena@example.com", PW, client()).await),
        "invalid-credentials"
    );
    env.auth
        .login("xena@example.com", new_pw, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
}

#[tokio::test]
async fn password_reset_is_single_use_expiring_and_clears_lockout() {
    let env = env().await;
    let u = env.user("yuri@example.com").await;
    let s = env.login("yuri@example.com").await;
    assert!(
        env.auth
            .request_password_reset("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.auth
            .request_password_reset("garbage")
            .await
            .unwrap()
            .is_none()
    );

    // Lock the account, then reset.
    for _ in 0..5 {
        let _ = env
            .auth
            .login("yuri@example.com", "wrong password!!", client())
            .await;
    }
    assert_eq!(
        kind(env.auth.login("yuri@example.com", PW, client()).await),
        "locked-out"
    );
    let first = env
        .auth
        .request_password_reset("Yuri@Example.com")
        .await
        .unwrap()
        .unwrap();
    let token = env
        .auth
        .request_password_reset("yuri@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{token:?}").contains(token.expose()));
    // A weak password does not burn the token.
    assert_eq!(
        kind(
            env.auth
                .reset_password(token.expose(), "yuri@example.com")
                .await
        ),
        "weak-password"
    );
    let new_pw = "reset to something long";
    env.auth
        .reset_password(token.expose(), new_pw)
        .await
        .unwrap();
    assert_eq!(
        kind(env.auth.reset_password(token.expose(), new_pw).await),
        "invalid-token"
    );
    // The other outstanding link died too.
    assert_eq!(
        kind(
            env.auth
                .reset_password(first.expose(), "yet another long one")
                .await
        ),
        "invalid-token"
    );
    assert_eq!(
        kind(env.auth.refresh(s.refresh_token.expose()).await),
        "token-revoked"
    );
    let t = env
        .auth
        .login("yuri@example.com", new_pw, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(
        env.auth
            .verify_access_token(t.access_token.expose())
            .await
            .unwrap()
            .sub,
        u.id
    );

    let late = env
        .auth
        .request_password_reset("yuri@example.com")
        .await
        .unwrap()
        .unwrap();
    env.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        kind(
            env.auth
                .reset_password(late.expose(), "too late for this one")
                .await
        ),
        "token-expired"
    );
    assert_eq!(
        kind(
            env.auth
                .reset_password("bogus", "whatever long enough")
                .await
        ),
        "invalid-token"
    );
}

#[tokio::test]
async fn email_verification_binds_to_the_address_it_was_sent_to() {
    let env = env().await;
    let u = env.user("zoe@example.com").await;
    assert!(!u.email_verified);
    let t = env.auth.request_email_verification(u.id).await.unwrap();
    let v = env.auth.verify_email(t.expose()).await.unwrap();
    assert!(v.email_verified);
    assert_eq!(
        kind(env.auth.verify_email(t.expose()).await),
        "invalid-token"
    );

    // Changing the email clears verification; a token for the old address is useless.
    let stale = env.auth.request_email_verification(u.id).await.unwrap();
    let changed = env
        .auth
        .update_user(
            u.id,
            UpdateUser {
                email: Some("zoe2@example.com".into()),
                display_name: None,
            },
        )
        .await
        .unwrap();
    assert!(!changed.email_verified);
    assert_eq!(
        kind(env.auth.verify_email(stale.expose()).await),
        "invalid-token"
    );
    // Renaming alone keeps it.
    let fresh = env.auth.request_email_verification(u.id).await.unwrap();
    env.auth.verify_email(fresh.expose()).await.unwrap();
    let renamed = env
        .auth
        .update_user(
            u.id,
            UpdateUser {
                display_name: Some("Zoë".into()),
                email: None,
            },
        )
        .await
        .unwrap();
    assert!(renamed.email_verified);

    let late = env.auth.request_email_verification(u.id).await.unwrap();
    env.clock.advance(Duration::from_secs(48 * 3600));
    assert_eq!(
        kind(env.auth.verify_email(late.expose()).await),
        "token-expired"
    );
}

#[tokio::test]
async fn concurrent_first_sign_ins_of_one_wallet_create_one_account() {
    let env = env().await;
    let w = Wallet::new();
    let a = env.auth.siws_challenge(&w.address()).await.unwrap();
    let b = env.auth.siws_challenge(&w.address()).await.unwrap();
    let (sa, sb) = (w.sign(&a.message), w.sign(&b.message));
    let (ta, tb) = tokio::join!(
        env.auth.siws_verify(&a.message, &sa),
        env.auth.siws_verify(&b.message, &sb)
    );
    let ua = env
        .auth
        .verify_access_token(ta.unwrap().access_token.expose())
        .await
        .unwrap()
        .sub;
    let ub = env
        .auth
        .verify_access_token(tb.unwrap().access_token.expose())
        .await
        .unwrap()
        .sub;
    assert_eq!(ua, ub);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.users")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

/// The production argon2 parameters work end to end, and hashes made with
/// older (cheaper) parameters are upgraded at the next successful login.
#[tokio::test]
async fn owasp_parameters_and_rehash_on_login() {
    let env = env().await;
    let u = env.user("old-hash@example.com").await;
    let phc = |id| {
        let pool = env.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT password_hash FROM auth.users WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(phc(u.id).await.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
    let prod = env.service(
        AuthConfig {
            password_hashing: PasswordHashing::OWASP,
            ..env.config.clone()
        },
        env.keys.clone(),
    );
    prod.login("old-hash@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    let upgraded = phc(u.id).await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    // The upgraded hash still verifies, and a wrong password still fails.
    prod.login("old-hash@example.com", PW, client())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(
        kind(
            prod.login("old-hash@example.com", "wrong password!!", client())
                .await
        ),
        "invalid-credentials"
    );
    assert_eq!(phc(u.id).await, upgraded);
}

#[tokio::test]
async fn disabled_accounts_cannot_sign_in_refresh_or_use_keys() {
    let env = env().await;
    let (_, admin) = env.admin("boss@example.com").await;
    let u = env.user("leaver@example.com").await;
    env.auth
        .set_roles_as_operator(u.id, vec![Role::Partner])
        .await
        .unwrap();
    let (_, key) = env
        .auth
        .create_api_key(u.id, "k", vec!["payments:read".into()])
        .await
        .unwrap();
    let s = env.login("leaver@example.com").await;
    let w = Wallet::new();
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    env.auth
        .siws_link(u.id, &ch.message, &w.sign(&ch.message))
        .await
        .unwrap();

    // Only a (still) admin may do it, and not to themselves.
    let leaver = env
        .auth
        .verify_access_token(s.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        kind(env.auth.set_user_disabled(&leaver, u.id, true).await),
        "forbidden"
    );
    assert_eq!(
        kind(env.auth.set_user_disabled(&admin, admin.sub, true).await),
        "input-refused"
    );
    assert_eq!(
        kind(
            env.auth
                .set_user_disabled(&admin, uuid::Uuid::new_v4(), true)
                .await
        ),
        "not-found"
    );

    let d = env
        .auth
        .set_user_disabled(&admin, u.id, true)
        .await
        .unwrap();
    assert!(d.disabled);
    assert_eq!(
        kind(env.auth.refresh(s.refresh_token.expose()).await),
        "token-revoked"
    );
    assert_eq!(
        kind(env.auth.verify_api_key(key.expose()).await),
        "invalid-api-key"
    );
    // The right password gets a specific answer; a wrong one reveals nothing.
    let e = env
        .auth
        .login("leaver@example.com", PW, client())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status_code()), ("account-disabled", 403));
    assert_eq!(
        kind(
            env.auth
                .login("leaver@example.com", "wrong password!!", client())
                .await
        ),
        "invalid-credentials"
    );
    let ch = env.auth.siws_challenge(&w.address()).await.unwrap();
    assert_eq!(
        kind(
            env.auth
                .siws_verify(&ch.message, &w.sign(&ch.message))
                .await
        ),
        "account-disabled"
    );

    let back = env
        .auth
        .set_user_disabled(&admin, u.id, false)
        .await
        .unwrap();
    assert!(!back.disabled);
    env.login("leaver@example.com").await;
    env.auth.verify_api_key(key.expose()).await.unwrap();
}
