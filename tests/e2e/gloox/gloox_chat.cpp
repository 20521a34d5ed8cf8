// gloox (Debian's libgloox-dev) as a BOSH test client: two users log in
// through ConnectionBOSH over a plain TCP connection to the web server,
// send each other directed presence, then a message each way.
//
// usage: gloox_chat HOST PORT DOMAIN MODE USER1 PASS1 USER2 PASS2
//   MODE: persistent (HTTP/1.1, connections kept) or legacy (HTTP/1.0,
//   one connection per request). GLOOX_DEBUG=1 prints gloox's log.
// Exits 0 once both messages arrived, 1 with a reason otherwise; gives up
// after LIMIT seconds.
#include <gloox/client.h>
#include <gloox/connectionbosh.h>
#include <gloox/connectionlistener.h>
#include <gloox/connectiontcpclient.h>
#include <gloox/loghandler.h>
#include <gloox/message.h>
#include <gloox/messagehandler.h>
#include <gloox/presence.h>
#include <gloox/presencehandler.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <unistd.h>

using namespace gloox;

static const int LIMIT = 45;

class User : public ConnectionListener, MessageHandler, PresenceHandler, LogHandler {
public:
	User(const std::string &name, const std::string &jid, const std::string &pass, const std::string &host,
	     int port, const std::string &domain, ConnectionBOSH::ConnMode mode)
	    : name_(name), client_(JID(jid), pass)
	{
		client_.setTls(TLSDisabled); // plain BOSH over loopback: TLS is the web server's business
		client_.setCompression(false);
		// gloox 1.0.24's SCRAM-SHA-1 without TLS opens with gs2 header "y,," and
		// proves with "n,," (c=biws): Prosody refuses it ("Invalid channel
		// binding value"), with or without BOSH. PLAIN, as over TLS in real use.
		client_.setSASLMechanisms(SaslMechPlain);
		if (getenv("GLOOX_DEBUG"))
			client_.logInstance().registerLogHandler(LogLevelDebug, LogAreaAll, this);
		auto *tcp = new ConnectionTCPClient(client_.logInstance(), host, port);
		// boshHost is the HTTP Host; gloox sends route='xmpp:DOMAIN:5222'
		bosh_ = new ConnectionBOSH(&client_, tcp, client_.logInstance(), host, domain, 5222);
		bosh_->setPath("/http-bind");
		bosh_->setMode(mode);
		client_.setConnectionImpl(bosh_);
		client_.registerConnectionListener(this);
		client_.registerMessageHandler(this);
		client_.registerPresenceHandler(this);
	}

	void onConnect() override { connected = true; }
	void onDisconnect(ConnectionError e) override
	{
		disconnected = true;
		error = e;
	}
	bool onTLSConnect(const CertInfo &) override { return true; }
	void handleMessage(const Message &msg, MessageSession *) override
	{
		if (!msg.body().empty())
			got_message = msg.from().bare() + ": " + msg.body();
	}
	void handlePresence(const Presence &p) override
	{
		if (p.subtype() == Presence::Available && p.from() != client_.jid())
			got_presence = p.from().full();
	}
	void handleLog(LogLevel, LogArea, const std::string &message) override
	{
		fprintf(stderr, "[%s] %s\n", name_.c_str(), message.c_str());
	}

	Client &client() { return client_; }
	std::string name_;
	bool connected = false, disconnected = false;
	ConnectionError error = ConnNoError;
	std::string got_presence, got_message;

private:
	Client client_;
	ConnectionBOSH *bosh_;
};

static void fail(const char *what, User *a, User *b)
{
	fprintf(stderr, "gloox: %s (alice: connected=%d disconnected=%d error=%d auth=%d presence='%s' "
	        "message='%s'; bob: connected=%d disconnected=%d error=%d auth=%d presence='%s' message='%s')\n",
	        what, a->connected, a->disconnected, (int)a->error, (int)a->client().authError(),
	        a->got_presence.c_str(), a->got_message.c_str(), b->connected, b->disconnected, (int)b->error,
	        (int)b->client().authError(), b->got_presence.c_str(), b->got_message.c_str());
	exit(1);
}

// Runs both clients' event handling until done() or a failure.
template <typename F> static void pump(User *a, User *b, time_t deadline, const char *step, F done)
{
	while (!done()) {
		for (User *u : { a, b }) {
			// ConnectionBOSH's recv() says ConnNotConnected between two HTTP
			// connections (one per request in legacy mode): only
			// onDisconnect() means the session is gone.
			if (u->client().recv(20000) != ConnNoError) // microseconds
				usleep(5000);
			if (u->disconnected)
				fail((std::string(step) + ": " + u->name_ + "'s connection ended").c_str(), a, b);
		}
		if (time(nullptr) > deadline)
			fail((std::string(step) + ": timed out").c_str(), a, b);
	}
}

int main(int argc, char **argv)
{
	if (argc != 9 || (strcmp(argv[4], "persistent") != 0 && strcmp(argv[4], "legacy") != 0)) {
		fprintf(stderr, "usage: %s HOST PORT DOMAIN persistent|legacy USER1 PASS1 USER2 PASS2\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm(LIMIT + 15); // a last resort should gloox block in a call
	std::string host = argv[1], domain = argv[3];
	int port = atoi(argv[2]);
	ConnectionBOSH::ConnMode mode =
	    strcmp(argv[4], "persistent") == 0 ? ConnectionBOSH::ModePersistentHTTP : ConnectionBOSH::ModeLegacyHTTP;
	std::string ja = std::string(argv[5]) + "@" + domain + "/gloox", jb = std::string(argv[7]) + "@" + domain + "/gloox";
	User alice("alice", ja, argv[6], host, port, domain, mode);
	User bob("bob", jb, argv[8], host, port, domain, mode);
	time_t deadline = time(nullptr) + LIMIT;

	if (!alice.client().connect(false) || !bob.client().connect(false))
		fail("connect", &alice, &bob);
	pump(&alice, &bob, deadline, "login", [&] { return alice.connected && bob.connected; });

	alice.client().send(Presence(Presence::Available, JID(jb)));
	bob.client().send(Presence(Presence::Available, JID(ja)));
	pump(&alice, &bob, deadline, "presence",
	     [&] { return alice.got_presence == jb && bob.got_presence == ja; });

	alice.client().send(Message(Message::Chat, JID(jb), "hello from alice"));
	pump(&alice, &bob, deadline, "message to bob", [&] { return !bob.got_message.empty(); });
	bob.client().send(Message(Message::Chat, JID(ja), "hello from bob"));
	pump(&alice, &bob, deadline, "message to alice", [&] { return !alice.got_message.empty(); });

	bool ok = bob.got_message == JID(ja).bare() + ": hello from alice" &&
	          alice.got_message == JID(jb).bare() + ": hello from bob";
	if (!ok)
		fail("wrong messages", &alice, &bob);
	alice.client().disconnect();
	bob.client().disconnect();
	printf("{\"ok\":true,\"mode\":\"%s\"}\n", argv[4]);
	return 0;
}
