//! Identity for Advancia Pay Ledger: users with argon2id passwords, EdDSA
//! access tokens with key rotation, rotating refresh tokens with reuse
//! detection, TOTP 2FA with recovery codes and lockout, RBAC, partner API keys
//! and Sign-In With Solana. A library: the HTTP routes live in `api/`.

mod clock;
mod config;
mod crypto;
mod error;
mod jwt;
mod keys;
mod password;
mod roles;
mod secret;
mod service;
pub mod siws;
pub mod stats;
pub mod totp;
mod types;

use advancia_db::{Migration, ServiceMigrations};

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AuthConfig, LockoutPolicy, PasswordHashing, SiwsConfig, TotpEncryptionKey};
pub use error::AuthError;
pub use jwt::Claims;
pub use keys::{Ed25519Key, SigningKeys, jwk_thumbprint};
pub use roles::Role;
pub use secret::Secret;
pub use service::AuthService;
pub use siws::{SiwsMessage, WalletChain};
pub use types::{
    ApiKeyId, ApiKeyInfo, ApiKeyPrincipal, AuthEvent, ClientInfo, LoginOutcome, RegisterRequest,
    Session, SiwsChallenge, TokenPair, TotpEnrollment, UpdateUser, User,
};

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "auth",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "account_recovery",
            sql: include_str!("../migrations/0002_account_recovery.sql"),
        },
        Migration {
            version: 3,
            name: "disable_accounts",
            sql: include_str!("../migrations/0003_disable_accounts.sql"),
        },
    ],
};
