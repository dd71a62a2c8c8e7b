-- Account notices sent to an account's own address (not its preferences): registration
-- with an address that already has an account tells its owner, not the requester.
INSERT INTO templates (key, description, subject, body_text, body_html) VALUES
('account.registration_attempted', 'Someone tried to register with the address of an existing account',
 'Someone tried to create an account with your email address',
 'Someone tried to create a new Advancia account with this email address ({{ email }}), which already has one. If it was you, sign in instead (or reset your password). If not, you can ignore this message: nothing was changed.',
 '<p>Someone tried to create a new Advancia account with this email address (<code>{{ email }}</code>), which already has one.</p><p>If it was you, sign in instead (or reset your password). If not, you can ignore this message: nothing was changed.</p>');
