//! Sign-In With Solana message text (the EIP-4361 ABNF with "Solana account"),
//! as Phantom, Solflare and the Wallet Standard `solana:signIn` feature produce.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AuthError;

const HEADER_SUFFIX: &str = " wants you to sign in with your Solana account:";

/// Chains a wallet can sign in with. EIP-4361 (SIWE) becomes `Ethereum` once
/// the EVM side exists: it needs a secp256k1 `personal_sign` recovery in
/// `verify_wallet_signature` and the same nonce/wallet tables (keyed by chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalletChain {
    Solana,
}

impl WalletChain {
    pub fn as_str(self) -> &'static str {
        match self {
            WalletChain::Solana => "solana",
        }
    }
}

/// The fields of a sign-in message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiwsMessage {
    pub domain: String,
    pub address: String,
    pub statement: Option<String>,
    pub uri: String,
    pub version: String,
    pub chain_id: Option<String>,
    pub nonce: String,
    pub issued_at: OffsetDateTime,
    pub expiration_time: Option<OffsetDateTime>,
    pub not_before: Option<OffsetDateTime>,
    pub request_id: Option<String>,
    pub resources: Vec<String>,
}

fn ts(t: OffsetDateTime) -> Result<String, AuthError> {
    t.format(&Rfc3339)
        .map_err(|e| AuthError::Internal(format!("timestamp format: {e}")))
}

fn parse_ts(s: &str) -> Result<OffsetDateTime, AuthError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad("timestamp is not RFC 3339"))
}

fn bad(why: &str) -> AuthError {
    AuthError::InvalidInput(format!("sign-in message: {why}"))
}

impl SiwsMessage {
    /// The exact text the wallet signs.
    pub fn to_text(&self) -> Result<String, AuthError> {
        let mut s = format!("{}{HEADER_SUFFIX}\n{}", self.domain, self.address);
        if let Some(st) = &self.statement {
            s.push_str("\n\n");
            s.push_str(st);
        }
        s.push_str("\n\n");
        let mut fields = vec![
            format!("URI: {}", self.uri),
            format!("Version: {}", self.version),
        ];
        if let Some(c) = &self.chain_id {
            fields.push(format!("Chain ID: {c}"));
        }
        fields.push(format!("Nonce: {}", self.nonce));
        fields.push(format!("Issued At: {}", ts(self.issued_at)?));
        if let Some(t) = self.expiration_time {
            fields.push(format!("Expiration Time: {}", ts(t)?));
        }
        if let Some(t) = self.not_before {
            fields.push(format!("Not Before: {}", ts(t)?));
        }
        if let Some(r) = &self.request_id {
            fields.push(format!("Request ID: {r}"));
        }
        if !self.resources.is_empty() {
            fields.push("Resources:".into());
            fields.extend(self.resources.iter().map(|r| format!("- {r}")));
        }
        s.push_str(&fields.join("\n"));
        Ok(s)
    }

    /// Strict parse: fields in ABNF order, no unknown or repeated fields.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut lines = text.split('\n');
        let domain = lines
            .next()
            .and_then(|l| l.strip_suffix(HEADER_SUFFIX))
            .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
            .ok_or_else(|| bad("missing header line"))?
            .to_owned();
        let address = lines
            .next()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("missing address"))?
            .to_owned();
        if lines.next() != Some("") {
            return Err(bad("expected blank line after address"));
        }
        let mut next = lines.next().ok_or_else(|| bad("truncated"))?;
        let mut statement = None;
        if !next.starts_with("URI: ") {
            statement = Some(next.to_owned());
            if lines.next() != Some("") {
                return Err(bad("expected blank line after statement"));
            }
            next = lines.next().ok_or_else(|| bad("truncated"))?;
        }
        let mut rest = std::iter::once(next).chain(lines).peekable();
        let mut field = |name: &str, required: bool| -> Result<Option<String>, AuthError> {
            let prefix = format!("{name}: ");
            match rest.peek().and_then(|l| l.strip_prefix(prefix.as_str())) {
                Some(v) => {
                    let v = v.to_owned();
                    rest.next();
                    Ok(Some(v))
                }
                None if required => Err(bad(&format!("missing {name}"))),
                None => Ok(None),
            }
        };
        let uri = field("URI", true)?.unwrap_or_default();
        let version = field("Version", true)?.unwrap_or_default();
        let chain_id = field("Chain ID", false)?;
        let nonce = field("Nonce", true)?.unwrap_or_default();
        let issued_at = parse_ts(&field("Issued At", true)?.unwrap_or_default())?;
        let expiration_time = field("Expiration Time", false)?
            .as_deref()
            .map(parse_ts)
            .transpose()?;
        let not_before = field("Not Before", false)?
            .as_deref()
            .map(parse_ts)
            .transpose()?;
        let request_id = field("Request ID", false)?;
        let mut resources = Vec::new();
        if rest.peek() == Some(&"Resources:") {
            rest.next();
            for l in rest.by_ref() {
                resources.push(
                    l.strip_prefix("- ")
                        .ok_or_else(|| bad("bad resource line"))?
                        .to_owned(),
                );
            }
        }
        if rest.next().is_some() {
            return Err(bad("unexpected trailing content"));
        }
        if version != "1" {
            return Err(bad("unsupported version"));
        }
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("nonce must be at least 8 alphanumerics"));
        }
        Ok(Self {
            domain,
            address,
            statement,
            uri,
            version,
            chain_id,
            nonce,
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }
}

/// Decodes a base58 Solana address into its Ed25519 public key.
/// The documented syntax of a wallet address (OpenAPI `pattern`): base58, Bitcoin
/// alphabet, 32 to 44 characters (the lengths 32 bytes take).
pub const ADDRESS_PATTERN: &str = "^[1-9A-HJ-NP-Za-km-z]{32,44}$";

fn is_address_syntax(s: &str) -> bool {
    (32..=44).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l'))
}

/// The address a challenge is asked for. Outside [`ADDRESS_PATTERN`] it is malformed
/// input (`InvalidInput`); inside it but no wallet's key (not 32 bytes, off the curve) it
/// is `InvalidAddress`: well-formed, refused as it stands.
pub(crate) fn challenge_address(address: &str) -> Result<ed25519_dalek::VerifyingKey, AuthError> {
    solana_pubkey(address).map_err(|e| match e {
        AuthError::InvalidInput(why) if is_address_syntax(address) => {
            AuthError::InvalidAddress(why)
        }
        e => e,
    })
}

/// A sign-in message's own defects (it does not parse, its address is no key, it is not
/// valid yet) mean it is not a message we issued: the sign-in fails (`InvalidMessage`),
/// like a bad signature, rather than the request being malformed.
pub(crate) fn as_message_error(e: AuthError) -> AuthError {
    match e {
        AuthError::InvalidInput(why) => AuthError::InvalidMessage(why),
        e => e,
    }
}

pub(crate) fn solana_pubkey(address: &str) -> Result<ed25519_dalek::VerifyingKey, AuthError> {
    // 32 bytes take at most 44 characters. Checked before decoding: base58 decoding is
    // quadratic in the length (a 200 kB address held a worker for seconds).
    if address.len() > 44 {
        return Err(AuthError::InvalidInput(
            "address is at most 44 base58 characters".into(),
        ));
    }
    let bytes = bs58::decode(address)
        .into_vec()
        .map_err(|_| AuthError::InvalidInput("address is not base58".into()))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| AuthError::InvalidInput("address must be 32 bytes".into()))?;
    // Off-curve addresses (PDAs) cannot sign: reject them up front.
    ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| AuthError::InvalidInput("address is not an Ed25519 public key".into()))
}

/// ed25519 over the exact message bytes, signature in base58 (wallet output).
pub(crate) fn verify_signature(
    address: &str,
    message: &str,
    signature_base58: &str,
) -> Result<(), AuthError> {
    let key = solana_pubkey(address)?;
    // 64 bytes take at most 88 characters; longer is no signature (and not decoded).
    if signature_base58.trim().len() > 88 {
        return Err(AuthError::InvalidSignature);
    }
    let sig_bytes = bs58::decode(signature_base58.trim())
        .into_vec()
        .map_err(|_| AuthError::InvalidSignature)?;
    let sig = ed25519_dalek::Signature::from_slice(&sig_bytes)
        .map_err(|_| AuthError::InvalidSignature)?;
    key.verify_strict(message.as_bytes(), &sig)
        .map_err(|_| AuthError::InvalidSignature)
}
