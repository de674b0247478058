-- The realistic variables each default template is rendered with in the template benchmark
-- (the same ones tests/sql/default_templates.sql checks the output of).
CREATE TABLE IF NOT EXISTS bench.template_cases (name text PRIMARY KEY, vars jsonb NOT NULL);
TRUNCATE bench.template_cases;
INSERT INTO bench.template_cases VALUES
  ('Welcome Email', '{"firstName": "John", "loginUrl": "https://app.crm-ai-pro.com/login", "companyName": "317 Plumber"}'),
  ('Job Status Update', '{"customerName": "John", "job": {"title": "Water heater replacement", "address": "12 Elm St"}, "status": "completed", "notes": "All work completed successfully", "eta": "2:30 PM"}'),
  ('Invoice Notification', '{"customerName": "John", "invoiceNumber": "INV-1042", "amount": 123456, "currency": "usd", "dueDate": "2026-12-15", "payUrl": "https://pay.example/i/1042"}'),
  ('Appointment Reminder', '{"customerName": "John", "scheduledAt": "2025-02-01T14:00:00Z", "address": "12 Elm St", "rescheduleUrl": "https://app.crm-ai-pro.com/reschedule/apt-456", "_timezone": "America/Indiana/Indianapolis"}');
