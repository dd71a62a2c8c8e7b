//! Sign-In With Solana and wallet binding.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- Sign-In With Solana

    /// A one-time message for `address` to sign.
    pub async fn siws_challenge(&self, address: &str) -> Result<SiwsChallenge, AuthError> {
        siws::challenge_address(address)?;
        let cfg = &self.inner.config.siws;
        let now = self.now();
        let expires_at = now + cfg.challenge_ttl;
        // base58 of 128 random bits: alphanumeric, as the ABNF requires.
        let nonce = bs58::encode(random_bytes::<16>()).into_string();
        let message = SiwsMessage {
            domain: cfg.domain.clone(),
            address: address.to_owned(),
            statement: Some(cfg.statement.clone()).filter(|s| !s.is_empty()),
            uri: cfg.uri.clone(),
            version: "1".into(),
            chain_id: Some(cfg.chain_id.clone()),
            nonce: nonce.clone(),
            issued_at: now.replace_nanosecond(0).unwrap_or(now),
            expiration_time: Some(expires_at.replace_nanosecond(0).unwrap_or(expires_at)),
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        }
        .to_text()?;
        sqlx::query(
            "INSERT INTO auth.wallet_nonces (nonce, chain, address, message, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&nonce)
        .bind(WalletChain::Solana.as_str())
        .bind(address)
        .bind(&message)
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(SiwsChallenge {
            message,
            nonce,
            expires_at,
        })
    }

    pub async fn siws_verify(
        &self,
        message: &str,
        signature_base58: &str,
    ) -> Result<TokenPair, AuthError> {
        self.siws_verify_with_client(message, signature_base58, ClientInfo::default())
            .await
    }

    /// Signs in the account bound to the wallet, creating one (role `patient`)
    /// on first sign-in.
    pub async fn siws_verify_with_client(
        &self,
        message: &str,
        signature_base58: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        let address = self
            .consume_siws(&mut tx, message, signature_base58)
            .await?;
        let chain = WalletChain::Solana.as_str();
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM auth.wallets WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await?;
        let now = self.now();
        let user_id = match existing {
            Some(id) => id,
            None => {
                let id = Uuid::now_v7();
                let short = format!(
                    "{}…{}",
                    &address[..4.min(address.len())],
                    &address[address.len().saturating_sub(4)..]
                );
                sqlx::query(
                    "INSERT INTO auth.users (id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
                )
                .bind(id)
                .bind(format!("Wallet {short}"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO auth.wallets (chain, address, user_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(chain)
                    .bind(&address)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                self.event(
                    &mut *tx,
                    Some(id),
                    "register_wallet",
                    Some(&client),
                    serde_json::json!({ "address": address }),
                )
                .await?;
                id
            }
        };
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        row.check_active()?;
        let tokens = self
            .start_session(&mut tx, &row, &["wallet"], &client)
            .await?;
        self.event(
            &mut *tx,
            Some(user_id),
            "login",
            Some(&client),
            serde_json::json!({ "amr": ["wallet"], "address": address }),
        )
        .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Binds a wallet to an already signed-in account (proof: a signed challenge).
    pub async fn siws_link(
        &self,
        user_id: Uuid,
        message: &str,
        signature_base58: &str,
    ) -> Result<(), AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        self.user_row(&mut *tx, user_id).await?;
        let address = self
            .consume_siws(&mut tx, message, signature_base58)
            .await?;
        let res = sqlx::query(
            "INSERT INTO auth.wallets (chain, address, user_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain, address) DO NOTHING",
        )
        .bind(WalletChain::Solana.as_str())
        .bind(&address)
        .bind(user_id)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            let owner: Uuid = sqlx::query_scalar(
                "SELECT user_id FROM auth.wallets WHERE chain = $1 AND address = $2",
            )
            .bind(WalletChain::Solana.as_str())
            .bind(&address)
            .fetch_one(&mut *tx)
            .await?;
            if owner != user_id {
                return Err(AuthError::InvalidInput(
                    "wallet is bound to another account".into(),
                ));
            }
        }
        self.event(
            &mut *tx,
            Some(user_id),
            "wallet_linked",
            None,
            serde_json::json!({ "address": address }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Wallet addresses bound to the user.
    pub async fn wallets(&self, user_id: Uuid) -> Result<Vec<(WalletChain, String)>, AuthError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT address FROM auth.wallets WHERE user_id = $1 AND chain = $2 ORDER BY created_at, address",
        )
        .bind(user_id)
        .bind(WalletChain::Solana.as_str())
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows.into_iter().map(|a| (WalletChain::Solana, a)).collect())
    }

    /// Verifies domain, signature, time window and the single-use nonce;
    /// returns the signing address.
    pub(super) async fn consume_siws(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &str,
        signature_base58: &str,
    ) -> Result<String, AuthError> {
        let msg = SiwsMessage::parse(message).map_err(siws::as_message_error)?;
        let cfg = &self.inner.config.siws;
        if msg.domain != cfg.domain {
            return Err(AuthError::DomainMismatch {
                expected: cfg.domain.clone(),
                got: msg.domain,
            });
        }
        siws::verify_signature(&msg.address, message, signature_base58)
            .map_err(siws::as_message_error)?;
        let now = self.now();
        if msg.expiration_time.is_some_and(|t| t <= now) {
            return Err(AuthError::ChallengeExpired);
        }
        if msg.not_before.is_some_and(|t| t > now) {
            return Err(AuthError::InvalidMessage(
                "sign-in message is not valid yet".into(),
            ));
        }
        let stored: Option<(String, String, String, OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
            "SELECT chain, address, message, expires_at, used_at FROM auth.wallet_nonces WHERE nonce = $1 FOR UPDATE",
        )
        .bind(&msg.nonce)
        .fetch_optional(&mut **tx)
        .await?;
        let (chain, address, issued, expires_at, used_at) =
            stored.ok_or(AuthError::InvalidNonce)?;
        // Only the exact message we issued, for the address and chain we issued it to.
        if used_at.is_some()
            || chain != WalletChain::Solana.as_str()
            || address != msg.address
            || issued != message
        {
            return Err(AuthError::InvalidNonce);
        }
        if expires_at <= now {
            return Err(AuthError::ChallengeExpired);
        }
        sqlx::query("UPDATE auth.wallet_nonces SET used_at = $2 WHERE nonce = $1")
            .bind(&msg.nonce)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        // Serialises first sign-ins of one wallet: exactly one account gets created.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}:{}", WalletChain::Solana.as_str(), msg.address))
            .execute(&mut **tx)
            .await?;
        Ok(msg.address)
    }
}
