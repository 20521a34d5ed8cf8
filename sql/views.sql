-- Views an admin would write anyway. sessiond (re)creates them at start.
--   sqlite3 sessions.db 'select * from active_sessions'

DROP VIEW IF EXISTS active_sessions;
CREATE VIEW active_sessions AS
SELECT sid,
       jid,
       to_domain AS domain,
       transport,
       client_addr,
       state,
       held AS held_requests,
       CAST(strftime('%s', 'now') - created_at AS INTEGER) AS age_s,
       CAST(strftime('%s', 'now') - last_seen AS INTEGER) AS idle_s,
       rid,
       wait,
       hold,
       inactivity,
       user_agent
FROM sessions
WHERE state IN ('connecting', 'active')
ORDER BY created_at;

DROP VIEW IF EXISTS sessions_per_domain;
CREATE VIEW sessions_per_domain AS
SELECT to_domain AS domain,
       count(*) AS sessions,
       sum(held) AS held_requests,
       sum(jid IS NOT NULL) AS logged_in
FROM sessions
WHERE state IN ('connecting', 'active')
GROUP BY to_domain
ORDER BY sessions DESC;

DROP VIEW IF EXISTS recently_ended;
CREATE VIEW recently_ended AS
SELECT sid,
       jid,
       to_domain AS domain,
       transport,
       client_addr,
       state,
       end_condition AS condition,
       datetime(ended_at, 'unixepoch') AS ended,
       CAST(ended_at - created_at AS INTEGER) AS duration_s
FROM sessions
WHERE state IN ('ended', 'lost')
ORDER BY ended_at DESC;
