-- BOSH connection manager: session state, written by sessiond.
--
-- sessiond applies this file at start (it is compiled in) inside one
-- transaction; PRAGMA user_version tells which version a database has.
-- A database of an older version is first brought up to date by the
-- migrations in sessiond/store.c (version 1 -> 2: the key column;
-- 2 -> 3: the transport column).
-- Times are Unix seconds (REAL). Admins: read the views in views.sql.
--
-- state: connecting  the XMPP connection is being set up
--        active      the session is running
--        ended       the session ended; end_condition says why
--        lost        sessiond stopped while the session ran, so its XMPP
--                    connection is gone; its next request is answered
--                    with remote-connection-failed

CREATE TABLE IF NOT EXISTS sessions (
	sid           TEXT PRIMARY KEY,
	state         TEXT NOT NULL CHECK (state IN ('connecting', 'active', 'ended', 'lost')),
	rid           INTEGER NOT NULL,          -- highest rid processed
	jid           TEXT,                      -- once resource binding succeeded
	to_domain     TEXT NOT NULL,
	route         TEXT,
	wait          INTEGER NOT NULL,
	hold          INTEGER NOT NULL,
	inactivity    INTEGER NOT NULL,
	requests      INTEGER NOT NULL,
	ver           TEXT,
	lang          TEXT,
	client_addr   TEXT,
	user_agent    TEXT,
	held          INTEGER NOT NULL DEFAULT 0, -- requests held right now
	created_at    REAL NOT NULL,
	last_seen     REAL NOT NULL,
	ended_at      REAL,
	end_condition TEXT,
	pid           INTEGER,                    -- the sessiond process serving it
	key           TEXT,                       -- key sequence (XEP-0124 §15): what the next key must hash to
	transport     TEXT NOT NULL DEFAULT 'bosh' -- 'bosh' or 'websocket' (RFC 7395)
);

CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state, ended_at);

PRAGMA user_version = 3;
