#![allow(clippy::unwrap_used)]
//! Start-up configuration through the real binary (`advancia check-config` / `serve`):
//! file + environment + flags, every bad setting reported at once with its name, source
//! and expected form, and secret values never echoed.

use std::process::{Command, Output};

const SIGNING_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const TOTP_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// Runs the binary with a clean environment plus `env`.
fn advancia(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_advancia"));
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn good_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AUTH_SIGNING_KEY", SIGNING_KEY),
        ("AUTH_TOTP_ENCRYPTION_KEY", TOTP_KEY),
        ("ADVANCIA_PUBLIC_URL", "https://pay.example.test"),
    ]
}

/// Links are built from ADVANCIA_PUBLIC_URL only: outside `--dev` it must be set and https.
#[test]
fn serve_needs_an_https_public_url_outside_dev() {
    let keys = [
        ("AUTH_SIGNING_KEY", SIGNING_KEY),
        ("AUTH_TOTP_ENCRYPTION_KEY", TOTP_KEY),
    ];
    let out = advancia(&["check-config"], &keys);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ADVANCIA_PUBLIC_URL: required outside --dev"),
        "{}",
        stderr(&out)
    );
    // `serve` refuses the same way, before binding anything.
    let out = advancia(&["serve", "--listen", "127.0.0.1:1"], &keys);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ADVANCIA_PUBLIC_URL"),
        "{}",
        stderr(&out)
    );

    let mut plain = keys.to_vec();
    plain.push(("ADVANCIA_PUBLIC_URL", "http://pay.example.test"));
    let out = advancia(&["check-config"], &plain);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ADVANCIA_PUBLIC_URL (from environment): must be an https URL"),
        "{}",
        stderr(&out)
    );

    // --dev: plain http is fine, and the default is the listen address.
    assert!(
        advancia(&["--dev", "check-config"], &plain)
            .status
            .success()
    );
    assert!(advancia(&["--dev", "check-config"], &keys).status.success());
    // --dev is a flag only: neither the environment nor a file can turn it on.
    let mut env = keys.to_vec();
    env.push(("ADVANCIA_DEV", "true"));
    assert_eq!(advancia(&["check-config"], &env).status.code(), Some(2));

    // Wallets and Blink clients load the payment icon from anywhere: https outside --dev.
    let mut icon = keys.to_vec();
    icon.push(("ADVANCIA_PUBLIC_URL", "https://pay.example.test"));
    assert!(advancia(&["check-config"], &icon).status.success());
    icon.push((
        "ADVANCIA_PAYMENT_ICON_URL",
        "http://cdn.example.test/icon.svg",
    ));
    let out = advancia(&["check-config"], &icon);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ADVANCIA_PAYMENT_ICON_URL") && stderr(&out).contains("https"),
        "{}",
        stderr(&out)
    );
    assert!(advancia(&["--dev", "check-config"], &icon).status.success());
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn valid_configuration_from_file_environment_and_flags() {
    let dir = tempdir();
    let file = dir.join("advancia.toml");
    std::fs::write(
        &file,
        "[advancia]\nlisten = \"127.0.0.1:18080\"\nservices = [\"payments\", \"ledger\"]\n\
         shutdown_drain_secs = 5\n[advancia.solana]\nrpc_url = \"http://127.0.0.1:8899\"\n",
    )
    .unwrap();
    let out = advancia(
        &["--config", file.to_str().unwrap(), "check-config"],
        &good_env(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listen 127.0.0.1:18080"), "{stdout}");
    assert!(stdout.contains("services ledger,payments"), "{stdout}");

    // The environment overrides the file.
    let mut env = good_env();
    env.push(("ADVANCIA_LISTEN", "127.0.0.1:18081"));
    let out = advancia(&["--config", file.to_str().unwrap(), "check-config"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen 127.0.0.1:18081"));
}

#[test]
fn every_bad_setting_is_reported_at_once_without_secrets() {
    let dir = tempdir();
    let file = dir.join("bad.toml");
    // A typo'd key and a bad value in the file; more bad values in the environment.
    std::fs::write(
        &file,
        "[advancia]\nlisen = \"0.0.0.0:1\"\nshutdown_drain_secs = 0\n",
    )
    .unwrap();
    let out = advancia(
        &["--config", file.to_str().unwrap(), "check-config"],
        &[
            ("ADVANCIA_LISTEN", "localhost-8080"),
            ("ADVANCIA_SERVICES", "payments,ledgr"),
            ("ADVANCIA_LOG_FORMAT", "xml"),
            ("ADVANCIA_RATE_LIMITS", "payments=lots"),
            ("ADVANCIA_TRUSTED_PROXY_HOPS", "-1"),
            ("ADVANCIA_PAYMENT_TTL_SECS", "soon"),
            ("ADVANCIA_REDIS_URL", "http://:hunter2pass@cache:6379"),
            ("DATABASE_URL", "mysql://root:s3cretpw@db/x"),
            ("ADVANCIA_SMTP_HOST", "mail.example.com"),
            ("ADVANCIA_SMTP_PASSWORD", "smtp-secret-value"),
            ("AUTH_SIGNING_KEY", "not-a-key-but-secret-material"),
            ("AUTH_TOTP_ENCRYPTION_KEY", TOTP_KEY),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // The unknown key stops before validation: fix the file first.
    assert!(err.contains("advancia_lisen"), "{err}");
    assert!(err.contains("unknown setting"), "{err}");

    // Without the typo every value error is listed together.
    std::fs::write(&file, "[advancia]\nshutdown_drain_secs = 0\n").unwrap();
    let out = advancia(
        &["--config", file.to_str().unwrap(), "check-config"],
        &[
            ("ADVANCIA_LISTEN", "localhost-8080"),
            ("ADVANCIA_SERVICES", "payments,ledgr"),
            ("ADVANCIA_LOG_FORMAT", "xml"),
            ("ADVANCIA_RATE_LIMITS", "payments=lots"),
            ("ADVANCIA_TRUSTED_PROXY_HOPS", "-1"),
            ("ADVANCIA_PAYMENT_TTL_SECS", "soon"),
            ("ADVANCIA_REDIS_URL", "http://:hunter2pass@cache:6379"),
            ("DATABASE_URL", "mysql://root:s3cretpw@db/x"),
            ("ADVANCIA_SMTP_HOST", "mail.example.com"),
            ("ADVANCIA_SMTP_PASSWORD", "smtp-secret-value"),
            ("AUTH_SIGNING_KEY", "not-a-key-but-secret-material"),
            ("AUTH_TOTP_ENCRYPTION_KEY", TOTP_KEY),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for (setting, hint) in [
        ("ADVANCIA_LISTEN (from environment)", "host-ip:port"),
        ("ADVANCIA_SHUTDOWN_DRAIN_SECS (from file", "from 1 to 3600"),
        ("ADVANCIA_SERVICES", "unknown service `ledgr`"),
        ("ADVANCIA_LOG_FORMAT", "`text` or `json`"),
        ("ADVANCIA_RATE_LIMITS", "group=N/unit"),
        ("ADVANCIA_TRUSTED_PROXY_HOPS", "whole number"),
        ("ADVANCIA_PAYMENT_TTL_SECS", "whole number of seconds"),
        ("ADVANCIA_REDIS_URL", "redis://"),
        ("DATABASE_URL", "postgres://"),
        ("ADVANCIA_SMTP_FROM", "required"),
        ("AUTH_SIGNING_KEY", ""),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(setting))
            .unwrap_or_else(|| panic!("{setting} not reported:\n{err}"));
        assert!(line.contains(hint), "{setting}: `{line}` lacks `{hint}`");
    }
    assert!(err.starts_with("advancia: 11 invalid setting(s):"), "{err}");
    for secret in [
        "hunter2pass",
        "s3cretpw",
        "smtp-secret-value",
        "not-a-key-but-secret-material",
    ] {
        assert!(!err.contains(secret), "secret `{secret}` echoed:\n{err}");
    }
}

#[test]
fn serve_refuses_to_start_on_bad_settings_and_flags_override() {
    let mut env = good_env();
    env.push(("ADVANCIA_LISTEN", "127.0.0.1:1"));
    // The flag wins over the environment and is itself validated.
    let out = advancia(
        &[
            "serve",
            "--listen",
            "nowhere",
            "--services",
            "payments,nope",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("ADVANCIA_LISTEN (from command line): `nowhere`"),
        "{err}"
    );
    assert!(
        err.contains("ADVANCIA_SERVICES (from command line)"),
        "{err}"
    );
    let out = advancia(
        &["--config", "/nonexistent/advancia.toml", "check-config"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/advancia.toml"));
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "advancia-config-test-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
