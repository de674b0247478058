-- The voice agent's tools through crm.call_tool as a signed-in user (role authenticated, JWT
-- claims): for every tool a success, a bad argument (a sentence, nothing written), another
-- account's row (not visible, not changed) and, where names are spoken, an ambiguous name.
BEGIN;
SELECT plan(79);

-- Two companies. 317 Plumber: Dana (owner), technicians Tina Tech, Tina Turner and Tom Tech;
-- customers John Smith, John Wu, Ann Lee. Elsewhere: Olga and her customer John Other.
INSERT INTO crm.accounts (id, name, time_zone) VALUES
  ('00000016-0000-0000-0000-0000000000a1', '317 Plumber', 'America/Indiana/Indianapolis'),
  ('00000016-0000-0000-0000-0000000000a2', 'Elsewhere', NULL);
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('00000016-0000-0000-0000-0000000000d1', '00000016-0000-0000-0000-0000000000a1', 'dana@317plumber.test', 'Dana Owner', 'owner'),
  ('00000016-0000-0000-0000-0000000000e1', '00000016-0000-0000-0000-0000000000a1', 'tina@317plumber.test', 'Tina Tech', 'tech'),
  ('00000016-0000-0000-0000-0000000000e2', '00000016-0000-0000-0000-0000000000a1', 'tturner@317plumber.test', 'Tina Turner', 'tech'),
  ('00000016-0000-0000-0000-0000000000e3', '00000016-0000-0000-0000-0000000000a1', 'tom@317plumber.test', 'Tom Tech', 'tech'),
  ('00000016-0000-0000-0000-0000000000f1', '00000016-0000-0000-0000-0000000000a2', 'olga@else.test', 'Olga Other', 'owner');
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, phone, address) VALUES
  ('00000016-0000-0000-0000-0000000000c1', '00000016-0000-0000-0000-0000000000a1', 'John', 'Smith', 'john@smith.test', '(317) 555-0101', '12 Elm St, Indianapolis'),
  ('00000016-0000-0000-0000-0000000000c2', '00000016-0000-0000-0000-0000000000a1', 'John', 'Wu', 'john@wu.test', NULL, NULL),
  ('00000016-0000-0000-0000-0000000000c3', '00000016-0000-0000-0000-0000000000a1', 'Ann', 'Lee', NULL, '317-555-0199', NULL),
  ('00000016-0000-0000-0000-0000000000c9', '00000016-0000-0000-0000-0000000000a2', 'John', 'Other', 'john@other.test', NULL, NULL);
INSERT INTO crm.jobs (id, account_id, contact_id, title, status, scheduled_start, scheduled_end, assigned_to, address) VALUES
  ('00000016-0000-0000-0000-0000000000b1', '00000016-0000-0000-0000-0000000000a1', '00000016-0000-0000-0000-0000000000c1',
   'Water heater', 'scheduled', '2026-12-02 14:00+00', '2026-12-02 16:00+00', '00000016-0000-0000-0000-0000000000e3', '12 Elm St, Indianapolis'),
  ('00000016-0000-0000-0000-0000000000b9', '00000016-0000-0000-0000-0000000000a2', '00000016-0000-0000-0000-0000000000c9',
   'Their job', 'scheduled', '2026-12-02 14:00+00', NULL, NULL, NULL);
INSERT INTO crm.invoices (id, account_id, contact_id, job_id, invoice_number, amount, status) VALUES
  ('00000016-0000-0000-0000-0000000000a9', '00000016-0000-0000-0000-0000000000a2', '00000016-0000-0000-0000-0000000000c9',
   '00000016-0000-0000-0000-0000000000b9', 'E-1', 5000, 'sent');

-- t(name, args): the tool as Dana; o(name, args): as Olga (the other account).
CREATE FUNCTION pg_temp.as_user(sub text, acct text, name text, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
    PERFORM tests.login('authenticated', jsonb_build_object('sub', sub, 'account_id', acct, 'role', 'authenticated'));
    r := crm.call_tool(name, args);
    PERFORM tests.logout();
    RETURN r;
END $$;
CREATE FUNCTION pg_temp.t(name text, args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.as_user('00000016-0000-0000-0000-0000000000d1', '00000016-0000-0000-0000-0000000000a1', name, args) $$;
CREATE FUNCTION pg_temp.o(name text, args jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.as_user('00000016-0000-0000-0000-0000000000f1', '00000016-0000-0000-0000-0000000000a2', name, args) $$;
CREATE FUNCTION pg_temp.queued() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM crm.email_queue $$;

-- --- email tools --------------------------------------------------------------------------
SELECT is(pg_temp.t('send_email_template', '{"templateName": "Appointment Reminder", "to": "john@smith.test", "variables": {"customerName": "John", "serviceName": "Water heater", "scheduledAt": "2026-12-02T09:00:00Z"}}') ->> 'ok',
          'true', 'send_email_template: queued');
SELECT is((SELECT count(*) FROM crm.email_queue q JOIN crm.email_templates t ON t.id = q.template_id
           WHERE q.recipient_email = 'john@smith.test' AND t.name = 'Appointment Reminder'), 1::bigint, '... one row with the template');
SELECT is(pg_temp.t('send_email_template', '{"templateName": "Appointment Reminder"}'),
          '{"ok": false, "error": "to: missing"}', 'send_email_template without to: a sentence');
SELECT matches(pg_temp.t('send_email_template', '{"templateName": "No Such", "to": "a@b.test"}') ->> 'error',
               'unknown template', '... an unknown template: said, not raised');
SELECT is(pg_temp.t('send_custom_email', '{"to": "ann@lee.test", "subject": "Estimate", "html": "<p>Hi</p>"}') ->> 'ok', 'true',
          'send_custom_email: queued');
SELECT is(pg_temp.t('send_custom_email', '{"to": "ann at lee", "subject": "x", "html": "x"}') ->> 'error', 'to: not an email address',
          'send_custom_email with a bad address');
SELECT is(pg_temp.t('send_job_status_email', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "status": "on the way", "eta": "2026-12-02T09:30"}') ->> 'to',
          'john@smith.test', 'send_job_status_email: to the job''s customer');
SELECT is(pg_temp.t('send_job_status_email', '{"jobId": "nope", "status": "x"}') ->> 'error', 'jobId: not an id', '... a bad id');
SELECT is(pg_temp.t('send_job_status_email', '{"jobId": "00000016-0000-0000-0000-0000000000b9", "status": "x"}') ->> 'error',
          'no job 00000016-0000-0000-0000-0000000000b9', '... another account''s job is no job');
SELECT is(pg_temp.o('send_invoice_email', '{"invoiceId": "00000016-0000-0000-0000-0000000000a9", "attachPDF": false}') ->> 'ok', 'true',
          'send_invoice_email: Olga sends her invoice');
SELECT is(pg_temp.t('send_invoice_email', '{"invoiceId": "00000016-0000-0000-0000-0000000000a9"}') ->> 'ok', 'false',
          '... Dana cannot send Olga''s');
SELECT is(pg_temp.t('send_invoice_email', '{"invoiceId": "00000016-0000-0000-0000-0000000000a9", "attachPDF": "yes"}') ->> 'error',
          'attachPDF: the wrong kind of value', '... a bad flag');
SELECT is(pg_temp.t('send_appointment_reminder', '{"appointmentId": "00000016-0000-0000-0000-0000000000b1", "customerEmail": "john@smith.test", "scheduledAt": "2026-12-02T09:00", "rescheduleUrl": "https://app.test/r/1"}') ->> 'ok',
          'true', 'send_appointment_reminder: queued');
SELECT is((SELECT q.template_variables ->> 'scheduledAt' FROM crm.email_queue q WHERE q.metadata ->> 'job_id' = '00000016-0000-0000-0000-0000000000b1'
           AND q.template_variables ? 'rescheduleUrl'), '2026-12-02T14:00:00+00:00', '... 09:00 without an offset is on the account''s clock (Indianapolis)');
SELECT is(pg_temp.t('send_appointment_reminder', '{"appointmentId": "00000016-0000-0000-0000-0000000000b1", "customerEmail": "john@smith.test", "scheduledAt": "tomorrow"}') ->> 'error',
          'scheduledAt: not a date', '... "tomorrow" is not a date');
SELECT is(pg_temp.t('send_appointment_reminder', '{"appointmentId": "00000016-0000-0000-0000-0000000000b9", "customerEmail": "x@y.test", "scheduledAt": "2026-12-02T09:00"}') ->> 'ok',
          'false', '... another account''s job: no appointment');
SELECT ok((pg_temp.t('get_email_templates', '{}') -> 'templates') @> '[{"name": "Appointment Reminder"}]', 'get_email_templates: the defaults are there');
SELECT is(pg_temp.t('get_email_templates', '{"x": 1}') ->> 'error', 'x: not an argument of this tool', '... an unknown argument');
SELECT ok(pg_temp.t('get_email_analytics', '{"startDate": "2026-01-01T00:00Z"}') ? 'counts', 'get_email_analytics: counts');
SELECT is(pg_temp.t('get_email_analytics', '{"startDate": "last week"}') ->> 'error', 'startDate: not a date', '... a bad date');
SELECT is(jsonb_array_length(pg_temp.t('list_email_queue', '{"limit": 50}') -> 'emails'), 4, 'list_email_queue: Dana''s four');
SELECT is(jsonb_array_length(pg_temp.o('list_email_queue', '{}') -> 'emails'), 1, '... Olga sees only her one');
SELECT is(pg_temp.t('list_email_queue', '{"limit": 0}') ->> 'error', 'limit: less than 1', '... a limit of 0');
SELECT is(pg_temp.t('create_email_template', '{"name": "Thanks", "subject": "Thanks {{name}}", "html": "<p>Thanks</p>"}') ->> 'ok', 'true',
          'create_email_template: created');
SELECT is(pg_temp.t('create_email_template', '{"name": "Broken", "subject": "x"}') ->> 'error', 'html: missing', '... without html');
SELECT is((pg_temp.o('get_email_templates', '{}') -> 'templates') @> '[{"name": "Thanks"}]', false, '... Olga does not see Dana''s template');

-- --- CRM tools ----------------------------------------------------------------------------
SELECT is(pg_temp.t('create_job', '{"description": "Leaking faucet\nkitchen", "contactName": "john smith", "scheduledStart": "2026-12-03T09:00"}')
          - 'jobId', '{"ok": true, "title": "Leaking faucet", "status": "scheduled", "address": "12 Elm St, Indianapolis", "contact": {"id": "00000016-0000-0000-0000-0000000000c1", "name": "John Smith", "email": "john@smith.test", "phone": "(317) 555-0101"}, "description": "Leaking faucet\nkitchen", "localStart": "Thursday 2026-12-03 09:00", "scheduledEnd": "2026-12-03T15:00:00+00:00", "scheduledStart": "2026-12-03T14:00:00+00:00"}',
          'create_job by a spoken name: the contact, the title, an hour on the account''s clock');
SELECT is(pg_temp.t('create_job', '{"description": "x", "contactName": "John"}') ->> 'error', 'several contacts match John: John Smith, John Wu. Which one?',
          '... "John": ambiguous, the candidates said');
SELECT is(jsonb_array_length(pg_temp.t('create_job', '{"description": "x", "contactName": "John"}') -> 'candidates'), 2, '... and listed (not Olga''s John)');
SELECT is(pg_temp.t('create_job', '{"description": "x", "contactId": "00000016-0000-0000-0000-0000000000c9"}') ->> 'error',
          'no contact 00000016-0000-0000-0000-0000000000c9', '... another account''s contact is no contact');
SELECT is(pg_temp.t('create_job', '{"description": "x", "contactName": "Ann", "scheduledStart": "9am"}') ->> 'error', 'scheduledStart: not a date', '... a bad time');
SELECT is(pg_temp.t('create_job', '{"description": "x"}') ->> 'error', 'give one of the alternatives (an id or a name)', '... no customer');
SELECT is(pg_temp.t('create_job', '{"description": "x", "contactName": "Zed"}') ->> 'error', 'no contact named Zed', '... nobody by that name');
SELECT is((SELECT count(*) FROM crm.jobs WHERE title = 'x'), 0::bigint, '... none of the refused calls made a job');
SELECT is((SELECT jsonb_agg(c ->> 'name' ORDER BY c ->> 'name') FROM jsonb_array_elements(pg_temp.t('search_contacts', '{"search": "john"}') -> 'contacts') c),
          '["John Smith", "John Wu"]', 'search_contacts: "john" finds Dana''s two, not Olga''s');
SELECT is(pg_temp.t('search_contacts', '{"search": "317.555.0199"}') -> 'contacts' -> 0 ->> 'name', 'Ann Lee', '... by phone, written otherwise');
SELECT is(pg_temp.t('search_contacts', '{"search": "john smith"}') -> 'contacts' -> 0 ->> 'name', 'John Smith', '... first and last name');
SELECT is(pg_temp.t('search_contacts', '{"search": ""}') ->> 'error', 'search: empty', '... an empty search');
SELECT is(pg_temp.t('search_contacts', '{"search": "%"}') -> 'contacts', '[]', '... a % is a character, not a wildcard');
SELECT is(pg_temp.t('get_job', '{"jobId": "00000016-0000-0000-0000-0000000000b1"}') -> 'technician' ->> 'name', 'Tom Tech', 'get_job: the job with its technician');
SELECT is(pg_temp.t('get_job', '{"jobId": "00000016-0000-0000-0000-0000000000b9"}') ->> 'ok', 'false', '... another account''s job: no job');
SELECT is(pg_temp.t('get_job', '{}') ->> 'error', 'jobId: missing', '... no id');
SELECT is(pg_temp.t('update_job_status', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "status": "en_route"}') ->> 'status', 'en_route',
          'update_job_status: en_route (the reference''s statuses)');
SELECT is(pg_temp.t('update_job_status', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "status": "flying"}') ->> 'error',
          'status: one of ["lead","scheduled","en_route","in_progress","completed","invoiced","paid","cancelled"]', '... an unknown status');
SELECT is(pg_temp.t('update_job_status', '{"jobId": "00000016-0000-0000-0000-0000000000b9", "status": "cancelled"}') ->> 'ok', 'false',
          '... another account''s job');
SELECT is((SELECT status FROM crm.jobs WHERE id = '00000016-0000-0000-0000-0000000000b9'), 'scheduled', '... which stays as it was');
SELECT is(pg_temp.t('assign_tech', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "techName": "tom"}') -> 'technician' ->> 'name', 'Tom Tech',
          'assign_tech by name');
SELECT is(pg_temp.t('assign_tech', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "techName": "Tina"}') ->> 'error',
          'several technicians match Tina: Tina Tech, Tina Turner. Which one?', '... "Tina": ambiguous');
SELECT is(pg_temp.t('assign_tech', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "techId": "00000016-0000-0000-0000-0000000000f1"}') ->> 'error',
          'no technician 00000016-0000-0000-0000-0000000000f1', '... another account''s user');
SELECT is(pg_temp.t('assign_tech', '{"jobId": "00000016-0000-0000-0000-0000000000b1"}') ->> 'error', 'give one of the alternatives (an id or a name)', '... no technician named');
SELECT is(pg_temp.t('create_contact', '{"firstName": "Maria", "lastName": "Garcia", "email": "maria@garcia.test", "notes": "dog in yard"}') ->> 'ok', 'true',
          'create_contact: created, with notes');
SELECT is(pg_temp.t('create_contact', '{"firstName": "Johnny", "lastName": "Smith", "phone": "+1 317 555 0101"}') -> 'possibleDuplicates' -> 0 ->> 'name',
          'John Smith', '... a known phone is pointed out');
SELECT is(pg_temp.t('create_contact', '{"firstName": "X", "lastName": "Y", "email": "nope"}') ->> 'error', 'email: not an email address', '... a bad email');
SELECT is(pg_temp.t('update_job', '{"jobId": "00000016-0000-0000-0000-0000000000b1", "notes": "bring the 50-gallon tank", "scheduledStart": "2026-12-04T08:00"}') ->> 'scheduledEnd',
          '2026-12-04T15:00:00+00:00', 'update_job: moved, keeping its two hours, notes added');
SELECT is(pg_temp.t('update_job', '{"jobId": "00000016-0000-0000-0000-0000000000b1"}') ->> 'error', 'nothing to change', '... nothing to change');
SELECT is(pg_temp.t('update_job', '{"jobId": "00000016-0000-0000-0000-0000000000b9", "notes": "mine now"}') ->> 'ok', 'false', '... another account''s job');
SELECT is((SELECT notes FROM crm.jobs WHERE id = '00000016-0000-0000-0000-0000000000b9'), NULL, '... unchanged');
SELECT is(jsonb_array_length(pg_temp.t('search_users', '{"search": "tina"}') -> 'users'), 2, 'search_users: both Tinas');
SELECT is(pg_temp.t('search_users', '{"search": "olga"}') -> 'users', '[]', '... not the other account''s');
SELECT is(pg_temp.t('search_users', '{"search": 5}') ->> 'error', 'search: the wrong kind of value', '... a number');
SELECT is(pg_temp.t('send_email', '{"to": "john@smith.test", "subject": "Tomorrow", "body": "See you at 9", "jobId": "00000016-0000-0000-0000-0000000000b1"}') ->> 'ok', 'true',
          'send_email: queued about a job');
SELECT is(pg_temp.t('send_email', '{"to": "john@smith.test", "subject": "x", "body": "x", "jobId": "00000016-0000-0000-0000-0000000000b9"}') ->> 'error',
          'no job 00000016-0000-0000-0000-0000000000b9', '... about another account''s job: refused');
SELECT is(pg_temp.t('send_email', '{"to": "john@smith.test", "subject": "x"}') ->> 'error', 'body: missing', '... no body');
SELECT is(pg_temp.t('get_user_email', '{}') ->> 'email', 'dana@317plumber.test', 'get_user_email: the signed-in user''s');
SELECT is(pg_temp.as_user('not-a-user', '00000016-0000-0000-0000-0000000000a1', 'get_user_email', '{}') ->> 'ok', 'false', '... no such user: said');
SELECT is(jsonb_array_length(pg_temp.t('get_schedule', '{"date": "2026-12-04", "techId": "00000016-0000-0000-0000-0000000000e3"}') -> 'jobs'), 1,
          'get_schedule: Tom''s day (the account''s time zone)');
SELECT is(pg_temp.t('get_schedule', '{"date": "2026-12-02", "techId": "00000016-0000-0000-0000-0000000000f1"}') -> 'jobs', '[]',
          '... another account''s user has nothing here');
SELECT is(pg_temp.t('get_schedule', '{"date": "Tuesday"}') ->> 'error', 'date: not in the expected form', '... a bad date');
SELECT set_config('crm.applying_geocode', 'on', true);
UPDATE crm.contacts SET latitude = 39.77, longitude = -86.16, geocode_status = 'ok' WHERE id = '00000016-0000-0000-0000-0000000000c1';
UPDATE crm.jobs SET latitude = 39.77, longitude = -86.16, geocode_status = 'ok' WHERE id = '00000016-0000-0000-0000-0000000000b1';
SELECT set_config('crm.applying_geocode', 'off', true);
INSERT INTO crm.technician_positions (user_id, account_id, latitude, longitude, recorded_at)
SELECT id, account_id, 39.80, -86.10, now() FROM crm.users WHERE account_id = '00000016-0000-0000-0000-0000000000a1' AND role = 'tech';
SELECT ok(jsonb_array_length(pg_temp.t('suggest_technicians', '{"jobId": "00000016-0000-0000-0000-0000000000b1"}') -> 'technicians') >= 1,
          'suggest_technicians: ranked technicians');
SELECT is(pg_temp.t('suggest_technicians', '{"jobId": "00000016-0000-0000-0000-0000000000b9"}') ->> 'ok', 'false', '... another account''s job');
SELECT ok(pg_temp.t('job_eta', '{"jobId": "00000016-0000-0000-0000-0000000000b1"}') ? 'eta', 'job_eta: an arrival time');
SELECT is(pg_temp.t('job_eta', '{"jobId": "00000016-0000-0000-0000-0000000000b9"}') ->> 'ok', 'false', '... another account''s job');
SELECT is(pg_temp.t('create_invoice_checkout', '{"invoiceId": "00000016-0000-0000-0000-0000000000a9"}') ->> 'ok', 'false',
          'create_invoice_checkout: another account''s invoice (a success is in tests/shell/voice.sh, against the Stripe emulator)');
SELECT is(pg_temp.t('create_invoice_checkout', '{"invoiceId": 7}') ->> 'error', 'invoiceId: the wrong kind of value', '... a bad id');

-- --- the dispatcher -----------------------------------------------------------------------
SELECT is(pg_temp.t('navigate', '{"page": "jobs"}') ->> 'error', 'navigate is a client tool: the user''s browser runs it, not the server',
          'a client tool is described, not run');
SELECT is(pg_temp.t('drop_everything', '{}') ->> 'error', 'unknown tool drop_everything', 'an unknown tool');
SELECT matches(pg_temp.t('get_job', (repeat('[', 1000) || repeat(']', 1000))::jsonb) ->> 'error', '.', 'JSON nested 1,000 deep: a sentence, not a crash');
SELECT is((SELECT count(*) FROM crm.tool_calls WHERE account_id = '00000016-0000-0000-0000-0000000000a1'
           AND outcome IN ('ok', 'error', 'invalid') AND duration_ms >= 0),
          (SELECT count(*) FROM crm.tool_calls WHERE account_id = '00000016-0000-0000-0000-0000000000a1'), 'every call is logged with its outcome and duration');
SELECT is((SELECT outcome || ' ' || error FROM crm.tool_calls WHERE tool = 'create_job' AND arguments ->> 'contactName' = 'Zed'),
          'error no contact named Zed', '... a tool''s refusal as error, with what was said');

SELECT * FROM finish();
ROLLBACK;
