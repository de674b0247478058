-- crm.render_template and the template store through SQL: syntax, escaping, dates and zones,
-- strict mode, every error with its SQLSTATE, limits, override of a global template, RLS.
BEGIN;
SELECT plan(61);

-- Syntax elements.
SELECT is(crm.render_template('Hi {{name}}!', '{"name": "John"}'), 'Hi John!', 'plain variable');
SELECT is(crm.render_template('{{customer.first_name}}', '{"customer": {"first_name": "Ana"}}'), 'Ana', 'nested path');
SELECT is(crm.render_template('{{#if paid}}Paid{{else}}Due{{/if}}', '{"paid": true}'), 'Paid', '#if true');
SELECT is(crm.render_template('{{#if paid}}Paid{{else}}Due{{/if}}', '{"paid": false}'), 'Due', '#if false / else');
SELECT is(crm.render_template('{{#unless late}}on time{{/unless}}', '{}'), 'on time', '#unless on a missing value');
SELECT is(crm.render_template('{{#each items}}{{@index}}={{this}} {{/each}}', '{"items": ["a", "b"]}'), '0=a 1=b ', '#each with @index and this');
SELECT is(crm.render_template('{{#each lines}}{{qty}}x{{name}};{{/each}}', '{"lines": [{"qty": 2, "name": "valve"}]}'), '2xvalve;', '#each over objects');
SELECT is(crm.render_template('[{{missing}}]', '{}'), '[]', 'missing variable renders empty');
SELECT is(crm.render_template('Hi'), 'Hi', 'variables default to {}');
SELECT is(crm.render_template('Hi {{x}}', NULL), 'Hi ', 'NULL variables count as {}');
SELECT is(crm.render_template(NULL, '{}'), NULL, 'NULL template gives NULL');

-- Escaping.
SELECT is(crm.render_template('<p>{{v}}</p>', '{"v": "<script>alert(1)</script>"}'),
          '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>', 'HTML escapes variables by default');
SELECT ok(position('<script>' IN crm.render_template('{{#each xs}}{{this}}{{/each}}{{#if a}}{{a}}{{/if}}{{d:YYYY}}',
          '{"xs": ["<script>"], "a": "<script>", "d": "<script>"}')) = 0, 'no <script> survives in loops, blocks or dates');
SELECT is(crm.render_template('{{{v}}}', '{"v": "<b>bold</b>"}'), '<b>bold</b>', 'triple braces opt out');
SELECT is(crm.render_template('{{v}}', '{"v": "Tom & Jerry <3"}', format => 'text'), 'Tom & Jerry <3', 'format text does not escape');

-- Dates and money.
SELECT is(crm.render_template('{{date:MM/DD/YYYY}}', '{"date": "2025-02-01T09:00:00Z"}'), '02/01/2025', 'reference date syntax');
SELECT is(crm.render_template('{{t:dddd, MMMM D [at] h:mm A}}', '{"t": "2026-07-04T16:30:00Z"}'), 'Saturday, July 4 at 4:30 PM', 'long date pattern');
SELECT is(crm.render_template('{{t:YYYY-MM-DD HH:mm}}', '{"t": 1738400400}'), '2025-02-01 09:00', 'epoch seconds');
SELECT is(crm.render_template('{{t:MMM D}}', '{"t": "2025-02-01"}'), 'Feb 1', 'a plain date');
SET LOCAL crm.template_timezone = 'America/New_York';
SELECT is(crm.render_template('{{t:HH:mm Z}}', '{"t": "2026-03-08T06:59:00Z"}'), '01:59 -05:00', 'New York before the spring DST change');
SELECT is(crm.render_template('{{t:HH:mm Z}}', '{"t": "2026-03-08T07:00:00Z"}'), '03:00 -04:00', 'New York after the spring DST change');
SELECT is(crm.render_template('{{t:h:mm A}}', '{"t": "2026-11-01T06:30:00Z"}'), '1:30 AM', 'the repeated autumn hour');
SELECT is(crm.render_template('{{t:MMM D h:mm A}}', '{"t": "2026-07-04T16:30:00Z", "_timezone": "Asia/Tokyo"}'), 'Jul 5 1:30 AM',
          '_timezone in the variables wins over the setting');
SELECT throws_ok($$SET crm.template_timezone = 'Mars/Base'$$, '22023', NULL, 'an unknown zone is refused when it is set');
SELECT is(current_setting('crm.template_timezone'), 'America/New_York', '... and the setting keeps its value');
RESET crm.template_timezone;
SELECT is(crm.render_template('{{t:h:mm A}}', '{"t": "2026-07-04T16:30:00Z"}'), '4:30 PM', 'default zone is UTC');
SELECT is(crm.render_template('{{money amount_cents currency}}', '{"amount_cents": 123456, "currency": "usd"}'), '$1,234.56', 'money');

-- Strict mode and errors, each with its SQLSTATE.
SELECT throws_ok($$SELECT crm.render_template('Hi {{firstName}}', '{}', strict => true)$$, '22023',
    'missing template variable "firstName" (strict mode) at line 1, column 4', 'strict: a missing variable is an error naming it');
SELECT is(crm.render_template('Hi {{firstName}}', '{"firstName": "Jo"}', strict => true), 'Hi Jo', 'strict: present variables render');
SELECT throws_ok($$SELECT crm.render_template('a{{#if x}}b', '{}')$$, '22023', NULL, 'unclosed block: 22023');
SELECT ok(tests.error_text($$SELECT crm.render_template(E'line1\nline2 {{#each}', '{}')$$) ~ '^template syntax error at line 2, column \d+',
    'syntax errors name line and column');
SELECT throws_ok($$SELECT crm.render_template('x', '[1, 2]')$$, '22023', 'template variables must be a JSON object, not an array', 'array variables: 22023');
SELECT throws_ok($$SELECT crm.render_template('x', '"s"')$$, '22023', NULL, 'string variables: 22023');
SELECT throws_ok($$SELECT crm.render_template('x', '{}', 'pdf')$$, '22023', 'format must be ''html'' or ''text''', 'unknown format: 22023');
SELECT throws_ok($$SELECT crm.render_template('x', '{"_timezone": "Mars/Base"}')$$, '22023', NULL, 'unknown _timezone: 22023');
SELECT throws_ok($$SELECT crm.render_template('{{money a}}', '{"a": "lots"}')$$, '22023', NULL, 'money of a non-number: 22023');
SELECT throws_ok($$SELECT crm.render_template('{{> header}}', '{}')$$, '0A000', NULL, 'partials: 0A000');
SELECT throws_ok($$SELECT crm.render_template(repeat('{{#if a}}', 100), '{}')$$, '22023', NULL, 'nesting beyond 64 blocks is refused');

-- Limits (settings).
SELECT throws_ok($$SELECT crm.render_template(repeat('x', 262145), '{}')$$, '54000', NULL, 'template over 256 KiB: 54000');
SELECT is(length(crm.render_template(repeat('x', 262144), '{}')), 262144, 'a template of exactly 256 KiB renders');
SELECT throws_ok($$SELECT crm.render_template('{{#each xs}}{{this}}{{/each}}', jsonb_build_object('xs', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 1100))))$$,
    '54000', NULL, 'output over 1 MiB: 54000');
SET LOCAL crm.template_max_bytes = '2kB';
SELECT throws_ok($$SELECT crm.render_template(repeat('x', 2049), '{}')$$, '54000', NULL, 'the template limit is a setting');
RESET crm.template_max_bytes;

-- Store: creation validates all three parts and writes nothing on error.
INSERT INTO crm.accounts (id, name) VALUES ('0000000a-0000-0000-0000-0000000000e1', 'Tpl A'), ('0000000b-0000-0000-0000-0000000000e1', 'Tpl B');
SELECT tests.share_tap();
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000e1"}');
SELECT throws_ok($$SELECT crm.create_email_template('Broken', 'Hi {{name}}', '<p>{{#if x}}</p>')$$, '22023', NULL, 'a broken HTML part is refused');
SELECT throws_ok($$SELECT crm.create_email_template('Broken', 'Hi {{#each}', '<p></p>')$$, '22023', NULL, 'a broken subject is refused');
SELECT ok(tests.error_text($$SELECT crm.create_email_template('Broken', 's', 'h', 'text {{/if}}')$$) LIKE 'text_content: template syntax error%',
          'the error names the broken part');
SELECT is((SELECT count(*) FROM crm.email_templates WHERE name = 'Broken'), 0::bigint, 'nothing was written');
SELECT isnt(crm.create_email_template('Welcome Email', 'Hey {{firstName}}, welcome to Acme',
              '<p>Hey {{firstName}} {{customer.tier}}</p>'), NULL, 'A overrides the global Welcome Email');
SELECT is((SELECT variables FROM crm.email_templates WHERE name = 'Welcome Email' AND account_id IS NOT NULL),
          ARRAY['customer.tier', 'firstName'], 'the variables it uses are recorded');
SELECT throws_ok($$SELECT crm.create_email_template('Welcome Email', 's', 'h')$$, '23505', NULL, 'a duplicate name in one account: 23505');
SELECT is((SELECT subject FROM crm.render_email_template('Welcome Email', '{"firstName": "Jo"}')), 'Hey Jo, welcome to Acme',
          'A renders its own version');
SELECT is((SELECT count(*) FROM crm.get_email_templates() WHERE name = 'Welcome Email' AND NOT is_global AND overrides_global), 1::bigint,
          'get_email_templates lists the override once, not the global');
SELECT is((SELECT count(*) FROM crm.get_email_templates()), 4::bigint, 'A sees 4 templates: 3 global + its override');
SELECT throws_ok($$SELECT crm.create_email_template('Global try', 's', 'h', NULL, NULL)$$, '42501', NULL, 'A cannot create a global template');
SELECT tests.logout();

SELECT tests.login('authenticated', '{"account_id": "0000000b-0000-0000-0000-0000000000e1"}');
SELECT is((SELECT subject FROM crm.render_email_template('Welcome Email', '{"firstName": "Jo"}')), 'Welcome to CRM-AI Pro, Jo!',
          'B still gets the global template');
SELECT is((SELECT count(*) FROM crm.email_templates WHERE account_id IS NOT NULL), 0::bigint, 'B cannot see A''s template');
SELECT throws_ok($$SELECT * FROM crm.render_email_template('No such template', '{}')$$, '42704', NULL, 'unknown template: 42704');
SELECT tests.logout();

-- The three parts in one call (what crm.render_email_template runs).
SELECT is((SELECT row(subject, html, text)::text FROM crm._render_email_parts('Hi {{n}}', '<p>{{n}}</p>', NULL, '{"n": "<&>"}')),
          row('Hi <&>', '<p>&lt;&amp;&gt;</p>', '<&>')::text, 'parts: subject as text, HTML escaped, text made from the HTML');
SELECT is((SELECT row(subject, html, text)::text FROM crm._render_email_parts(NULL, NULL, NULL)), row(NULL, NULL, NULL)::text, 'parts: NULL in, NULL out');
SELECT throws_ok($$SELECT * FROM crm._render_email_parts('{{#if}}', NULL, NULL)$$, '22023',
                 'template syntax error at line 1, column 1: {{#if}} is never closed', 'parts: a broken template is 22023');
SELECT throws_ok($$SELECT * FROM crm._render_email_parts('{{x}}', NULL, NULL, '[]')$$, '22023',
                 'template variables must be a JSON object, not an array', 'parts: variables must be an object');
SELECT throws_ok($$SELECT * FROM crm._render_email_parts('{{x}}', NULL, NULL, '{}', true)$$, '22023', NULL, 'parts: strict mode names the missing variable');

SELECT * FROM finish();
ROLLBACK;
