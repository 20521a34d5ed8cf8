/* autostart.h - start sessiond when a handler finds none (shared hosting:
 * no init system, only CGI). Exactly one sessiond even when many handlers
 * race: they take a lock file (flock) beside the control socket, the way
 * tmux's client starts its server. */
#ifndef BOSH_AUTOSTART_H
#define BOSH_AUTOSTART_H

struct config;

/* Makes sure a sessiond answers on cfg->control_socket, starting
 * cfg->sessiond_path -c config_path if none does. Waits at most
 * timeout_ms. Returns 0 when one answers, -1 (logged) otherwise. */
int autostart_sessiond(const struct config *cfg, const char *config_path, int timeout_ms);

/* 1 if something accepts connections on the control socket. */
int sessiond_answers(const char *control_socket);

#endif
