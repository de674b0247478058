-- Email template store: validation on write, lookup with account override, rendering, and the
-- reference document's four default templates.

-- Every write to email_templates compiles subject, HTML and text body (a broken template is
-- refused with its line and column, whichever way it is written: the function below, a
-- PostgREST insert, psql) and records the variables it reads.
CREATE FUNCTION crm.email_templates_compile() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.variables := ARRAY(
        SELECT DISTINCT v FROM unnest(
               crm.template_variables(NEW.subject, 'subject')
            || crm.template_variables(NEW.html_content, 'html_content')
            || coalesce(crm.template_variables(NEW.text_content, 'text_content'), '{}'::text[])) v
        ORDER BY v);
    RETURN NEW;
END
$$;
CREATE TRIGGER compile_template BEFORE INSERT OR UPDATE ON crm.email_templates
    FOR EACH ROW EXECUTE FUNCTION crm.email_templates_compile();

-- Create a template for an account (default: the caller's), or a global one (account_id NULL,
-- service_role only: row-level security enforces it). Returns its id.
CREATE FUNCTION crm.create_email_template(
    name        text,
    subject     text,
    html        text,
    text_body   text DEFAULT NULL,
    account_id  uuid DEFAULT crm.current_account_id(),
    description text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id uuid;
BEGIN
    IF $1 IS NULL OR $2 IS NULL OR $3 IS NULL THEN
        RAISE EXCEPTION 'name, subject and html are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM crm.email_templates t
               WHERE t.name = $1 AND t.account_id IS NOT DISTINCT FROM $5) THEN
        RAISE EXCEPTION 'email template "%" already exists for this account', $1
            USING ERRCODE = 'unique_violation',
                  HINT = 'Update crm.email_templates, or choose another name.';
    END IF;
    INSERT INTO crm.email_templates (account_id, name, subject, html_content, text_content, description)
    VALUES ($5, $1, $2, $3, $4, $6)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- The template an account uses under a name: its own, else the global one; NULL when there
-- is none. The one lookup behind crm.find_email_template (42704 when none) and enqueue (22023).
-- (plpgsql, not sql: a sql function with SET is planned again at every call; plpgsql keeps
-- its plan for the session, and enqueue calls this once per batch and template.)
CREATE FUNCTION crm._template_named(name text, account_id uuid) RETURNS crm.email_templates
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t crm.email_templates;
BEGIN
    SELECT e.* INTO t FROM crm.email_templates e
    WHERE e.name = $1 AND e.is_active AND (e.account_id = $2 OR e.account_id IS NULL)
    ORDER BY e.account_id NULLS LAST
    LIMIT 1;
    RETURN t;
END
$$;

-- The template an account uses under a name: its own, else the global one.
CREATE FUNCTION crm.find_email_template(name text, account_id uuid DEFAULT crm.current_account_id())
RETURNS crm.email_templates
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t crm.email_templates := crm._template_named($1, $2);
BEGIN
    IF t.id IS NULL THEN
        RAISE EXCEPTION 'email template "%" not found', $1 USING ERRCODE = 'undefined_object';
    END IF;
    RETURN t;
END
$$;

-- The templates an account sees: its own plus the global ones it does not override.
CREATE FUNCTION crm.get_email_templates(account_id uuid DEFAULT crm.current_account_id())
RETURNS TABLE (id uuid, name text, description text, subject text, variables text[],
               is_global boolean, overrides_global boolean, updated_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT ON (t.name)
           t.id, t.name, t.description, t.subject, t.variables,
           t.account_id IS NULL,
           t.account_id IS NOT NULL AND EXISTS (
               SELECT 1 FROM crm.email_templates g WHERE g.account_id IS NULL AND g.name = t.name),
           t.updated_at
    FROM crm.email_templates t
    WHERE t.is_active AND (t.account_id = $1 OR t.account_id IS NULL)
    ORDER BY t.name, t.account_id NULLS LAST
$$;

-- Render a stored template: the subject and text body as plain text, the HTML escaped. A
-- template without a text body gets one made from its rendered HTML.
CREATE FUNCTION crm.render_email_template(
    name       text,
    variables  jsonb DEFAULT '{}',
    account_id uuid DEFAULT crm.current_account_id(),
    strict     boolean DEFAULT false
) RETURNS TABLE (subject text, html text, text text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.subject, p.html, p.text
    FROM crm.find_email_template($1, $3) t,
         LATERAL crm._render_email_parts(t.subject, t.html_content, t.text_content, $2, $4) p
$$;

------------------------------------------------------------------------------------------------
-- Building blocks of the default templates, usable for your own: a responsive single-column
-- layout made of tables with inline styles (what Outlook, Gmail and Apple Mail all render),
-- and a button.
------------------------------------------------------------------------------------------------

CREATE FUNCTION crm.email_layout(preheader text, body text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT '<!DOCTYPE html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f5f7;-webkit-text-size-adjust:100%;">
<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">' || preheader || '</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f4f5f7;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:#ffffff;border-radius:8px;">
<tr><td style="padding:20px 32px;background-color:#1f4e79;border-radius:8px 8px 0 0;font-family:Arial,Helvetica,sans-serif;font-size:20px;line-height:28px;font-weight:bold;color:#ffffff;">{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}</td></tr>
<tr><td style="padding:32px;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:24px;color:#1f2933;">
' || body || '
</td></tr>
<tr><td style="padding:16px 32px 24px;border-top:1px solid #e4e7eb;font-family:Arial,Helvetica,sans-serif;font-size:12px;line-height:18px;color:#7b8794;">You receive this email because you are a customer of {{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}. Questions? Just reply to it.</td></tr>
</table>
</td></tr>
</table>
</body>
</html>'
$$;

CREATE FUNCTION crm.email_button(href text, label text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT '<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:24px 0;">
<tr><td style="border-radius:6px;background-color:#2f80ed;"><a href="' || href || '" style="display:inline-block;padding:12px 24px;font-family:Arial,Helvetica,sans-serif;font-size:16px;font-weight:bold;color:#ffffff;text-decoration:none;border-radius:6px;">' || label || '</a></td></tr>
</table>'
$$;

------------------------------------------------------------------------------------------------
-- The reference document's four default templates, global (account_id NULL). An account
-- overrides one by creating its own template of the same name. Variables: see README.
------------------------------------------------------------------------------------------------

INSERT INTO crm.email_templates (account_id, name, description, subject, html_content, text_content)
VALUES
(NULL, 'Welcome Email', 'New customer onboarding with a login link',
 'Welcome to {{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}, {{firstName}}!',
 crm.email_layout('Your account is ready: log in to book, track and pay.', $body$<h1 style="margin:0 0 16px;font-size:24px;line-height:32px;color:#1f2933;">Welcome, {{firstName}}!</h1>
<p style="margin:0 0 16px;">Your account is ready. From your dashboard you can book appointments, follow your jobs and pay invoices online.</p>
$body$ || crm.email_button('{{loginUrl}}', 'Log in to your account') || $body$
<p style="margin:0;font-size:14px;line-height:20px;color:#52606d;">Or paste this link into your browser:<br><a href="{{loginUrl}}" style="color:#2f80ed;word-break:break-all;">{{loginUrl}}</a></p>$body$),
 $text$Welcome, {{firstName}}!

Your account is ready. From your dashboard you can book appointments, follow your jobs and pay invoices online.

Log in: {{loginUrl}}

{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}$text$),

(NULL, 'Job Status Update', 'Automated job progress notification',
 'Update on your job: {{job.title}} is {{status}}',
 crm.email_layout('{{job.title}}: {{status}}', $body$<p style="margin:0 0 16px;">Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},</p>
<p style="margin:0 0 16px;">Here is the latest on <strong>{{job.title}}</strong>{{#if job.address}} at {{job.address}}{{/if}}.</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 16px;border-collapse:collapse;">
<tr><td style="padding:8px 0;width:110px;color:#52606d;border-bottom:1px solid #e4e7eb;">Status</td><td style="padding:8px 0;font-weight:bold;border-bottom:1px solid #e4e7eb;">{{status}}</td></tr>
{{#if eta}}<tr><td style="padding:8px 0;color:#52606d;border-bottom:1px solid #e4e7eb;">Arrival</td><td style="padding:8px 0;border-bottom:1px solid #e4e7eb;">{{eta:dddd, MMMM D [at] h:mm A}}</td></tr>{{/if}}
{{#if notes}}<tr><td valign="top" style="padding:8px 0;color:#52606d;">Notes</td><td style="padding:8px 0;">{{notes}}</td></tr>{{/if}}
</table>
{{#if jobUrl}}$body$ || crm.email_button('{{jobUrl}}', 'View your job') || $body${{/if}}$body$),
 $text$Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},

Here is the latest on {{job.title}}{{#if job.address}} at {{job.address}}{{/if}}.

Status: {{status}}
{{#if eta}}Arrival: {{eta:dddd, MMMM D [at] h:mm A}}
{{/if}}{{#if notes}}Notes: {{notes}}
{{/if}}{{#if jobUrl}}
View your job: {{jobUrl}}
{{/if}}

{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}$text$),

(NULL, 'Invoice Notification', 'Invoice delivery with amount, due date and a pay link',
 'Invoice {{invoiceNumber}}: {{money amount currency}} due {{dueDate:MMM D, YYYY}}',
 crm.email_layout('Invoice {{invoiceNumber}} for {{money amount currency}}, due {{dueDate:MMM D, YYYY}}.', $body$<p style="margin:0 0 16px;">Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},</p>
<p style="margin:0 0 16px;">Thank you for your business. Here is invoice <strong>{{invoiceNumber}}</strong>{{#if jobTitle}} for {{jobTitle}}{{/if}}.</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 8px;background-color:#f4f5f7;border-radius:6px;">
<tr><td style="padding:20px 24px;">
<div style="font-size:14px;line-height:20px;color:#52606d;">Amount due</div>
<div style="font-size:32px;line-height:40px;font-weight:bold;color:#1f2933;">{{money amount currency}}</div>
<div style="font-size:14px;line-height:20px;color:#52606d;">Due {{dueDate:dddd, MMMM D, YYYY}}</div>
</td></tr>
</table>
$body$ || crm.email_button('{{payUrl}}', 'Pay invoice') || $body$
<p style="margin:0;font-size:14px;line-height:20px;color:#52606d;">Pay securely online: <a href="{{payUrl}}" style="color:#2f80ed;word-break:break-all;">{{payUrl}}</a></p>$body$),
 $text$Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},

Thank you for your business. Here is invoice {{invoiceNumber}}{{#if jobTitle}} for {{jobTitle}}{{/if}}.

Amount due: {{money amount currency}}
Due: {{dueDate:dddd, MMMM D, YYYY}}

Pay online: {{payUrl}}

{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}$text$),

(NULL, 'Appointment Reminder', 'Reminder before a scheduled appointment, with a reschedule link',
 'Reminder: your appointment on {{scheduledAt:dddd, MMMM D [at] h:mm A}}',
 crm.email_layout('See you {{scheduledAt:dddd, MMMM D [at] h:mm A}}.', $body$<p style="margin:0 0 16px;">Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},</p>
<p style="margin:0 0 16px;">This is a reminder of your upcoming appointment{{#if serviceName}} for <strong>{{serviceName}}</strong>{{/if}}.</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 16px;border-collapse:collapse;">
<tr><td style="padding:8px 0;width:110px;color:#52606d;border-bottom:1px solid #e4e7eb;">When</td><td style="padding:8px 0;font-weight:bold;border-bottom:1px solid #e4e7eb;">{{scheduledAt:dddd, MMMM D, YYYY [at] h:mm A}}</td></tr>
<tr><td valign="top" style="padding:8px 0;color:#52606d;border-bottom:1px solid #e4e7eb;">Where</td><td style="padding:8px 0;border-bottom:1px solid #e4e7eb;">{{address}}</td></tr>
{{#if technicianName}}<tr><td style="padding:8px 0;color:#52606d;">Technician</td><td style="padding:8px 0;">{{technicianName}}</td></tr>{{/if}}
</table>
<p style="margin:0 0 8px;">Need a different time?</p>
$body$ || crm.email_button('{{rescheduleUrl}}', 'Reschedule') || ''),
 $text$Hi {{#if customerName}}{{customerName}}{{else}}there{{/if}},

This is a reminder of your upcoming appointment{{#if serviceName}} for {{serviceName}}{{/if}}.

When: {{scheduledAt:dddd, MMMM D, YYYY [at] h:mm A}}
Where: {{address}}
{{#if technicianName}}Technician: {{technicianName}}
{{/if}}
Need a different time? Reschedule: {{rescheduleUrl}}

{{#if companyName}}{{companyName}}{{else}}CRM-AI Pro{{/if}}$text$);
