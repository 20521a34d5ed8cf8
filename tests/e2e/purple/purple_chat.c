/* purple_chat.c - libpurple itself (the library of Pidgin and Finch) as a BOSH
 * client for the end-to-end tests: it logs in through the BOSH URL, sends a
 * message to its own JID, waits for it, logs out, and prints one JSON line.
 *
 *   purple_chat USER_DIR BOSH_URL USER@DOMAIN/RESOURCE PASSWORD
 *
 * Exit 0 when the message came back, 1 otherwise (the reason in the JSON
 * line). PURPLE_DEBUG=1 turns libpurple's debug output on (stderr).
 */
#define _POSIX_C_SOURCE 200809L
#include <purple.h>

#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UI_ID "bosh-e2e"
#define TIMEOUT_S 30

static GMainLoop *main_loop;
static PurpleAccount *account;
static const char *jid;
static char text[128];
static int result = 1;

/* libpurple leaves I/O and timers to its UI; glib's main loop does them. */
struct io_closure {
	PurpleInputFunction fn;
	gpointer data;
};

static gboolean io_invoke(GIOChannel *ch, GIOCondition cond, gpointer data)
{
	struct io_closure *c = data;
	int pc = 0;
	if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
		pc |= PURPLE_INPUT_READ;
	if (cond & (G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL))
		pc |= PURPLE_INPUT_WRITE;
	c->fn(c->data, g_io_channel_unix_get_fd(ch), (PurpleInputCondition)pc);
	return TRUE;
}

static guint input_add(gint fd, PurpleInputCondition cond, PurpleInputFunction fn, gpointer data)
{
	struct io_closure *c = g_new0(struct io_closure, 1);
	int gc = 0;
	c->fn = fn;
	c->data = data;
	if (cond & PURPLE_INPUT_READ)
		gc |= G_IO_IN | G_IO_HUP | G_IO_ERR;
	if (cond & PURPLE_INPUT_WRITE)
		gc |= G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL;
	GIOChannel *ch = g_io_channel_unix_new(fd);
	guint id = g_io_add_watch_full(ch, G_PRIORITY_DEFAULT, (GIOCondition)gc, io_invoke, c, g_free);
	g_io_channel_unref(ch);
	return id;
}

static PurpleEventLoopUiOps loop_ops = {
	g_timeout_add, g_source_remove, input_add, g_source_remove, NULL, g_timeout_add_seconds,
	NULL, NULL, NULL,
};

static gboolean quit(gpointer unused)
{
	(void)unused;
	g_main_loop_quit(main_loop);
	return FALSE;
}

static gboolean log_out(gpointer unused)
{
	(void)unused;
	if (!purple_account_is_disconnected(account))
		purple_account_disconnect(account); /* sends the terminate request */
	g_timeout_add(500, quit, NULL);         /* a moment for it to leave */
	return FALSE;
}

static void finish(int ok, const char *why)
{
	if (main_loop == NULL || !g_main_loop_is_running(main_loop))
		return;
	char *esc = g_strescape(why ? why : "", NULL);
	printf("{\"ok\":%s,\"error\":\"%s\"}\n", ok ? "true" : "false", esc);
	fflush(stdout);
	g_free(esc);
	result = ok ? 0 : 1;
	/* Not from here: a signal handler runs inside libpurple's packet
	 * processing, which must not see its connection freed under it. */
	g_timeout_add(0, log_out, NULL);
}

static void signed_on(PurpleConnection *gc, gpointer unused)
{
	(void)gc;
	(void)unused;
	PurpleConversation *conv = purple_conversation_new(PURPLE_CONV_TYPE_IM, account, jid);
	purple_conv_im_send(PURPLE_CONV_IM(conv), text);
}

static void received_im(PurpleAccount *acct, char *sender, char *message, PurpleConversation *conv,
                        PurpleMessageFlags flags, gpointer unused)
{
	(void)acct;
	(void)sender;
	(void)conv;
	(void)flags;
	(void)unused;
	if (strstr(message, text))
		finish(1, NULL);
}

static void connection_error(PurpleConnection *gc, PurpleConnectionError err, const gchar *desc,
                             gpointer unused)
{
	(void)gc;
	(void)err;
	(void)unused;
	finish(0, desc);
}

static gboolean timed_out(gpointer unused)
{
	(void)unused;
	finish(0, "no message back within " G_STRINGIFY(TIMEOUT_S) " s");
	return FALSE;
}

int main(int argc, char **argv)
{
	static int handle;
	if (argc != 5) {
		fprintf(stderr, "usage: purple_chat USER_DIR BOSH_URL USER@DOMAIN/RESOURCE PASSWORD\n");
		return 2;
	}
	signal(SIGCHLD, SIG_IGN); /* libpurple's resolver children */
	jid = argv[3];
	snprintf(text, sizeof text, "hello from libpurple %d", (int)getpid());
	purple_util_set_user_dir(argv[1]);
	purple_debug_set_enabled(getenv("PURPLE_DEBUG") != NULL);
	purple_eventloop_set_ui_ops(&loop_ops);
	if (!purple_core_init(UI_ID)) {
		fprintf(stderr, "libpurple did not initialize\n");
		return 1;
	}
	purple_set_blist(purple_blist_new());
	main_loop = g_main_loop_new(NULL, FALSE);

	account = purple_account_new(jid, "prpl-jabber");
	purple_account_set_password(account, argv[4]);
	purple_account_set_string(account, "bosh_url", argv[2]);
	/* plain http on loopback: no TLS to be had */
	purple_account_set_string(account, "connection_security", "opportunistic_tls");
	purple_account_set_bool(account, "auth_plain_in_clear", TRUE);
	purple_accounts_add(account);

	purple_signal_connect(purple_connections_get_handle(), "signed-on", &handle,
	                      PURPLE_CALLBACK(signed_on), NULL);
	purple_signal_connect(purple_connections_get_handle(), "connection-error", &handle,
	                      PURPLE_CALLBACK(connection_error), NULL);
	purple_signal_connect(purple_conversations_get_handle(), "received-im-msg", &handle,
	                      PURPLE_CALLBACK(received_im), NULL);
	g_timeout_add_seconds(TIMEOUT_S, timed_out, NULL);

	purple_account_set_enabled(account, UI_ID, TRUE);
	purple_savedstatus_activate(purple_savedstatus_new(NULL, PURPLE_STATUS_AVAILABLE));
	g_main_loop_run(main_loop);
	return result;
}
