-- Contacts: matching keys (email case and Gmail's dots and +suffix, phones national and
-- international, names), duplicate candidates, merge (fields filled, conflicts kept, references
-- moved) and unmerge restoring both rows and every reference exactly; refusals; tenants apart.
BEGIN;
SELECT plan(30);
SELECT tests.share_tap();

-- keys
SELECT is(crm._email_key(' John.Smith+crm@GMail.com '), 'johnsmith@gmail.com', 'email key: case, Gmail dots and +suffix');
SELECT is(crm._email_key('John.Smith+crm@Example.com'), 'john.smith+crm@example.com', '... only for Gmail: elsewhere a dot or plus may be another mailbox');
SELECT is(crm._email_key('not an address'), NULL, '... none for what is not an address');
SELECT is(crm._phone_key('(317) 232-4567', 'US'), '+13172324567', 'phone key: a national number read in the default region, as E.164');
SELECT is(crm._phone_key('+1 317.232.4567', 'DE'), '+13172324567', '... an international one whatever the region');
SELECT is(crm._phone_key('030 1234567', 'DE'), '+49301234567', '... a German national number in region DE');
SELECT is(crm._phone_key('12', 'US'), NULL, '... none for an invalid number');
SELECT ok(crm._name_similarity('Jon Smith', 'John  smith') > 0.9 AND crm._name_similarity('John Smith', 'Ana Lopez') < 0.7,
          'names: Jaro-Winkler over folded names');

INSERT INTO crm.accounts (id, name) VALUES
  ('0000000a-0000-0000-0000-00000000c0a1', 'Contacts A'), ('0000000a-0000-0000-0000-00000000c0b1', 'Contacts B');
INSERT INTO crm.users (id, account_id, email, role) VALUES
  ('0000000a-0000-0000-0000-00000000c0a9', '0000000a-0000-0000-0000-00000000c0a1', 'a@a.example', 'owner'),
  ('0000000a-0000-0000-0000-00000000c0b9', '0000000a-0000-0000-0000-00000000c0b1', 'b@b.example', 'owner');
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, phone, address) VALUES
  ('c0000000-0000-0000-0000-00000000c001', '0000000a-0000-0000-0000-00000000c0a1', 'John', 'Smith', 'john.smith@gmail.com', NULL, '12 Elm St'),
  ('c0000000-0000-0000-0000-00000000c002', '0000000a-0000-0000-0000-00000000c0a1', 'Johnny', NULL, 'JohnSmith+work@gmail.com', '(317) 232-4567', '99 Other Rd'),
  ('c0000000-0000-0000-0000-00000000c003', '0000000a-0000-0000-0000-00000000c0a1', 'Ana', 'Lopez', NULL, '+1 317 232 4567', NULL),
  ('c0000000-0000-0000-0000-00000000c004', '0000000a-0000-0000-0000-00000000c0a1', 'Jon', 'Smith', NULL, NULL, '12 elm st.'),
  ('c0000000-0000-0000-0000-00000000c005', '0000000a-0000-0000-0000-00000000c0a1', 'Bea', 'Other', 'bea@example.com', NULL, NULL),
  ('c0000000-0000-0000-0000-00000000c009', '0000000a-0000-0000-0000-00000000c0b1', 'John', 'Smith', 'john.smith@gmail.com', NULL, NULL);
INSERT INTO crm.jobs (id, account_id, contact_id, title) VALUES
  ('d0000000-0000-0000-0000-00000000c001', '0000000a-0000-0000-0000-00000000c0a1', 'c0000000-0000-0000-0000-00000000c002', 'Johnny''s leak'),
  ('d0000000-0000-0000-0000-00000000c002', '0000000a-0000-0000-0000-00000000c0a1', 'c0000000-0000-0000-0000-00000000c002', 'Johnny''s heater'),
  ('d0000000-0000-0000-0000-00000000c003', '0000000a-0000-0000-0000-00000000c0a1', 'c0000000-0000-0000-0000-00000000c001', 'John''s own');
INSERT INTO crm.invoices (id, account_id, contact_id, invoice_number, amount) VALUES
  ('e0000000-0000-0000-0000-00000000c001', '0000000a-0000-0000-0000-00000000c0a1', 'c0000000-0000-0000-0000-00000000c002', 'C-1', 500);
INSERT INTO crm.contact_providers (id, account_id, provider, provider_email) VALUES
  ('f0000000-0000-0000-0000-00000000c001', '0000000a-0000-0000-0000-00000000c0a1', 'google', 'a@a.example');
INSERT INTO crm.contact_sources (id, account_id, contact_id, connection_id, provider, external_id) VALUES
  ('f1000000-0000-0000-0000-00000000c001', '0000000a-0000-0000-0000-00000000c0a1', 'c0000000-0000-0000-0000-00000000c002',
   'f0000000-0000-0000-0000-00000000c001', 'google', 'people/c123');

-- duplicates, as the tenant
SELECT tests.login('authenticated', '{"sub": "0000000a-0000-0000-0000-00000000c0a9"}');
SELECT is((SELECT array_agg(right(contact_id::text, 2) || '-' || right(duplicate_id::text, 2) || ':' || reason || ':' || auto
                            ORDER BY contact_id, duplicate_id)
           FROM crm.find_duplicate_contacts()),
          ARRAY['01-02:same email:true', '01-04:similar name, same address:false', '02-03:same phone:true'],
          'find_duplicate_contacts: same email (Gmail dots/plus), same phone (national = international), similar name at the same address (a suggestion only); the other account''s John is not among them');
SELECT throws_ok($$SELECT * FROM crm.find_duplicate_contacts('0000000a-0000-0000-0000-00000000c0b1')$$, '42501', NULL,
                 'another account''s duplicates: 42501');
SELECT tests.logout();

-- merge 02 into 01, as the tenant (the rows are dated in the past first, so that "restored
-- exactly" covers updated_at: inside this transaction now() would hide a re-stamp)
SET LOCAL crm.restoring_rows = on;
UPDATE crm.contacts SET updated_at = '2020-01-02 03:04:05+00', created_at = '2020-01-01 00:00:00+00'
WHERE account_id = '0000000a-0000-0000-0000-00000000c0a1';
SET LOCAL crm.restoring_rows = off;
CREATE TEMP TABLE before_rows AS
SELECT 'contact' AS kind, id, to_jsonb(c) AS row FROM crm.contacts c WHERE id IN ('c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c002')
UNION ALL SELECT 'job', id, jsonb_build_object('contact_id', contact_id) FROM crm.jobs WHERE account_id = '0000000a-0000-0000-0000-00000000c0a1'
UNION ALL SELECT 'invoice', id, jsonb_build_object('contact_id', contact_id) FROM crm.invoices WHERE account_id = '0000000a-0000-0000-0000-00000000c0a1'
UNION ALL SELECT 'source', id, jsonb_build_object('contact_id', contact_id) FROM crm.contact_sources WHERE account_id = '0000000a-0000-0000-0000-00000000c0a1';
GRANT SELECT ON before_rows TO PUBLIC;
SELECT tests.login('authenticated', '{"sub": "0000000a-0000-0000-0000-00000000c0a9"}');
SELECT throws_ok($$SELECT crm.merge_contacts('c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c009')$$,
                 'P0002', NULL, 'merging another account''s contact: no such contact (P0002)');
SELECT throws_ok($$SELECT crm.merge_contacts('c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c001')$$,
                 '22023', NULL, 'a contact with itself: 22023');
SELECT ok(crm.merge_contacts('c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c002') IS NOT NULL, 'merge_contacts returns the merge id');
SELECT tests.logout();
SELECT is((SELECT first_name || ' ' || last_name || ' ' || email || ' ' || phone || ' ' || address FROM crm.contacts WHERE id = 'c0000000-0000-0000-0000-00000000c001'),
          'John Smith john.smith@gmail.com (317) 232-4567 12 Elm St', 'the kept contact took the phone it lacked; its own values stayed');
SELECT is((SELECT conflicts FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c001'),
          '{"address": ["12 Elm St", "99 Other Rd"], "first_name": ["John", "Johnny"]}'::jsonb,
          'the conflicting values are recorded, both sides (the Gmail address written another way is not a conflict)');
SELECT is((SELECT count(*) FROM crm.contacts WHERE id = 'c0000000-0000-0000-0000-00000000c002'), 0::bigint, 'the merged contact is gone');
SELECT is((SELECT array_agg(contact_id::text ORDER BY id) FROM crm.jobs WHERE id IN ('d0000000-0000-0000-0000-00000000c001', 'd0000000-0000-0000-0000-00000000c002')),
          ARRAY['c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c001'], 'its jobs moved to the kept contact');
SELECT is((SELECT contact_id FROM crm.invoices WHERE id = 'e0000000-0000-0000-0000-00000000c001')::text || '/' ||
          (SELECT contact_id FROM crm.contact_sources WHERE id = 'f1000000-0000-0000-0000-00000000c001')::text,
          'c0000000-0000-0000-0000-00000000c001/c0000000-0000-0000-0000-00000000c001', '... its invoice and its source too');
SELECT is((SELECT merged_by FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c001'),
          '0000000a-0000-0000-0000-00000000c0a9', 'who merged is recorded');

-- the other account cannot see or undo it
SELECT tests.login('authenticated', '{"sub": "0000000a-0000-0000-0000-00000000c0b9"}');
SELECT is((SELECT count(*) FROM crm.contact_merges), 0::bigint, 'another account sees no merge');
SELECT throws_ok(format('SELECT crm.unmerge_contacts(%L)', (SELECT id FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c001')),
                 'P0002', NULL, '... and cannot undo it (P0002)');
SELECT tests.logout();

-- unmerge restores everything exactly
SELECT tests.login('authenticated', '{"sub": "0000000a-0000-0000-0000-00000000c0a9"}');
SELECT lives_ok(format('SELECT crm.unmerge_contacts(%L)', (SELECT id FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c001')),
                'unmerge_contacts (as the tenant)');
SELECT tests.logout();
SELECT is((SELECT count(*) FROM before_rows b WHERE b.kind = 'contact' AND b.row IS DISTINCT FROM (SELECT to_jsonb(c) FROM crm.contacts c WHERE c.id = b.id)),
          0::bigint, 'both contacts are back byte for byte (every column, updated_at included)');
SELECT is((SELECT count(*) FROM before_rows b WHERE b.kind <> 'contact' AND b.row ->> 'contact_id' IS DISTINCT FROM coalesce(
              (SELECT contact_id::text FROM crm.jobs WHERE id = b.id), (SELECT contact_id::text FROM crm.invoices WHERE id = b.id),
              (SELECT contact_id::text FROM crm.contact_sources WHERE id = b.id))),
          0::bigint, 'every moved reference (jobs, invoice, source) points where it did');
SELECT throws_ok(format('SELECT crm.unmerge_contacts(%L)', (SELECT id FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c001')),
                 '55000', NULL, 'undoing twice: 55000');

-- the restoring switch is the definer's: a tenant setting it still gets updated_at stamped
SELECT tests.login('authenticated', '{"sub": "0000000a-0000-0000-0000-00000000c0a9"}');
SET LOCAL crm.restoring_rows = on;
UPDATE crm.contacts SET first_name = 'Bea' WHERE id = 'c0000000-0000-0000-0000-00000000c005';
SET LOCAL crm.restoring_rows = off;
SELECT tests.logout();
SELECT is((SELECT updated_at FROM crm.contacts WHERE id = 'c0000000-0000-0000-0000-00000000c005'), now(),
          'a tenant that sets crm.restoring_rows still has updated_at stamped');

-- a key shared by more than 20 contacts (a switchboard) makes no pairs
INSERT INTO crm.contacts (account_id, first_name, phone)
SELECT '0000000a-0000-0000-0000-00000000c0a1', 'Switchboard ' || i, '(317) 232-9999' FROM generate_series(1, 25) i;
SELECT is((SELECT count(*) FROM crm.find_duplicate_contacts('0000000a-0000-0000-0000-00000000c0a1') WHERE reason = 'same phone')::text
          || '/' || (crm._phone_key('(317) 232-9999', 'US') IS NOT NULL)::text,
          '1/true', 'a (valid) phone shared by 25 contacts makes no pairs (only the real one remains)');

-- a kept contact edited after its merge is not silently rolled back
SELECT ok(crm.merge_contacts('c0000000-0000-0000-0000-00000000c003', 'c0000000-0000-0000-0000-00000000c005') IS NOT NULL, 'another merge');
UPDATE crm.contacts SET last_name = 'López' WHERE id = 'c0000000-0000-0000-0000-00000000c003';
SELECT throws_ok(format('SELECT crm.unmerge_contacts(%L)', (SELECT id FROM crm.contact_merges WHERE kept_contact_id = 'c0000000-0000-0000-0000-00000000c003')),
                 '55000', NULL, 'undoing after the kept contact changed: 55000 (it would lose the change)');
SELECT tests.login('anon', NULL);
SELECT throws_ok($$SELECT crm.merge_contacts('c0000000-0000-0000-0000-00000000c001', 'c0000000-0000-0000-0000-00000000c004')$$,
                 '42501', NULL, 'anon cannot merge');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
