//! Scoped partner API keys.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- API keys

    /// A scoped key for a partner. The plaintext is returned once; only its
    /// hash is stored.
    pub async fn create_api_key(
        &self,
        owner_user_id: Uuid,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<(ApiKeyId, Secret), AuthError> {
        let owner = self.user_row(&self.inner.pool, owner_user_id).await?;
        if !roles_from_db(&owner.roles)
            .iter()
            .any(|r| matches!(r, Role::Partner | Role::Admin))
        {
            return Err(AuthError::Forbidden);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AuthError::InvalidInput(
                "key name must be 1-100 printable characters".into(),
            ));
        }
        let scopes = clean_scopes(scopes)?;
        let id = Uuid::new_v4();
        let secret = random_token();
        sqlx::query(
            "INSERT INTO auth.api_keys (id, owner_id, name, scopes, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(owner_user_id)
        .bind(name)
        .bind(&scopes)
        .bind(token_hash(&secret))
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        self.event(
            &self.inner.pool,
            Some(owner_user_id),
            "api_key_created",
            None,
            serde_json::json!({ "key": id }),
        )
        .await?;
        Ok((
            ApiKeyId(id),
            Secret::new(format!("{API_KEY_PREFIX}{}_{secret}", id.simple())),
        ))
    }

    pub async fn verify_api_key(&self, presented: &str) -> Result<ApiKeyPrincipal, AuthError> {
        let (id, secret) = parse_api_key(presented).ok_or(AuthError::InvalidApiKey)?;
        let row: Option<ApiKeyRow> = sqlx::query_as(
            "SELECT k.owner_id, k.scopes, k.secret_hash, k.revoked_at, u.roles \
             FROM auth.api_keys k JOIN auth.users u ON u.id = k.owner_id \
             WHERE k.id = $1 AND u.disabled_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        let (owner, scopes, stored, revoked_at, owner_roles) =
            row.ok_or(AuthError::InvalidApiKey)?;
        if !bool::from(token_hash(secret).ct_eq(&stored)) || revoked_at.is_some() {
            return Err(AuthError::InvalidApiKey);
        }
        // A key is only as good as its owner's standing.
        if !roles_from_db(&owner_roles)
            .iter()
            .any(|r| matches!(r, Role::Partner | Role::Admin))
        {
            return Err(AuthError::InvalidApiKey);
        }
        let now = self.now();
        // Coarse last-used tracking: at most one write per key per minute.
        sqlx::query(
            "UPDATE auth.api_keys SET last_used_at = $2 WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < $2 - interval '1 minute')",
        )
        .bind(id)
        .bind(now)
        .execute(&self.inner.pool)
        .await?;
        Ok(ApiKeyPrincipal {
            key_id: ApiKeyId(id),
            owner,
            scopes,
        })
    }

    /// The owner or an admin may revoke; others get not-found. Idempotent.
    pub async fn revoke_api_key(&self, actor: &Claims, key_id: ApiKeyId) -> Result<(), AuthError> {
        let owner: Option<Uuid> =
            sqlx::query_scalar("SELECT owner_id FROM auth.api_keys WHERE id = $1")
                .bind(key_id.0)
                .fetch_optional(&self.inner.pool)
                .await?;
        let owner = owner.ok_or(AuthError::NotFound)?;
        if owner != actor.sub && !actor.has_role(Role::Admin) {
            return Err(AuthError::NotFound);
        }
        sqlx::query("UPDATE auth.api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(key_id.0)
            .bind(self.now())
            .execute(&self.inner.pool)
            .await?;
        self.event(
            &self.inner.pool,
            Some(owner),
            "api_key_revoked",
            None,
            serde_json::json!({ "key": key_id.0, "by": actor.sub }),
        )
        .await?;
        Ok(())
    }

    pub async fn list_api_keys(&self, owner_user_id: Uuid) -> Result<Vec<ApiKeyInfo>, AuthError> {
        type Row = (
            Uuid,
            Uuid,
            String,
            Vec<String>,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, owner_id, name, scopes, created_at, last_used_at, revoked_at FROM auth.api_keys \
             WHERE owner_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(owner_user_id)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, owner, name, scopes, created_at, last_used_at, revoked_at)| ApiKeyInfo {
                    id: ApiKeyId(id),
                    owner,
                    name,
                    scopes,
                    created_at,
                    last_used_at,
                    revoked_at,
                },
            )
            .collect())
    }
}
