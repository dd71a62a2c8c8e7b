//! TOTP (RFC 6238) over HOTP (RFC 4226) with HMAC-SHA-1: the variant every
//! authenticator app implements.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits in codes we issue and accept.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now (clock drift between phone and server).
pub const SKEW_STEPS: i64 = 1;

/// HOTP value for `counter` with `digits` digits (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// Time step for a Unix time.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS as i64)
}

/// TOTP value at `unix_secs` (T0 = 0, 30 s steps).
pub fn totp(secret: &[u8], unix_secs: i64, digits: u32) -> u32 {
    hotp(secret, step_at(unix_secs).max(0) as u64, digits)
}

/// Zero-padded 6-digit code at `unix_secs`, as an authenticator app shows it.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    format!("{:06}", totp(secret, unix_secs, DIGITS))
}

/// The step within ±[`SKEW_STEPS`] whose code equals `code`, if any. Compares
/// every candidate so timing does not reveal which step matched.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut found = None;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        if step < 0 {
            continue;
        }
        let candidate = format!("{:06}", hotp(secret, step as u64, DIGITS));
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            candidate.as_bytes(),
            code.as_bytes(),
        )) && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

/// `otpauth://` key URI (Google Authenticator format) for QR enrollment.
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    let label = format!("{}:{}", pct(issuer), pct(account));
    format!(
        "otpauth://totp/{label}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        pct(issuer)
    )
}

fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
