//! Pure building blocks: TOTP vectors, JWKS/keys, SIWS text, error contract.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use advancia_auth::siws::SiwsMessage;
use advancia_auth::{AuthError, Ed25519Key, Role, SigningKeys, jwk_thumbprint, totp};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::macros::datetime;

/// RFC 6238 Appendix B, SHA-1 column (8 digits, secret "12345678901234567890").
#[test]
fn totp_rfc6238_appendix_b_sha1_vectors() {
    let secret = b"12345678901234567890";
    let vectors: [(i64, u32); 6] = [
        (59, 94287082),
        (1111111109, 7081804),
        (1111111111, 14050471),
        (1234567890, 89005924),
        (2000000000, 69279037),
        (20000000000, 65353130),
    ];
    for (t, want) in vectors {
        assert_eq!(totp::totp(secret, t, 8), want, "T = {t}");
        // The 6-digit code is the same truncation mod 10^6, zero padded.
        assert_eq!(
            totp::code_at(secret, t),
            format!("{:06}", want % 1_000_000),
            "T = {t}"
        );
    }
}

#[test]
fn totp_window_is_plus_minus_one_step() {
    let secret = b"12345678901234567890";
    let t = 1111111111;
    let now_step = totp::step_at(t);
    for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
        let code = totp::code_at(secret, t + offset * 30);
        let got = totp::matching_step(secret, &code, t);
        if accepted {
            assert_eq!(got, Some(now_step + offset), "offset {offset}");
        } else {
            assert_eq!(got, None, "offset {offset}");
        }
    }
    assert_eq!(totp::matching_step(secret, "12345", t), None);
    assert_eq!(totp::matching_step(secret, "abcdef", t), None);
}

#[test]
fn otpauth_uri_is_google_authenticator_format() {
    let uri = totp::otpauth_uri("Advancia Pay", "a@b.example", "JBSWY3DPEHPK3PXP");
    assert_eq!(
        uri,
        "otpauth://totp/Advancia%20Pay:a@b.example?secret=JBSWY3DPEHPK3PXP&issuer=Advancia%20Pay&algorithm=SHA1&digits=6&period=30"
    );
}

/// RFC 8037 Appendix A.1 key; A.3 thumbprint.
#[test]
fn jwk_thumbprint_matches_rfc8037() {
    let d = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let key = Ed25519Key::from_seed(d.try_into().unwrap());
    assert_eq!(
        URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_eq!(jwk_thumbprint(&key.verifying_key()), key.kid());
}

/// RFC 8410 §10.3 private key, whose public key is the §10.1 example.
#[test]
fn pkcs8_pem_from_rfc8410_and_round_trip() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let key = Ed25519Key::from_pkcs8_pem(pem).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"
    );
    assert_eq!(key.to_pkcs8_pem().expose(), pem);
    let again = Ed25519Key::parse(key.to_pkcs8_pem().expose()).unwrap();
    assert_eq!(again.kid(), key.kid());

    let err =
        Ed25519Key::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----")
            .unwrap_err();
    assert_eq!(err.kind(), "misconfigured");
}

#[test]
fn key_files_raw_seed_and_hex() {
    let dir = std::env::temp_dir().join(format!("advancia-auth-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = [7u8; 32];
    let raw = dir.join("raw.key");
    std::fs::write(&raw, seed).unwrap();
    let hexf = dir.join("hex.key");
    std::fs::write(&hexf, format!("{}\n", hex::encode(seed))).unwrap();
    let a = Ed25519Key::from_file(&raw).unwrap();
    let b = Ed25519Key::from_file(&hexf).unwrap();
    assert_eq!(a.kid(), Ed25519Key::from_seed(seed).kid());
    assert_eq!(a.kid(), b.kid());
    assert_eq!(
        Ed25519Key::from_file(&dir.join("missing"))
            .unwrap_err()
            .kind(),
        "misconfigured"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn jwks_lists_active_and_retired_okp_keys_and_debug_hides_secrets() {
    let old = Ed25519Key::from_seed([1u8; 32]);
    let new = Ed25519Key::from_seed([2u8; 32]).with_kid("2026-11");
    let keys = SigningKeys::new(old.clone()).rotate(new.clone());
    assert_eq!(keys.active_kid(), "2026-11");
    let jwks = keys.jwks();
    let list = jwks["keys"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["kid"], "2026-11");
    assert_eq!(list[1]["kid"], old.kid());
    for k in list {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(k["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(k.get("d").is_none(), "private part must never be published");
    }
    let dbg = format!("{keys:?} {old:?}");
    assert!(dbg.contains("2026-11"));
    let seed_b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    assert!(
        !dbg.contains(&hex::encode([1u8; 32]))
            && !dbg.contains(&seed_b64)
            && !dbg.contains("[1, 1")
    );
}

#[test]
fn role_names_and_has_any() {
    let names: Vec<String> = Role::ALL
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            r#""patient""#,
            r#""provider""#,
            r#""facility_admin""#,
            r#""compliance_officer""#,
            r#""partner""#,
            r#""admin""#
        ]
    );
    for r in Role::ALL {
        assert_eq!(
            serde_json::from_str::<Role>(&format!("\"{}\"", r.as_str())).unwrap(),
            r
        );
        assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
    }
    assert_eq!("root".parse::<Role>().unwrap_err().kind(), "invalid-input");
}

#[test]
fn error_kinds_and_statuses_are_stable() {
    let cases: Vec<(AuthError, &str, u16)> = vec![
        (AuthError::InvalidCredentials, "invalid-credentials", 401),
        (AuthError::EmailTaken, "email-taken", 409),
        (AuthError::WeakPassword("x"), "weak-password", 422),
        (AuthError::InvalidInput("x".into()), "invalid-input", 400),
        (AuthError::TokenExpired, "token-expired", 401),
        (AuthError::TokenReused, "token-reused", 401),
        (AuthError::TwoFactorRequired, "two-factor-required", 401),
        (
            AuthError::LockedOut {
                retry_after: std::time::Duration::from_secs(9),
            },
            "locked-out",
            429,
        ),
        (AuthError::Forbidden, "forbidden", 403),
        (AuthError::NotFound, "not-found", 404),
        (AuthError::Internal("x".into()), "internal", 500),
    ];
    for (e, kind, status) in cases {
        assert_eq!((e.kind(), e.status_code()), (kind, status), "{e}");
    }
    assert_eq!(
        AuthError::LockedOut {
            retry_after: std::time::Duration::from_secs(9)
        }
        .retry_after(),
        Some(std::time::Duration::from_secs(9))
    );
}

fn sample_message() -> SiwsMessage {
    SiwsMessage {
        domain: "pay.example:443".into(),
        address: "GsbwXfJraMomNxBcjYLcG3mxkBUiyWXAB32fGbSMQRdW".into(),
        statement: Some("Sign in to Advancia Pay Ledger.".into()),
        uri: "https://pay.example".into(),
        version: "1".into(),
        chain_id: Some("mainnet".into()),
        nonce: "32891756abcDEF".into(),
        issued_at: datetime!(2026-11-25 12:00:00 UTC),
        expiration_time: Some(datetime!(2026-11-25 12:05:00 UTC)),
        not_before: None,
        request_id: None,
        resources: vec!["https://pay.example/terms".into()],
    }
}

#[test]
fn siws_message_text_format_and_round_trip() {
    let m = sample_message();
    let text = m.to_text().unwrap();
    assert_eq!(
        text,
        "pay.example:443 wants you to sign in with your Solana account:\n\
         GsbwXfJraMomNxBcjYLcG3mxkBUiyWXAB32fGbSMQRdW\n\
         \n\
         Sign in to Advancia Pay Ledger.\n\
         \n\
         URI: https://pay.example\n\
         Version: 1\n\
         Chain ID: mainnet\n\
         Nonce: 32891756abcDEF\n\
         Issued At: 2026-11-25T12:00:00Z\n\
         Expiration Time: 2026-11-25T12:05:00Z\n\
         Resources:\n\
         - https://pay.example/terms"
    );
    assert_eq!(SiwsMessage::parse(&text).unwrap(), m);

    let mut no_statement = m.clone();
    no_statement.statement = None;
    no_statement.resources.clear();
    assert_eq!(
        SiwsMessage::parse(&no_statement.to_text().unwrap()).unwrap(),
        no_statement
    );
}

#[test]
fn siws_parse_rejects_malformed_messages() {
    let text = sample_message().to_text().unwrap();
    let bad = [
        text.replace("Solana account", "Ethereum account"),
        text.replace("Version: 1", "Version: 2"),
        text.replace("Nonce: 32891756abcDEF", "Nonce: short"),
        text.replace("Issued At: 2026-11-25T12:00:00Z", "Issued At: yesterday"),
        text.replace("Chain ID: mainnet\n", "Chain ID: mainnet\nFoo: bar\n"),
        format!("{text}\nextra"),
        text.replace("URI: https://pay.example\n", ""),
    ];
    for b in bad {
        assert_eq!(
            SiwsMessage::parse(&b).unwrap_err().kind(),
            "invalid-input",
            "{b}"
        );
    }
}

#[test]
fn keys_and_config_from_variables() {
    use std::collections::HashMap;
    let vars = |pairs: &[(&str, String)]| {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |k: &str| m.get(k).cloned()
    };
    let active = Ed25519Key::from_seed([3u8; 32]);
    let retired = Ed25519Key::from_seed([4u8; 32]);
    let x = URL_SAFE_NO_PAD.encode(retired.verifying_key().as_bytes());
    let keys = SigningKeys::from_vars(vars(&[
        (
            "AUTH_SIGNING_KEY",
            active.to_pkcs8_pem().expose().to_owned(),
        ),
        ("AUTH_SIGNING_KID", "k2".into()),
        ("AUTH_RETIRED_PUBLIC_KEYS", format!("k1:{x}")),
    ]))
    .unwrap();
    assert_eq!(keys.active_kid(), "k2");
    let jwks = keys.jwks();
    assert_eq!(
        jwks["keys"][0]["x"],
        URL_SAFE_NO_PAD.encode(active.verifying_key().as_bytes())
    );
    assert_eq!(
        (
            jwks["keys"][1]["kid"].as_str(),
            jwks["keys"][1]["x"].as_str()
        ),
        (Some("k1"), Some(x.as_str()))
    );

    assert_eq!(
        SigningKeys::from_vars(vars(&[])).unwrap_err().kind(),
        "misconfigured"
    );
    let bad_retired = SigningKeys::from_vars(vars(&[
        ("AUTH_SIGNING_KEY", hex::encode([3u8; 32])),
        ("AUTH_RETIRED_PUBLIC_KEYS", "no-colon".into()),
    ]));
    assert_eq!(bad_retired.unwrap_err().kind(), "misconfigured");

    assert_eq!(
        advancia_auth::AuthConfig::from_vars(vars(&[]))
            .unwrap_err()
            .kind(),
        "misconfigured"
    );
    let cfg = advancia_auth::AuthConfig::from_vars(vars(&[
        ("AUTH_TOTP_ENCRYPTION_KEY", hex::encode([9u8; 32])),
        ("AUTH_ISSUER", "https://auth.pay.example".into()),
        ("AUTH_SIWS_DOMAIN", "pay.example".into()),
    ]))
    .unwrap();
    assert_eq!(
        (cfg.issuer.as_str(), cfg.siws.domain.as_str()),
        ("https://auth.pay.example", "pay.example")
    );
    assert_eq!(
        (cfg.access_ttl.as_secs(), cfg.refresh_ttl.as_secs()),
        (900, 30 * 24 * 3600)
    );
    assert_eq!(cfg.password_hashing, advancia_auth::PasswordHashing::OWASP);
    assert!(!format!("{cfg:?}").contains(&hex::encode([9u8; 32])));
    assert!(!format!("{cfg:?}").contains("9, 9"));
    assert_eq!(
        advancia_auth::TotpEncryptionKey::parse("too short")
            .unwrap_err()
            .kind(),
        "misconfigured"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    advancia_auth::TotpEncryptionKey::parse(&b64).unwrap();
}

#[test]
fn api_key_ids_parse_in_both_uuid_forms() {
    let u = uuid::Uuid::new_v4();
    let a: advancia_auth::ApiKeyId = u.simple().to_string().parse().unwrap();
    let b: advancia_auth::ApiKeyId = u.to_string().parse().unwrap();
    assert_eq!(
        (a, b),
        (advancia_auth::ApiKeyId(u), advancia_auth::ApiKeyId(u))
    );
    assert_eq!(a.to_string(), u.simple().to_string());
    assert_eq!(
        "nope"
            .parse::<advancia_auth::ApiKeyId>()
            .unwrap_err()
            .kind(),
        "invalid-input"
    );
}
