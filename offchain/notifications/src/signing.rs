//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, the signature `v1,` + base64 of its
//! HMAC-SHA256 under the secret's key, and the secret travels as `whsec_` + base64(key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::NotificationError;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key length of the secrets we generate (the spec allows 24 to 64 bytes).
const KEY_LEN: usize = 32;

/// A fresh random secret, `whsec_<base64 of 32 bytes>`.
pub fn generate_secret() -> String {
    let key: [u8; KEY_LEN] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key inside a `whsec_` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, NotificationError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        NotificationError::Invalid(format!("webhook secrets start with {SECRET_PREFIX}"))
    })?;
    let key = STANDARD
        .decode(b64)
        .map_err(|_| NotificationError::Invalid("webhook secret is not base64".into()))?;
    if !(24..=64).contains(&key.len()) {
        return Err(NotificationError::Invalid(
            "webhook secret keys are 24 to 64 bytes".into(),
        ));
    }
    Ok(key)
}

/// `v1,<base64 signature>` of one delivery attempt.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matches_the_specs_example() {
        // The example of the Standard Webhooks reference libraries' test suites.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_parse() {
        let s = generate_secret();
        assert_eq!(secret_key(&s).unwrap().len(), KEY_LEN);
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(secret_key("whsec_c2hvcnQ=").is_err());
    }
}
