-- crm.ingest_webhook: signatures (official vectors, rotation, case-insensitive headers), every
-- rejection with its SQLSTATE and nothing written, deduplication, Stripe and Resend effects,
-- out-of-order Stripe events, suppression, the PostgREST entry points.
BEGIN;
SELECT plan(64);

SET LOCAL crm.stripe_webhook_secret = 'whsec_test_secret';
SET LOCAL crm.resend_webhook_secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

INSERT INTO crm.accounts (id, name) VALUES ('0000000a-0000-0000-0000-00000000aaaa', 'Hooks A');
INSERT INTO crm.jobs (id, account_id, title, status) VALUES
  ('0000000a-0000-0000-0000-0000000000b1', '0000000a-0000-0000-0000-00000000aaaa', 'Job 1', 'completed'),
  ('0000000a-0000-0000-0000-0000000000b2', '0000000a-0000-0000-0000-00000000aaaa', 'Job 2', 'completed'),
  ('0000000a-0000-0000-0000-0000000000b3', '0000000a-0000-0000-0000-00000000aaaa', 'Job 3', 'completed');
INSERT INTO crm.invoices (id, account_id, job_id, invoice_number, amount, status, stripe_payment_intent_id) VALUES
  ('0000000a-0000-0000-0000-0000000000c1', '0000000a-0000-0000-0000-00000000aaaa', '0000000a-0000-0000-0000-0000000000b1', 'W-1', 12345, 'sent', NULL),
  ('0000000a-0000-0000-0000-0000000000c2', '0000000a-0000-0000-0000-00000000aaaa', '0000000a-0000-0000-0000-0000000000b2', 'W-2', 5000, 'sent', 'pi_by_intent'),
  ('0000000a-0000-0000-0000-0000000000c3', '0000000a-0000-0000-0000-00000000aaaa', '0000000a-0000-0000-0000-0000000000b3', 'W-3', 7000, 'sent', NULL);
CREATE TEMP TABLE ev (k text PRIMARY KEY, body text);
INSERT INTO ev VALUES
  ('ok',      tests.stripe_event('evt_ok', 'payment_intent.succeeded', 'pi_1', '0000000a-0000-0000-0000-0000000000c1')),
  ('late_fail', tests.stripe_event('evt_late_fail', 'payment_intent.payment_failed', 'pi_1', '0000000a-0000-0000-0000-0000000000c1', failure => 'Your card was declined.')),
  ('by_intent', tests.stripe_event('evt_by_intent', 'payment_intent.succeeded', 'pi_by_intent', NULL, 5000)),
  ('fail_first', tests.stripe_event('evt_fail_first', 'payment_intent.payment_failed', 'pi_3', '0000000a-0000-0000-0000-0000000000c3', 7000, 'Insufficient funds.')),
  ('then_ok', tests.stripe_event('evt_then_ok', 'payment_intent.succeeded', 'pi_3', '0000000a-0000-0000-0000-0000000000c3', 7000)),
  ('unknown_inv', tests.stripe_event('evt_unknown', 'payment_intent.succeeded', 'pi_nobody', '99999999-0000-0000-0000-000000000000')),
  ('other_type', '{"id": "evt_cust", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}');
CREATE FUNCTION pg_temp.stripe(k text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_test_secret'), body) FROM ev WHERE ev.k = $1 $$;
CREATE FUNCTION pg_temp.events() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM crm.webhook_events $$;
CREATE TEMP TABLE before AS SELECT pg_temp.events() AS n;

-- Official vectors: the signature verifies, then the body (which is not an event) is refused.
SET LOCAL crm.stripe_webhook_tolerance = 0;
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe',
    '{"Stripe-Signature": "t=1700000000,v1=4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150"}',
    E'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}')$$,
    '22023', 'stripe webhook body lacks an event id or type', 'stripe-python''s signature verifies (then: no type, 22023)');
SET LOCAL crm.resend_webhook_tolerance = 0;
SELECT throws_ok($$SELECT crm.ingest_webhook('resend',
    '{"svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "svix-timestamp": "1614265330", "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}',
    '{"test": 2432232314}')$$,
    '22023', 'resend webhook body lacks an event id or type', 'Svix''s published vector verifies (then: no type, 22023)');
RESET crm.stripe_webhook_tolerance;
RESET crm.resend_webhook_tolerance;

-- Rejections: SQLSTATE, and nothing written.
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_wrong'), body) FROM ev WHERE k = 'ok'$$,
    '28000', 'stripe webhook rejected: no signature matches the payload', 'wrong secret: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', '{}', body) FROM ev WHERE k = 'ok'$$,
    '28000', 'stripe webhook rejected: missing Stripe-Signature header', 'no signature header: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', '{"Stripe-Signature": "v1=abc"}', body) FROM ev WHERE k = 'ok'$$,
    '28000', 'stripe webhook rejected: malformed Stripe-Signature header', 'malformed header: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_test_secret'), body || ' ') FROM ev WHERE k = 'ok'$$,
    '28000', NULL, 'one byte added to the body: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_test_secret', floor(extract(epoch FROM clock_timestamp()))::bigint - 305), body) FROM ev WHERE k = 'ok'$$,
    '28000', NULL, 'timestamp 305 s old: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_test_secret', floor(extract(epoch FROM clock_timestamp()))::bigint + 400), body) FROM ev WHERE k = 'ok'$$,
    '28000', NULL, 'timestamp 400 s in the future: 28000');
SELECT ok(position('whsec_test_secret' IN tests.error_text($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_wrong'), body) FROM ev WHERE k = 'ok'$$)) = 0,
    'the error does not quote the secret');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers('not json', 'whsec_test_secret'), 'not json')$$,
    '22P02', NULL, 'signed body that is not JSON: 22P02');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers('[1]', 'whsec_test_secret'), '[1]')$$,
    '22023', NULL, 'signed body that is not an object: 22023');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers('{"type": "x"}', 'whsec_test_secret'), '{"type": "x"}')$$,
    '22023', 'stripe webhook body lacks an event id or type', 'signed body without id: 22023');
SELECT throws_ok(format($q$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(%1$L, 'whsec_test_secret'), %1$L)$q$,
                        json_build_object('id', 'evt_' || repeat('x', 253), 'type', 'x')),
    '22023', 'stripe webhook event id over 256 characters or type over 200', 'signed event id of 257 characters: 22023 (was a CHECK violation)');
SELECT is((SELECT count(*) FROM crm.webhook_events WHERE event_id LIKE 'evt\_xxx%'), 0::bigint, '... and nothing is stored');
SELECT throws_ok($$SELECT crm.ingest_webhook('paypal', '{}', '{}')$$, '22023', 'unknown webhook provider "paypal" (expected stripe, resend or elevenlabs)', 'unknown provider: 22023');
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', '[]', '{}')$$, '22023', 'webhook headers must be a JSON object', 'headers not an object: 22023');
SET LOCAL crm.stripe_webhook_secret = '';
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(body, 'whsec_test_secret'), body) FROM ev WHERE k = 'ok'$$,
    '55000', 'crm.stripe_webhook_secret is not set: webhooks cannot be verified', 'no secret configured: 55000');
SET LOCAL crm.stripe_webhook_secret = 'whsec_test_secret';
SET LOCAL crm.resend_webhook_secret = 'whsec_%%%';
SELECT throws_ok($$SELECT crm.ingest_webhook('resend', tests.svix_headers('msg_1', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), '{}')$$,
    '55000', NULL, 'unusable Resend secret: 55000');
SET LOCAL crm.resend_webhook_secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
SET LOCAL crm.webhook_max_body = '1kB';
SELECT throws_ok($$SELECT crm.ingest_webhook('stripe', tests.stripe_headers(b, 'whsec_test_secret'), b)
                   FROM (SELECT '{"id": "evt_big", "type": "x", "pad": "' || repeat('x', 2000) || '"}' AS b) s$$,
    '54000', NULL, 'body over crm.webhook_max_body: 54000');
RESET crm.webhook_max_body;
SELECT throws_ok($$SELECT crm.ingest_webhook('resend', '{"svix-id": "msg_1", "svix-timestamp": "1"}', '{}')$$,
    '28000', 'resend webhook rejected: missing svix-signature header', 'Resend without signature: 28000');
SELECT throws_ok($$SELECT crm.ingest_webhook('resend', tests.svix_headers('msg_x', '{"type":"email.sent"}', 'whsec_dGhlIHdyb25nIGtleQ=='), '{"type":"email.sent"}')$$,
    '28000', NULL, 'Resend with a wrong secret: 28000');
SELECT is(pg_temp.events(), (SELECT n FROM before), 'no rejected webhook wrote an event');
SELECT is(crm.ingest_webhook('stripe', tests.stripe_headers(b, 'whsec_test_secret'), b) ->> 'status', 'ignored',
          'an event id of exactly 256 characters is taken')
FROM (SELECT json_build_object('id', 'evt_' || repeat('y', 252), 'type', 'x')::text AS b) s;
SELECT is((SELECT count(*) FROM crm.payments), 0::bigint, '... nor a payment');

-- Stripe effects.
SELECT is(pg_temp.stripe('ok') ->> 'status', 'processed', 'payment_intent.succeeded is processed');
SELECT is((SELECT status FROM crm.invoices WHERE invoice_number = 'W-1'), 'paid', 'the invoice is paid');
SELECT is((SELECT status FROM crm.jobs WHERE title = 'Job 1'), 'paid', 'the job is paid');
SELECT results_eq($$SELECT amount, currency, status, stripe_payment_intent_id FROM crm.payments WHERE invoice_id = '0000000a-0000-0000-0000-0000000000c1'$$,
    $$VALUES (12345::bigint, 'usd'::text, 'succeeded'::text, 'pi_1'::text)$$, 'a payments row records amount, currency and intent');
SELECT is(pg_temp.stripe('ok') ->> 'status', 'duplicate', 'the same event again: duplicate');
SELECT is((SELECT count(*) FROM crm.payments WHERE stripe_payment_intent_id = 'pi_1'), 1::bigint, '... with no second payment');
SELECT is(pg_temp.stripe('late_fail') ->> 'status', 'processed', 'a failure arriving after the success is processed');
SELECT is((SELECT status FROM crm.invoices WHERE invoice_number = 'W-1'), 'paid', '... and never un-pays the invoice');
SELECT is((SELECT status FROM crm.payments WHERE stripe_payment_intent_id = 'pi_1'), 'succeeded', '... nor the payment');
SELECT is(pg_temp.stripe('by_intent') ->> 'status', 'processed', 'an event without metadata.invoice_id ...');
SELECT is((SELECT status FROM crm.invoices WHERE invoice_number = 'W-2'), 'paid', '... finds the invoice by stripe_payment_intent_id');
SELECT is(pg_temp.stripe('fail_first') ->> 'status', 'processed', 'payment_failed is processed');
SELECT results_eq($$SELECT status, failure_message FROM crm.payments WHERE stripe_payment_intent_id = 'pi_3'$$,
    $$VALUES ('failed'::text, 'Insufficient funds.'::text)$$, 'a failed payment with last_payment_error.message');
SELECT is((SELECT status FROM crm.invoices WHERE invoice_number = 'W-3'), 'sent', 'the invoice stays unpaid');
SELECT is(pg_temp.stripe('then_ok') ->> 'status', 'processed', 'then the retry succeeds');
SELECT results_eq($$SELECT status, count(*) OVER () FROM crm.payments WHERE stripe_payment_intent_id = 'pi_3'$$,
    $$VALUES ('succeeded'::text, 1::bigint)$$, 'one payment for the intent, now succeeded');
SELECT is((SELECT status FROM crm.invoices WHERE invoice_number = 'W-3'), 'paid', 'and the invoice paid');
SELECT is(pg_temp.stripe('unknown_inv') ->> 'status', 'ignored', 'an unknown invoice: ignored, not an error');
SELECT is((SELECT outcome FROM crm.webhook_events WHERE event_id = 'evt_unknown'), 'ignored', '... and stored');
SELECT is(pg_temp.stripe('other_type') ->> 'status', 'ignored', 'other event types are stored and ignored');

-- Secret rotation, several v1 signatures, header names in any case.
SET LOCAL crm.stripe_webhook_secret = 'whsec_old, whsec_new';
SELECT is((SELECT crm.ingest_webhook('stripe', jsonb_build_object('stripe-signature',
            (tests.stripe_headers(b, 'whsec_new') ->> 'Stripe-Signature') || ',v1=' || repeat('0', 64)), b) ->> 'status'
           FROM (SELECT '{"id": "evt_rot", "type": "charge.updated"}' AS b) s), 'ignored',
          'second secret of the list, extra v1, lower-case header name');

-- Resend: analytics linked to the queue row, suppression.
INSERT INTO crm.email_queue (id, account_id, recipient_email, subject, html_content, status, metadata) VALUES
  ('0000000a-0000-0000-0000-0000000000d1', '0000000a-0000-0000-0000-00000000aaaa', 'john@example.com', 'Hi', 'x', 'sent', '{"provider_message_id": "re_msg_1"}'),
  ('0000000a-0000-0000-0000-0000000000d2', '0000000a-0000-0000-0000-00000000aaaa', 'bad@example.com', 'Hi', 'x', 'sent', '{"provider_message_id": "re_msg_2"}');
CREATE FUNCTION pg_temp.resend(id text, body text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT crm.ingest_webhook('resend', tests.svix_headers(id, body, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), body) $$;
SELECT is(pg_temp.resend('msg_d1', tests.resend_event('email.delivered', 're_msg_1', 'John@Example.com')) ->> 'status', 'processed', 'email.delivered processed');
SELECT results_eq($$SELECT message_id, recipient_email, event, "timestamp", queue_item_id, account_id FROM crm.email_analytics WHERE message_id = 're_msg_1'$$,
    $$VALUES ('re_msg_1'::text, 'john@example.com'::text, 'delivered'::text, '2026-11-20T10:00:00Z'::timestamptz,
              '0000000a-0000-0000-0000-0000000000d1'::uuid, '0000000a-0000-0000-0000-00000000aaaa'::uuid)$$,
    'an analytics row with the event''s own timestamp, linked to the queue row and its account');
SELECT is(pg_temp.resend('msg_d1', tests.resend_event('email.delivered', 're_msg_1', 'john@example.com')) ->> 'status', 'duplicate', 'same svix-id: duplicate');
SELECT is(pg_temp.resend('msg_c1', tests.resend_event('email.clicked', 're_msg_1', 'john@example.com', '2026-11-20T11:00:00Z',
          '{"click": {"link": "https://pay.example/i/1", "ipAddress": "203.0.113.7", "userAgent": "Mozilla/5.0"}}')) ->> 'status', 'processed', 'email.clicked');
SELECT results_eq($$SELECT data -> 'click' ->> 'link', ip_address, user_agent FROM crm.email_analytics WHERE event = 'clicked'$$,
    $$VALUES ('https://pay.example/i/1'::text, '203.0.113.7'::inet, 'Mozilla/5.0'::text)$$, 'the click keeps its link, IP and user agent');
SELECT is(pg_temp.resend('msg_b1', tests.resend_event('email.bounced', 're_msg_2', 'bad@example.com', '2026-11-20T10:05:00Z',
          '{"bounce": {"type": "Transient", "message": "mailbox full"}}')) ->> 'status', 'processed', 'a transient bounce');
SELECT is(crm.is_email_suppressed('bad@example.com', '0000000a-0000-0000-0000-00000000aaaa'), false, '... does not suppress');
SELECT is(pg_temp.resend('msg_b2', tests.resend_event('email.bounced', 're_msg_2', 'bad@example.com', '2026-11-20T10:06:00Z',
          '{"bounce": {"type": "Permanent", "message": "no such user"}}')) ->> 'status', 'processed', 'a permanent bounce');
SELECT is(crm.is_email_suppressed('BAD@example.com', '0000000a-0000-0000-0000-00000000aaaa'), true, '... suppresses the address for the account');
SELECT is(pg_temp.resend('msg_x1', tests.resend_event('email.complained', 're_msg_1', 'john@example.com')) ->> 'status', 'processed', 'a complaint');
SELECT is((SELECT reason FROM crm.email_suppressions WHERE email = 'john@example.com'), 'complained', '... suppresses too');
SELECT is(crm.unsuppress_email('john@example.com', '0000000a-0000-0000-0000-00000000aaaa'), true, 'the admin function lifts it');
SELECT is(pg_temp.resend('msg_u1', tests.resend_event('email.delivered', 're_unknown', 'x@example.com')) ->> 'status', 'processed',
          'an event for an email we did not queue is still recorded');
SELECT is((SELECT account_id FROM crm.email_analytics WHERE message_id = 're_unknown'), NULL, '... with no account');
SELECT is(pg_temp.resend('msg_dom', '{"type": "domain.updated", "data": {"id": "d_1"}}') ->> 'status', 'ignored', 'other Resend types are ignored');

-- PostgREST entry points: raw body as the single text argument, headers from request.headers.
SELECT set_config('request.headers', tests.stripe_headers(body, 'whsec_new')::text, true) FROM ev WHERE k = 'other_type';
SELECT is((SELECT crm.stripe_webhook(replace(body, 'evt_cust', 'evt_cust')) ->> 'status' FROM ev WHERE k = 'other_type'), 'duplicate',
          'crm.stripe_webhook(text) reads request.headers');
-- PostgREST passes header names in lower case.
SELECT set_config('request.headers', (SELECT jsonb_object_agg(lower(key), value) FROM jsonb_each(tests.svix_headers('msg_pgrst',
                  tests.resend_event('email.opened', 're_msg_1', 'john@example.com'), 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')))::text, true);
SELECT tests.share_tap();
SELECT tests.login('anon', NULL);
SELECT is(crm.resend_webhook(tests.resend_event('email.opened', 're_msg_1', 'john@example.com')) ->> 'status', 'processed',
          'anon can post a signed Resend webhook through crm.resend_webhook(text)');
SELECT throws_ok('SELECT count(*) FROM crm.webhook_events', '42501', NULL, 'anon cannot read stored events');
SELECT tests.logout();
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-00000000aaaa"}');
SELECT throws_ok('SELECT count(*) FROM crm.webhook_events', '42501', NULL, 'authenticated cannot read stored events');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
