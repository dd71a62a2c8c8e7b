//! Users, roles, passwords and email verification.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- users

    pub async fn register(&self, req: RegisterRequest) -> Result<User, AuthError> {
        let email = password::normalize_email(&req.email)?;
        let display_name = clean_display_name(&req.display_name)?;
        let pw = Zeroizing::new(req.password);
        password::check_policy(&pw, Some(&email), self.inner.config.min_password_length)?;
        let hash = self.hash_password(pw).await?;
        let now = self.now();
        let id = Uuid::now_v7();
        let row: UserRow = sqlx::query_as(&format!(
            "INSERT INTO auth.users (id, email, display_name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLS}"
        ))
        .bind(id)
        .bind(&email)
        .bind(&display_name)
        .bind(&hash)
        .bind(now)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(map_unique(AuthError::EmailTaken))?;
        self.event(
            &self.inner.pool,
            Some(id),
            "register",
            None,
            serde_json::json!({}),
        )
        .await?;
        tracing::info!(user_id = %id, "user registered");
        Ok(row.to_user())
    }

    /// The account with this email address, if any (operator tooling and account notices;
    /// never an answer to an anonymous request).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, AuthError> {
        let email = password::normalize_email(email)?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM auth.users WHERE email = $1"
        ))
        .bind(&email)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.map(|r| r.to_user()))
    }

    /// Creates an account with `roles` from operator tooling (`advancia admin create`):
    /// registration's checks, then the roles, with an `operator_created` audit event
    /// naming `operator` (the OS user who ran the command).
    pub async fn create_user_as_operator(
        &self,
        req: RegisterRequest,
        roles: Vec<Role>,
        operator: &str,
    ) -> Result<User, AuthError> {
        let user = self.register(req).await?;
        let user = self.set_roles_as_operator(user.id, roles).await?;
        self.event(
            &self.inner.pool,
            Some(user.id),
            "operator_created",
            None,
            serde_json::json!({ "operator": operator, "roles": user.roles }),
        )
        .await?;
        Ok(user)
    }

    /// Adds `roles` to the account with `email` from operator tooling (`advancia admin
    /// grant-role`), audited as `roles_assigned` by `operator`.
    pub async fn grant_roles_as_operator(
        &self,
        email: &str,
        roles: Vec<Role>,
        operator: &str,
    ) -> Result<User, AuthError> {
        let user = self
            .find_user_by_email(email)
            .await?
            .ok_or(AuthError::NotFound)?;
        let before = user.roles.clone();
        let mut all = before.clone();
        for r in roles {
            if !all.contains(&r) {
                all.push(r);
            }
        }
        let user = self.set_roles_as_operator(user.id, all).await?;
        self.event(
            &self.inner.pool,
            Some(user.id),
            "roles_assigned",
            None,
            serde_json::json!({ "operator": operator, "before": before, "roles": user.roles }),
        )
        .await?;
        Ok(user)
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User, AuthError> {
        Ok(self.user_row(&self.inner.pool, id).await?.to_user())
    }

    pub async fn update_user(&self, id: Uuid, update: UpdateUser) -> Result<User, AuthError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(clean_display_name)
            .transpose()?;
        let email = update
            .email
            .as_deref()
            .map(password::normalize_email)
            .transpose()?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET display_name = COALESCE($2, display_name), email = COALESCE($3, email), \
             email_verified_at = CASE WHEN $3 IS NULL OR $3 = email THEN email_verified_at END, \
             updated_at = $4 WHERE id = $1 RETURNING {USER_COLS}"
        ))
        .bind(id)
        .bind(&display_name)
        .bind(&email)
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(map_unique(AuthError::EmailTaken))?;
        let row = row.ok_or(AuthError::NotFound)?;
        if email.is_some() {
            self.event(
                &self.inner.pool,
                Some(id),
                "email_changed",
                None,
                serde_json::json!({}),
            )
            .await?;
        }
        Ok(row.to_user())
    }

    /// Replaces a user's roles. Only an `admin` (per token *and* per database,
    /// so a demoted admin's live token cannot) may do this.
    pub async fn assign_roles(
        &self,
        actor: &Claims,
        user_id: Uuid,
        roles: Vec<Role>,
    ) -> Result<User, AuthError> {
        self.require_db_admin(actor).await?;
        if actor.sub == user_id && !roles.contains(&Role::Admin) {
            // Guards against an admin locking everyone out by accident.
            return Err(AuthError::Refused(
                "admins cannot remove their own admin role".into(),
            ));
        }
        let user = self.set_roles_as_operator(user_id, roles).await?;
        self.event(
            &self.inner.pool,
            Some(user_id),
            "roles_assigned",
            None,
            serde_json::json!({ "by": actor.sub, "roles": user.roles }),
        )
        .await?;
        Ok(user)
    }

    /// Disables (offboarding) or re-enables an account; admin only, not oneself.
    /// Disabling revokes every session and pending 2FA challenge at once.
    pub async fn set_user_disabled(
        &self,
        actor: &Claims,
        user_id: Uuid,
        disabled: bool,
    ) -> Result<User, AuthError> {
        self.require_db_admin(actor).await?;
        if actor.sub == user_id {
            return Err(AuthError::Refused(
                "admins cannot disable themselves".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, $3) END, \
             updated_at = $3 WHERE id = $1 RETURNING {USER_COLS}"
        ))
        .bind(user_id)
        .bind(disabled)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(AuthError::NotFound)?;
        if disabled {
            sqlx::query(
                "UPDATE auth.refresh_families SET revoked_at = $2, revoked_reason = 'disabled' \
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE auth.two_factor_challenges SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let kind = if disabled {
            "account_disabled"
        } else {
            "account_enabled"
        };
        self.event(
            &mut *tx,
            Some(user_id),
            kind,
            None,
            serde_json::json!({ "by": actor.sub }),
        )
        .await?;
        tx.commit().await?;
        Ok(row.to_user())
    }

    /// `admin` in the token and, still, in the database.
    async fn require_db_admin(&self, actor: &Claims) -> Result<(), AuthError> {
        if !actor.has_role(Role::Admin) {
            return Err(AuthError::Forbidden);
        }
        let row = self
            .user_row(&self.inner.pool, actor.sub)
            .await
            .map_err(|_| AuthError::Forbidden)?;
        if !roles_from_db(&row.roles).contains(&Role::Admin) || row.disabled_at.is_some() {
            return Err(AuthError::Forbidden);
        }
        Ok(())
    }

    /// Sets roles without an acting user: for operator tooling (bootstrapping
    /// the first admin from a CLI), never reachable from a request.
    pub async fn set_roles_as_operator(
        &self,
        user_id: Uuid,
        roles: Vec<Role>,
    ) -> Result<User, AuthError> {
        if roles.is_empty() {
            return Err(AuthError::InvalidInput(
                "a user needs at least one role".into(),
            ));
        }
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET roles = $2, updated_at = $3 WHERE id = $1 RETURNING {USER_COLS}"
        ))
        .bind(user_id)
        .bind(roles_to_db(&roles))
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.ok_or(AuthError::NotFound)?.to_user())
    }

    // ---------------------------------------------------------------- passwords and email

    /// Changes the password of a signed-in user (current password required)
    /// and signs out every session: whoever knew the old one is out.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let row = self.user_row(&self.inner.pool, user_id).await?;
        row.check_not_locked(self.now())?;
        let phc = row
            .password_hash
            .clone()
            .ok_or(AuthError::InvalidCredentials)?;
        match self
            .verify_password(Zeroizing::new(current.to_owned()), phc)
            .await
        {
            Ok(_) => {}
            Err(AuthError::InvalidCredentials) => {
                let locked = self
                    .count_failure(
                        user_id,
                        "failed_logins",
                        self.inner.config.lockout.max_failures,
                    )
                    .await?;
                return Err(match locked {
                    Some(retry_after) => AuthError::LockedOut { retry_after },
                    None => AuthError::InvalidCredentials,
                });
            }
            Err(e) => return Err(e),
        }
        self.set_password(user_id, row.email.as_deref(), new, "password_changed")
            .await
    }

    /// Starts a password reset. Returns the token for the mailer, or `None` for
    /// an unknown or password-less account: the route must answer identically
    /// in both cases so it does not reveal which emails exist.
    pub async fn request_password_reset(&self, email: &str) -> Result<Option<Secret>, AuthError> {
        let Ok(email) = password::normalize_email(email) else {
            return Ok(None);
        };
        let user: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM auth.users WHERE email = $1 AND password_hash IS NOT NULL",
        )
        .bind(&email)
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(user_id) = user else { return Ok(None) };
        let token = self
            .issue_user_token(
                user_id,
                "password_reset",
                None,
                self.inner.config.password_reset_ttl,
            )
            .await?;
        self.event(
            &self.inner.pool,
            Some(user_id),
            "password_reset_requested",
            None,
            serde_json::json!({}),
        )
        .await?;
        Ok(Some(token))
    }

    /// Completes a reset: new password, lockout cleared, every session revoked.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let (user_id, _) = consume_user_token(&mut tx, token, "password_reset", now).await?;
        let row = self.user_row(&mut *tx, user_id).await?;
        password::check_policy(
            new_password,
            row.email.as_deref(),
            self.inner.config.min_password_length,
        )?;
        // Other outstanding reset links die with this one.
        sqlx::query(
            "UPDATE auth.user_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.set_password(
            user_id,
            row.email.as_deref(),
            new_password,
            "password_reset",
        )
        .await?;
        sqlx::query("UPDATE auth.users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn set_password(
        &self,
        user_id: Uuid,
        email: Option<&str>,
        new: &str,
        event: &str,
    ) -> Result<(), AuthError> {
        password::check_policy(new, email, self.inner.config.min_password_length)?;
        let hash = self.hash_password(Zeroizing::new(new.to_owned())).await?;
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("UPDATE auth.users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE auth.refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .bind(event)
        .execute(&mut *tx)
        .await?;
        self.event(&mut *tx, Some(user_id), event, None, serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A token proving ownership of the user's current email, for the mailer.
    pub async fn request_email_verification(&self, user_id: Uuid) -> Result<Secret, AuthError> {
        let row = self.user_row(&self.inner.pool, user_id).await?;
        let email = row
            .email
            .ok_or_else(|| AuthError::InvalidInput("account has no email address".into()))?;
        self.issue_user_token(
            user_id,
            "email_verification",
            Some(&email),
            self.inner.config.email_verification_ttl,
        )
        .await
    }

    /// Marks the email verified, if it is still the address the token was sent to.
    pub async fn verify_email(&self, token: &str) -> Result<User, AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let (user_id, email) =
            consume_user_token(&mut tx, token, "email_verification", now).await?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET email_verified_at = $3, updated_at = $3 WHERE id = $1 AND email = $2 \
             RETURNING {USER_COLS}"
        ))
        .bind(user_id)
        .bind(&email)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        // The address changed since the mail went out: the token proves nothing now.
        let row = row.ok_or(AuthError::InvalidToken)?;
        self.event(
            &mut *tx,
            Some(user_id),
            "email_verified",
            None,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(row.to_user())
    }

    pub(super) async fn issue_user_token(
        &self,
        user_id: Uuid,
        purpose: &str,
        email: Option<&str>,
        ttl: Duration,
    ) -> Result<Secret, AuthError> {
        let token = random_token();
        sqlx::query(
            "INSERT INTO auth.user_tokens (token_hash, user_id, purpose, email, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(user_id)
        .bind(purpose)
        .bind(email)
        .bind(self.now() + ttl)
        .execute(&self.inner.pool)
        .await?;
        Ok(Secret::new(token))
    }
}
