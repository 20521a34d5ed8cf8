-- A Prosody that requires TLS, for the tests of sessiond's connections to
-- XMPP servers (tests/e2e/backend_cases.py): STARTTLS on the c2s port,
-- direct TLS (XEP-0368) on another, and hosts whose certificates are good,
-- for the wrong name, from a CA sessiond does not trust, or named only by an
-- SRV-ID. @WORD@ placeholders are filled in by the tests.
run_as_root = true
daemonize = false
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { { levels = { min = "info" }, to = "file", filename = "@DIR@/prosody.log" } }
network_backend = "epoll"
modules_enabled = { "saslauth"; "tls"; "disco"; "ping"; "roster" }
modules_disabled = { "s2s"; "limits"; "offline"; "bosh"; "websocket"; "http" }
authentication = "internal_hashed"
c2s_require_encryption = true
c2s_ports = { @C2S_PORT@ }
c2s_direct_tls_ports = { @DIRECT_TLS_PORT@ }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }
-- Prosody turns session tickets off by default; on here, so the tests can
-- see sessiond resume a TLS session.
ssl = { certificate = "@DIR@/good.crt"; key = "@DIR@/good.key"; options = { no_ticket = false } }

VirtualHost "secure.test"
VirtualHost "direct.test"
VirtualHost "srv.test"
VirtualHost "direct-srv.test"
VirtualHost "wrongname.test"
	ssl = { certificate = "@DIR@/other.crt"; key = "@DIR@/other.key" }
VirtualHost "srvid.test"
	ssl = { certificate = "@DIR@/srvid.crt"; key = "@DIR@/srvid.key" }
VirtualHost "untrusted.test"
	ssl = { certificate = "@DIR@/untrusted.crt"; key = "@DIR@/untrusted.key" }
VirtualHost "pinned.test"
	ssl = { certificate = "@DIR@/untrusted.crt"; key = "@DIR@/untrusted.key" }
VirtualHost "badpin.test"
	ssl = { certificate = "@DIR@/untrusted.crt"; key = "@DIR@/untrusted.key" }
