-- A local Prosody for `make run` and the tests: loopback only, plain c2s
-- (sessiond talks to it over 127.0.0.1), accounts in its own data folder.
-- @WORD@ placeholders are filled in by tools/stack.py.
run_as_root = true
daemonize = false
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { { levels = { min = "info" }, to = "file", filename = "@DIR@/prosody.log" } }
network_backend = "epoll"
modules_enabled = { "saslauth"; "disco"; "ping"; "roster" }
modules_disabled = { "s2s"; "limits"; "offline"; "bosh"; "websocket"; "http" }
authentication = "internal_hashed"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
c2s_ports = { @C2S_PORT@ }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }
VirtualHost "@DOMAIN@"
