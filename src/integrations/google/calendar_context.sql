-- calendar.sync_job's context ($1: the task's account id, text; $2: its payload): the job, the
-- calendar connection it belongs on (the assigned technician's default Google calendar, else
-- the account's default one), its current event, the time zone and the app's URL. Everything
-- scoped to the task's account.
WITH j AS (
    SELECT j.* FROM crm.jobs j WHERE j.id = ($2 ->> 'job_id')::uuid AND j.account_id = $1::uuid
), conn AS (
    SELECT p.* FROM crm.calendar_providers p, j
    WHERE p.account_id = j.account_id AND p.provider = 'google' AND p.is_active AND NOT p.needs_reconnect
      AND p.access_token_encrypted IS NOT NULL
      AND ((j.assigned_to IS NOT NULL AND p.user_id = j.assigned_to) OR p.is_default)
    ORDER BY (j.assigned_to IS NOT NULL AND p.user_id IS NOT DISTINCT FROM j.assigned_to) DESC, p.is_default DESC,
             p.user_id NULLS FIRST, p.created_at
    LIMIT 1
)
SELECT json_build_object(
    'job', (SELECT json_build_object('id', j.id, 'title', j.title, 'description', j.description, 'status', j.status,
                                     'start', extract(epoch FROM j.scheduled_start), 'end', extract(epoch FROM j.scheduled_end),
                                     'address', j.address,
                                     'customer', nullif(trim(concat_ws(' ', c.first_name, c.last_name)), ''))
            FROM j LEFT JOIN crm.contacts c ON c.account_id = j.account_id AND c.id = j.contact_id),
    'target', (SELECT json_build_object('id', p.id, 'provider', p.provider, 'table', 'calendar_providers',
                                        'scopes', p.scopes, 'access_token', p.access_token_encrypted,
                                        'refresh_token', p.refresh_token_encrypted,
                                        'expires_at', extract(epoch FROM p.token_expires_at),
                                        'calendar_id', p.calendar_id)
               FROM conn p),
    'mapping', (SELECT json_build_object('connection_id', e.connection_id, 'calendar_id', e.calendar_id,
                                         'event_id', e.event_id, 'generation', e.generation,
                                         'connection', CASE WHEN p.id IS NOT NULL AND p.access_token_encrypted IS NOT NULL THEN
                                             json_build_object('id', p.id, 'provider', p.provider, 'table', 'calendar_providers',
                                                               'scopes', p.scopes, 'access_token', p.access_token_encrypted,
                                                               'refresh_token', p.refresh_token_encrypted,
                                                               'expires_at', extract(epoch FROM p.token_expires_at)) END)
                FROM crm.calendar_events e LEFT JOIN crm.calendar_providers p ON p.id = e.connection_id
                WHERE e.job_id = ($2 ->> 'job_id')::uuid AND e.account_id = $1::uuid),
    'time_zone', coalesce((SELECT a.time_zone FROM crm.accounts a WHERE a.id = $1::uuid),
                          nullif(current_setting('crm.calendar_time_zone', true), ''), 'UTC'),
    'app_base_url', nullif(current_setting('crm.app_base_url', true), ''))
