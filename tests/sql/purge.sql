-- crm.purge_email_queue: retention of finished queue rows, bounded per call; bad arguments are
-- 22023 with nothing deleted; analytics survive; only the server side may call it.
BEGIN;
SELECT plan(12);
SELECT tests.share_tap();

INSERT INTO crm.accounts (id, name) VALUES ('0000000a-0000-0000-0000-0000000000f1', 'Purge');
-- Rows as they would be after months of sending.
INSERT INTO crm.email_queue (account_id, recipient_email, subject, status, sent_at, updated_at, idempotency_key) VALUES
  ('0000000a-0000-0000-0000-0000000000f1', 'old-sent-1@x.io', 's', 'sent', now() - interval '100 days', now() - interval '100 days', 'k-old'),
  ('0000000a-0000-0000-0000-0000000000f1', 'old-sent-2@x.io', 's', 'sent', now() - interval '95 days', now() - interval '95 days', NULL),
  ('0000000a-0000-0000-0000-0000000000f1', 'old-failed@x.io', 's', 'failed', NULL, now() - interval '120 days', NULL),
  ('0000000a-0000-0000-0000-0000000000f1', 'old-cancelled@x.io', 's', 'cancelled', NULL, now() - interval '200 days', NULL),
  ('0000000a-0000-0000-0000-0000000000f1', 'old-pending@x.io', 's', 'pending', NULL, now() - interval '200 days', NULL),
  ('0000000a-0000-0000-0000-0000000000f1', 'old-processing@x.io', 's', 'processing', NULL, now() - interval '200 days', NULL),
  ('0000000a-0000-0000-0000-0000000000f1', 'recent-sent@x.io', 's', 'sent', now() - interval '1 day', now() - interval '1 day', NULL);
INSERT INTO crm.email_analytics (message_id, recipient_email, event, queue_item_id, account_id)
SELECT 'msg-old', 'old-sent-1@x.io', 'delivered', id, account_id FROM crm.email_queue WHERE recipient_email = 'old-sent-1@x.io';
CREATE FUNCTION pg_temp.left_rows() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(recipient_email, ',' ORDER BY recipient_email) FROM crm.email_queue WHERE account_id = '0000000a-0000-0000-0000-0000000000f1' $$;

SELECT throws_ok($$SELECT crm.purge_email_queue(interval '-1 day')$$, '22023', 'older_than must be a positive interval, not -1 days', 'a negative interval is refused');
SELECT throws_ok($$SELECT crm.purge_email_queue(NULL)$$, '22023', NULL, 'NULL older_than is refused');
SELECT throws_ok($$SELECT crm.purge_email_queue(interval '90 days', 0)$$, '22023', 'batch_size must be between 1 and 1000000', 'batch_size 0 is refused');
SELECT throws_ok($$SELECT crm.purge_email_queue(interval '90 days', 2000000)$$, '22023', NULL, 'an oversized batch_size is refused');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE account_id = '0000000a-0000-0000-0000-0000000000f1'), 7::bigint, '... and nothing was deleted');

SELECT is(crm.purge_email_queue(interval '90 days', 3), 3::bigint, 'at most batch_size rows per call');
SELECT is(crm.purge_email_queue(interval '90 days', 3), 1::bigint, 'the next call takes the rest');
SELECT is(crm.purge_email_queue(interval '90 days', 3), 0::bigint, 'then nothing is left to purge');
SELECT is(pg_temp.left_rows(), 'old-pending@x.io,old-processing@x.io,recent-sent@x.io',
          'unfinished rows and recent ones stay; sent, failed and cancelled rows past the retention go');
SELECT is((SELECT queue_item_id IS NULL FROM crm.email_analytics WHERE message_id = 'msg-old'), true,
          'the analytics of a purged email survive, unlinked');
SELECT isnt(crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000f1", "to": "again@x.io", "subject": "s", "text": "t", "idempotency_key": "k-old"}'),
            NULL, 'a purged row''s idempotency key queues again (the retention is the dedupe window)');

SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000f1"}');
SELECT throws_ok($$SELECT crm.purge_email_queue()$$, '42501', NULL, 'authenticated cannot purge');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
