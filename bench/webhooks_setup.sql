-- Signed webhook deliveries for one benchmark run: :events Stripe payment_intent.succeeded
-- events (each paying its own invoice, so every delivery has its full effect) or Resend
-- email.delivered events (each matched to its own queue row), signed now, the way the
-- providers sign them (pgcrypto HMAC).
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP TABLE IF EXISTS bench.hooks;
DROP SEQUENCE IF EXISTS bench.hook_seq;
CREATE SEQUENCE bench.hook_seq;
INSERT INTO crm.accounts (id, name) VALUES ('0000000b-0000-0000-0000-00000000beef', 'Bench') ON CONFLICT DO NOTHING;

CREATE TABLE bench.hooks (n bigint PRIMARY KEY, provider text, headers jsonb, body text);
SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS ts \gset

-- :run is the run number: ids never repeat across runs
INSERT INTO crm.invoices (id, account_id, invoice_number, amount, status)
SELECT gen_random_uuid(), '0000000b-0000-0000-0000-00000000beef', 'B' || :run || '-' || n, 4200, 'sent'
FROM generate_series(1, :events) n WHERE :'provider' = 'stripe';
INSERT INTO crm.email_queue (account_id, recipient_email, subject, html_content, status, metadata)
SELECT '0000000b-0000-0000-0000-00000000beef', 'c' || n || '@example.com', 'Hi', 'x', 'sent',
       jsonb_build_object('provider_message_id', 're_' || :run || '_' || n)
FROM generate_series(1, :events) n WHERE :'provider' = 'resend';

INSERT INTO bench.hooks
SELECT n, 'stripe', jsonb_build_object('Stripe-Signature',
         't=' || :ts || ',v1=' || encode(hmac(convert_to(:ts || '.' || b, 'UTF8'), 'whsec_bench'::bytea, 'sha256'), 'hex')), b
FROM (SELECT n, jsonb_build_object('id', 'evt_' || :run || '_' || n, 'object', 'event', 'type', 'payment_intent.succeeded',
             'created', :ts, 'livemode', false,
             'data', jsonb_build_object('object', jsonb_build_object('id', 'pi_' || :run || '_' || n, 'object', 'payment_intent',
                 'amount', 4200, 'amount_received', 4200, 'currency', 'usd', 'status', 'succeeded',
                 'metadata', jsonb_build_object('invoice_id', i.id))))::text AS b
      FROM (SELECT id, row_number() OVER (ORDER BY invoice_number) AS n FROM crm.invoices
            WHERE invoice_number LIKE 'B' || :run || '-%') i) s
WHERE :'provider' = 'stripe';

INSERT INTO bench.hooks
SELECT n, 'resend', jsonb_build_object('svix-id', 'msg_' || :run || '_' || n, 'svix-timestamp', :ts::text,
         'svix-signature', 'v1,' || encode(hmac(convert_to('msg_' || :run || '_' || n || '.' || :ts || '.' || b, 'UTF8'),
                                                decode('YmVuY2gtc2VjcmV0LWtleS0zMi1ieXRlcy1sb25nISE=', 'base64'), 'sha256'), 'base64')), b
FROM (SELECT n, jsonb_build_object('type', 'email.delivered', 'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'data', jsonb_build_object('created_at', now(), 'email_id', 're_' || :run || '_' || n,
                 'from', 'CRM <noreply@example.com>', 'to', jsonb_build_array('c' || n || '@example.com'),
                 'subject', 'Hi'))::text AS b
      FROM generate_series(1, :events) n) s
WHERE :'provider' = 'resend';
ANALYZE bench.hooks;
