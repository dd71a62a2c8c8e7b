//! The ports services ask each other through (ADR 0023): each implemented here over the
//! owning service's typed reads, so no crate's SQL names another's schema and each service
//! may sit in a database of its own.

use advancia_auth::AuthService;
use advancia_chains::wallets::WalletStore;
use advancia_facilities::FacilityService;
use advancia_kyc::KycDirectory;
use advancia_kyc::directory::PortError;
use advancia_notifications::events::StaffDirectory;
use sqlx::PgPool;
use uuid::Uuid;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// KYC's questions: linked wallets (wallet service and sign-in), payment velocity (indexer).
#[derive(Clone)]
pub struct KycPorts {
    pub auth: AuthService,
    pub wallets: WalletStore,
    /// The indexer's database.
    pub indexer: PgPool,
}

impl KycDirectory for KycPorts {
    fn wallet_linked<'a>(
        &'a self,
        user: Uuid,
        address: &'a str,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move {
            if self.wallets.owns_on(user, "solana", address).await? {
                return Ok(true);
            }
            let signed_in = self.auth.wallets(user).await?;
            Ok(signed_in.iter().any(|(_, a)| a == address))
        })
    }

    fn payments_since<'a>(
        &'a self,
        payer: &'a str,
        since: [i64; 2],
    ) -> BoxFuture<'a, Result<[i64; 2], PortError>> {
        Box::pin(async move {
            Ok(advancia_indexer_store::query::payer_counts(&self.indexer, payer, since).await?)
        })
    }
}

/// Facilities' question: is this a user (staff link to users).
#[derive(Clone)]
pub struct AuthUsers(pub AuthService);

impl advancia_facilities::UserDirectory for AuthUsers {
    fn user_exists(&self, id: Uuid) -> BoxFuture<'_, Result<bool, PortError>> {
        Box::pin(async move {
            match self.0.get_user(id).await {
                Ok(_) => Ok(true),
                Err(advancia_auth::AuthError::NotFound) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Notifications' question: who works at a facility, in which roles.
#[derive(Clone)]
pub struct FacilityStaff(pub FacilityService);

impl StaffDirectory for FacilityStaff {
    fn staff_with_roles<'a>(
        &'a self,
        facility: Uuid,
        roles: &'a [&'static str],
    ) -> BoxFuture<'a, Result<Vec<Uuid>, advancia_db::follow::BoxError>> {
        Box::pin(async move { Ok(self.0.staff_user_ids(facility, roles).await?) })
    }
}
