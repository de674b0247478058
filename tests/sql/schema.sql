-- Schema contract: reference column names, constrained statuses, maintained updated_at, one
-- default provider per account/user.
BEGIN;
SELECT plan(16);

SELECT columns_are('crm', 'email_providers', ARRAY['id', 'account_id', 'user_id', 'provider', 'provider_email',
    'access_token_encrypted', 'refresh_token_encrypted', 'token_expires_at', 'is_active', 'is_default',
    'last_synced_at', 'created_at', 'updated_at',
    -- added (connections, 0.4.0): what the connect flow and the token refresh record
    'scopes', 'connected_at', 'last_refresh_at', 'last_error', 'needs_reconnect'],
    'email_providers has the reference columns, and the connection health columns');
SELECT columns_are('crm', 'calendar_providers', ARRAY['id', 'account_id', 'user_id', 'provider', 'provider_email',
    'access_token_encrypted', 'refresh_token_encrypted', 'token_expires_at', 'is_active', 'is_default',
    'last_synced_at', 'created_at', 'updated_at',
    -- added (connections, 0.4.0): what the connect flow and the token refresh record
    'scopes', 'connected_at', 'last_refresh_at', 'last_error', 'needs_reconnect',
    -- added (calendar, 0.4.0): which calendar jobs go to
    'calendar_id'],
    'calendar_providers has the reference columns, the connection health columns and calendar_id');
SELECT has_index('crm', 'calendar_providers', 'idx_calendar_providers_account_user', 'calendar_providers account/user index');
SELECT has_index('crm', 'email_providers', 'idx_email_providers_active', 'email_providers active index');
SELECT ok((SELECT array_agg(c ORDER BY c) FROM unnest(ARRAY['id', 'account_id', 'recipient_email', 'recipient_name', 'subject',
    'html_content', 'text_content', 'template_id', 'template_variables', 'from_email', 'reply_to', 'status', 'attempts',
    'max_attempts', 'last_error', 'scheduled_at', 'sent_at', 'created_at', 'updated_at', 'metadata', 'provider', 'batch_id']) c
    WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = 'email_queue' AND column_name = c)) IS NULL,
    'email_queue has every reference column');
SELECT ok((SELECT array_agg(c) FROM unnest(ARRAY['id', 'message_id', 'recipient_email', 'event', 'timestamp', 'data',
    'ip_address', 'user_agent', 'queue_item_id']) c
    WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = 'email_analytics' AND column_name = c)) IS NULL,
    'email_analytics has every reference column');
SELECT is((SELECT count(*) FROM pg_tables WHERE schemaname = 'crm' AND NOT rowsecurity), 0::bigint, 'RLS is on for every crm table');

INSERT INTO crm.accounts (id, name) VALUES ('00000000-0000-0000-0000-0000000000c1', 'Schema Co');
INSERT INTO crm.users (id, account_id, email) VALUES ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000c1', 'u@x.example');

SELECT throws_ok($$INSERT INTO crm.jobs (account_id, title, status) VALUES ('00000000-0000-0000-0000-0000000000c1', 't', 'done')$$,
    '23514', NULL, 'job status is constrained');
SELECT throws_ok($$INSERT INTO crm.invoices (account_id, amount, status) VALUES ('00000000-0000-0000-0000-0000000000c1', 1, 'open')$$,
    '23514', NULL, 'invoice status is constrained');
SELECT throws_ok($$INSERT INTO crm.invoices (account_id, amount) VALUES ('00000000-0000-0000-0000-0000000000c1', -1)$$,
    '23514', NULL, 'invoice amount cannot be negative');
SELECT throws_ok($$INSERT INTO crm.email_queue (account_id, recipient_email, subject, status) VALUES ('00000000-0000-0000-0000-0000000000c1', 'a@b.c', 's', 'lost')$$,
    '23514', NULL, 'queue status is constrained');

-- One default per account and user (user_id NULL counts as one "user": the account-wide default).
INSERT INTO crm.calendar_providers (account_id, user_id, provider, provider_email, access_token_encrypted, is_default)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000c2', 'google', 'a@x', 't', true),
       ('00000000-0000-0000-0000-0000000000c1', NULL, 'google', 'b@x', 't', true);
SELECT throws_ok($$INSERT INTO crm.calendar_providers (account_id, user_id, provider, provider_email, access_token_encrypted, is_default)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000c2', 'outlook', 'c@x', 't', true)$$,
    '23505', NULL, 'a second default calendar for the same user is refused');
SELECT throws_ok($$INSERT INTO crm.calendar_providers (account_id, provider, provider_email, access_token_encrypted, is_default)
    VALUES ('00000000-0000-0000-0000-0000000000c1', 'google', 'd@x', 't', true)$$,
    '23505', NULL, 'a second account-wide default calendar is refused');
SELECT lives_ok($$INSERT INTO crm.calendar_providers (account_id, user_id, provider, provider_email, access_token_encrypted, is_default)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000c2', 'outlook', 'e@x', 't', false)$$,
    'non-default providers are unlimited');

-- updated_at follows updates; created_at does not.
UPDATE crm.accounts SET created_at = now() - interval '1 day', updated_at = now() - interval '1 day'
 WHERE id = '00000000-0000-0000-0000-0000000000c1';
SELECT is((SELECT updated_at FROM crm.accounts WHERE id = '00000000-0000-0000-0000-0000000000c1'), now(),
          'the trigger overrides a caller-supplied updated_at');
SELECT is((SELECT created_at FROM crm.accounts WHERE id = '00000000-0000-0000-0000-0000000000c1'), now() - interval '1 day',
          'created_at is left alone');

SELECT * FROM finish();
ROLLBACK;
