-- Email analytics against a hand-computed fixture, across day, week and month boundaries, in
-- UTC and in New York (EST, then the 23-hour DST day of 2026-03-08), plus template
-- performance, the 7-day delivery health flag, errors, and row-level security.
--
-- Fixture (UTC → New York):
--   m1 sent 03-01 23:30 (NY 03-01 18:30), delivered 03-02 00:10 (03-01 19:10), opened 01:00 and
--      02:00 (one unique open, NY 03-01), clicked 03:00 (NY 03-01 22:00)               template T1
--   m2 sent 03-02 04:30 (NY 03-01 23:30), delivered 05:30 (NY 03-02 00:30)             template T1
--   m3 sent 03-02 12:00, bounced 12:01 (NY 03-02 07:00/07:01)                           template T2
--   m4 sent 03-31 23:00 (NY 03-31 19:00 EDT), delivered 04-01 01:00 (NY 03-31 21:00),
--      complained 04-01 10:00 (NY 04-01 06:00)
--   m5 sent 03-08 06:30 (NY 01:30 EST), delivered 03-08 07:30 (NY 03:30 EDT)
--   m6 sent 03-09 03:30 (NY 03-08 23:30 EDT)
BEGIN;
SELECT plan(17);

INSERT INTO crm.accounts (id, name) VALUES
  ('0000000a-0000-0000-0000-0000000000a7', 'Stats A'), ('0000000b-0000-0000-0000-0000000000a7', 'Stats B'),
  ('0000000c-0000-0000-0000-0000000000a7', 'Stats C');
INSERT INTO crm.email_templates (id, account_id, name, subject, html_content) VALUES
  ('0000000a-0000-0000-0000-0000000000f1', '0000000a-0000-0000-0000-0000000000a7', 'T1', 's', 'h'),
  ('0000000a-0000-0000-0000-0000000000f2', '0000000a-0000-0000-0000-0000000000a7', 'T2', 's', 'h');
INSERT INTO crm.email_queue (id, account_id, recipient_email, subject, template_id, status, metadata)
SELECT ('0000000a-0000-0000-0000-00000000000' || n)::uuid, '0000000a-0000-0000-0000-0000000000a7', 'r@x.example', 's',
       CASE WHEN n IN (1, 2) THEN '0000000a-0000-0000-0000-0000000000f1'::uuid WHEN n = 3 THEN '0000000a-0000-0000-0000-0000000000f2'::uuid END,
       'sent', jsonb_build_object('provider_message_id', 'm' || n)
FROM generate_series(1, 6) n;
INSERT INTO crm.email_analytics (account_id, queue_item_id, message_id, recipient_email, event, "timestamp")
SELECT '0000000a-0000-0000-0000-0000000000a7', ('0000000a-0000-0000-0000-00000000000' || substr(m, 2))::uuid, m, 'r@x.example', e, t::timestamptz
FROM (VALUES
  ('m1', 'sent', '2026-03-01 23:30Z'), ('m1', 'delivered', '2026-03-02 00:10Z'), ('m1', 'opened', '2026-03-02 01:00Z'),
  ('m1', 'opened', '2026-03-02 02:00Z'), ('m1', 'clicked', '2026-03-02 03:00Z'),
  ('m2', 'sent', '2026-03-02 04:30Z'), ('m2', 'delivered', '2026-03-02 05:30Z'),
  ('m3', 'sent', '2026-03-02 12:00Z'), ('m3', 'bounced', '2026-03-02 12:01Z'),
  ('m4', 'sent', '2026-03-31 23:00Z'), ('m4', 'delivered', '2026-04-01 01:00Z'), ('m4', 'complained', '2026-04-01 10:00Z'),
  ('m5', 'sent', '2026-03-08 06:30Z'), ('m5', 'delivered', '2026-03-08 07:30Z'),
  ('m6', 'sent', '2026-03-09 03:30Z')) v(m, e, t);

SELECT results_eq($$SELECT * FROM crm.get_email_analytics('2026-03-01Z', '2026-03-03Z', 'day', '0000000a-0000-0000-0000-0000000000a7', 'UTC')$$,
  $$VALUES ('2026-03-01 00:00Z'::timestamptz, 1::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0.00, NULL::numeric, NULL::numeric, 0.00, NULL::numeric),
           ('2026-03-02 00:00Z', 2, 2, 1, 1, 1, 0, 100.00, 50.00, 50.00, 50.00, 0.00)$$,
  'daily, UTC');
SELECT results_eq($$SELECT * FROM crm.get_email_analytics('2026-03-01 00:00 America/New_York', '2026-03-03 00:00 America/New_York', 'day', '0000000a-0000-0000-0000-0000000000a7', 'America/New_York')$$,
  $$VALUES ('2026-03-01 05:00Z'::timestamptz, 2::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 0::bigint, 50.00, 100.00, 100.00, 0.00, 0.00),
           ('2026-03-02 05:00Z', 1, 1, 0, 0, 1, 0, 100.00, 0.00, 0.00, 100.00, 0.00)$$,
  'daily, New York: the same events fall on other days');
SELECT results_eq($$SELECT period_start, sent, delivered, delivery_rate FROM crm.get_email_analytics('2026-03-08 00:00 America/New_York', '2026-03-10 00:00 America/New_York', 'day', '0000000a-0000-0000-0000-0000000000a7', 'America/New_York')$$,
  $$VALUES ('2026-03-08 05:00Z'::timestamptz, 2::bigint, 1::bigint, 50.00), ('2026-03-09 04:00Z', 0, 0, NULL)$$,
  'daily across the DST change: the 23-hour day holds m5 and m6, the next day starts at 04:00 UTC');
SELECT results_eq($$SELECT period_start, sent, delivered, opened, clicked, bounced FROM crm.get_email_analytics('2026-03-01Z', '2026-03-08Z', 'week', '0000000a-0000-0000-0000-0000000000a7', 'UTC')$$,
  $$VALUES ('2026-02-23 00:00Z'::timestamptz, 1::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint), ('2026-03-02 00:00Z', 2, 2, 1, 1, 1)$$,
  'weekly, UTC: Sunday 03-01 is in the week of Monday 02-23');
SELECT results_eq($$SELECT period_start, sent, delivered, opened, clicked, bounced FROM crm.get_email_analytics('2026-03-01 00:00 America/New_York', '2026-03-08 00:00 America/New_York', 'week', '0000000a-0000-0000-0000-0000000000a7', 'America/New_York')$$,
  $$VALUES ('2026-02-23 05:00Z'::timestamptz, 2::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint), ('2026-03-02 05:00Z', 1, 1, 0, 0, 1)$$,
  'weekly, New York');
SELECT results_eq($$SELECT * FROM crm.get_email_analytics('2026-03-01Z', '2026-05-01Z', 'month', '0000000a-0000-0000-0000-0000000000a7', 'UTC')$$,
  $$VALUES ('2026-03-01 00:00Z'::timestamptz, 6::bigint, 3::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 50.00, 33.33, 33.33, 16.67, 0.00),
           ('2026-04-01 00:00Z', 0, 1, 0, 0, 0, 1, NULL, 0.00, 0.00, NULL, 100.00)$$,
  'monthly, UTC: m4 is delivered and complained of in April');
SELECT results_eq($$SELECT * FROM crm.get_email_analytics('2026-03-01 00:00 America/New_York', '2026-05-01 00:00 America/New_York', 'month', '0000000a-0000-0000-0000-0000000000a7', 'America/New_York')$$,
  $$VALUES ('2026-03-01 05:00Z'::timestamptz, 6::bigint, 4::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 66.67, 25.00, 25.00, 16.67, 0.00),
           ('2026-04-01 04:00Z', 0, 0, 0, 0, 0, 1, NULL, NULL, NULL, NULL, NULL)$$,
  'monthly, New York: m4''s delivery stays in March');

SELECT results_eq($$SELECT template_name, sent, delivered, opened, clicked, delivery_rate, open_rate, click_rate
                    FROM crm.get_template_performance('2026-03-01Z', '2026-04-01Z', '0000000a-0000-0000-0000-0000000000a7')$$,
  $$VALUES ('T1'::text, 2::bigint, 2::bigint, 1::bigint, 1::bigint, 100.00, 50.00, 50.00), ('T2', 1, 0, 0, 0, 0.00, NULL, NULL)$$,
  'template performance');

-- Errors.
SELECT throws_ok($$SELECT * FROM crm.get_email_analytics('2026-03-01Z', '2026-03-02Z', 'year', '0000000a-0000-0000-0000-0000000000a7')$$, '22023', NULL, 'unknown granularity: 22023');
SELECT throws_ok($$SELECT * FROM crm.get_email_analytics('2026-03-02Z', '2026-03-01Z')$$, '22023', NULL, '"to" before "from": 22023');
SELECT throws_ok($$SELECT * FROM crm.get_email_analytics('2000-01-01Z', '2026-01-01Z')$$, '54000', NULL, 'over 10 years: 54000');
SELECT throws_ok($$SELECT * FROM crm.get_email_analytics('2026-03-01Z', '2026-03-02Z', 'day', NULL, 'Mars/Base')$$, '22023', NULL, 'unknown time zone: 22023');

-- Delivery health over the last 7 days: B 18/20 = 90 % (flagged), C 10/10 (fine), A has no recent mail.
INSERT INTO crm.email_analytics (account_id, message_id, recipient_email, event, "timestamp")
SELECT '0000000b-0000-0000-0000-0000000000a7', 'b' || n, 'r@x', e, now() - interval '1 day'
FROM generate_series(1, 20) n, LATERAL (SELECT 'sent' UNION ALL SELECT 'delivered' WHERE n <= 18) ev(e);
INSERT INTO crm.email_analytics (account_id, message_id, recipient_email, event, "timestamp")
SELECT '0000000c-0000-0000-0000-0000000000a7', 'c' || n, 'r@x', e, now() - interval '2 days'
FROM generate_series(1, 10) n, (VALUES ('sent'), ('delivered')) ev(e);
SELECT results_eq($$SELECT account_id, sent_7d, delivered_7d, delivery_rate_7d, below_target FROM crm.email_delivery_health
                    WHERE account_id IN ('0000000a-0000-0000-0000-0000000000a7', '0000000b-0000-0000-0000-0000000000a7', '0000000c-0000-0000-0000-0000000000a7')
                    ORDER BY account_id$$,
  $$VALUES ('0000000b-0000-0000-0000-0000000000a7'::uuid, 20::bigint, 18::bigint, 90.00, true),
           ('0000000c-0000-0000-0000-0000000000a7', 10, 10, 100.00, false)$$,
  'delivery health flags the account under 95 %');

-- Row-level security: A sees its own figures, not B's.
SELECT tests.share_tap();
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a7"}');
SELECT is((SELECT sum(sent) FROM crm.get_email_analytics('2026-03-01Z', '2026-04-01Z', 'month')), 6::numeric, 'A''s report defaults to A''s account');
SELECT is((SELECT sum(sent) FROM crm.get_email_analytics(now() - interval '7 days', now(), 'day', '0000000b-0000-0000-0000-0000000000a7')), 0::numeric,
          'A asking for B''s account gets nothing');
SELECT is((SELECT count(*) FROM crm.email_delivery_health), 0::bigint, 'A sees no other account''s health row');
SELECT tests.logout();
SELECT tests.login('service_role', NULL);
SELECT is((SELECT count(*) FROM crm.email_delivery_health WHERE below_target), 1::bigint, 'service_role sees every account''s health');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
