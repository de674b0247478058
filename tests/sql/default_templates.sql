-- The four default templates: installed globally, each renders with realistic variables into
-- a subject, a complete HTML document and a plain-text body, with nothing left unrendered.
BEGIN;
SELECT plan(17);

SELECT is((SELECT array_agg(name ORDER BY name) FROM crm.email_templates WHERE account_id IS NULL),
          ARRAY['Appointment Reminder', 'Invoice Notification', 'Job Status Update', 'Welcome Email'], 'four global defaults');

CREATE TEMP TABLE r AS
SELECT n, x.* FROM (VALUES
  ('Welcome Email', '{"firstName": "John", "loginUrl": "https://app.crm-ai-pro.com/login", "companyName": "317 Plumber"}'::jsonb),
  ('Job Status Update', '{"customerName": "John", "job": {"title": "Water heater replacement", "address": "12 Elm St"}, "status": "completed", "notes": "All work completed successfully", "eta": "2:30 PM"}'),
  ('Invoice Notification', '{"customerName": "John", "invoiceNumber": "INV-1042", "amount": 123456, "currency": "usd", "dueDate": "2026-12-15", "payUrl": "https://pay.example/i/1042"}'),
  ('Appointment Reminder', '{"customerName": "John", "scheduledAt": "2025-02-01T14:00:00Z", "address": "12 Elm St", "rescheduleUrl": "https://app.crm-ai-pro.com/reschedule/apt-456", "_timezone": "America/Indiana/Indianapolis"}')
) v(n, vars), LATERAL crm.render_email_template(n, vars, NULL, strict => false) x;

SELECT is((SELECT subject FROM r WHERE n = 'Welcome Email'), 'Welcome to 317 Plumber, John!', 'Welcome subject');
SELECT is((SELECT subject FROM r WHERE n = 'Job Status Update'), 'Update on your job: Water heater replacement is completed', 'Job Status subject');
SELECT is((SELECT subject FROM r WHERE n = 'Invoice Notification'), 'Invoice INV-1042: $1,234.56 due Dec 15, 2026', 'Invoice subject');
SELECT is((SELECT subject FROM r WHERE n = 'Appointment Reminder'), 'Reminder: your appointment on Saturday, February 1 at 9:00 AM', 'Reminder subject, in the customer''s zone');
SELECT is((SELECT count(*) FROM r WHERE html LIKE '<!DOCTYPE html>%</html>'), 4::bigint, 'each HTML body is a complete document');
SELECT is((SELECT count(*) FROM r WHERE html ~ '\{\{|\}\}' OR text ~ '\{\{|\}\}' OR subject ~ '\{\{|\}\}'), 0::bigint, 'no unrendered mustache anywhere');
SELECT is((SELECT count(*) FROM r WHERE html ~* '<link|<style|src="http'), 0::bigint, 'no external CSS, no style blocks, no remote images');
SELECT is((SELECT count(*) FROM r WHERE html LIKE '%max-width:600px%' AND html LIKE '%role="presentation"%'), 4::bigint, 'table layout, 600px max width');
SELECT ok((SELECT html FROM r WHERE n = 'Welcome Email') LIKE '%href="https://app.crm-ai-pro.com/login"%', 'Welcome links to the login URL');
SELECT ok((SELECT text FROM r WHERE n = 'Welcome Email') LIKE '%Log in: https://app.crm-ai-pro.com/login%', 'Welcome text body has the link');
SELECT ok((SELECT html FROM r WHERE n = 'Job Status Update') LIKE '%All work completed successfully%2:30 PM%'
          OR (SELECT html FROM r WHERE n = 'Job Status Update') LIKE '%2:30 PM%All work completed successfully%', 'Job Status shows eta and notes');
SELECT ok((SELECT html FROM r WHERE n = 'Invoice Notification') LIKE '%$1,234.56%Due Tuesday, December 15, 2026%', 'Invoice shows amount and due date');
SELECT ok((SELECT html FROM r WHERE n = 'Invoice Notification') LIKE '%href="https://pay.example/i/1042"%', 'Invoice links to the pay URL');
SELECT ok((SELECT text FROM r WHERE n = 'Appointment Reminder') LIKE '%When: Saturday, February 1, 2025 at 9:00 AM%Where: 12 Elm St%', 'Reminder text body');
SELECT ok((SELECT html FROM r WHERE n = 'Appointment Reminder') LIKE '%href="https://app.crm-ai-pro.com/reschedule/apt-456"%', 'Reminder links to rescheduling');
-- Strict mode with every recorded variable present renders; the list is complete.
SELECT is((SELECT count(*) FROM crm.email_templates t,
           LATERAL crm.render_email_template(t.name,
               (SELECT jsonb_object_agg(split_part(v, '.', 1),
                        CASE WHEN v LIKE '%.%' THEN jsonb_build_object(split_part(v, '.', 2), 'x')
                             WHEN v IN ('amount') THEN '100'::jsonb
                             WHEN v IN ('currency') THEN '"usd"'::jsonb
                             ELSE '"2025-01-01"'::jsonb END)
                FROM unnest(t.variables) v), NULL, true) x
           WHERE t.account_id IS NULL), 4::bigint, 'each default renders in strict mode given exactly its recorded variables');

SELECT * FROM finish();
ROLLBACK;
