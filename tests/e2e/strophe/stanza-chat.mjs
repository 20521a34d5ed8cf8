// StanzaJS (npm `stanza`, its Node build: the `ws` package) over XMPP over
// WebSocket only (RFC 7395; BOSH turned off): two users log in, send initial
// presence, user1 sends a chat message to user2's full JID, user2 answers to
// user1's full JID, then both log out.
//
// usage: node stanza-chat.mjs WS_URL DOMAIN USER1 PASS1 USER2 PASS2
//
// Prints one JSON line on stdout saying what happened; exits 0 only if all of
// it happened, 1 otherwise (with the reason and every WebSocket message both
// clients sent and got on stderr). Hard timeout: 30 s. STANZA_DEBUG=1 also
// logs the messages as they go.
import { randomUUID } from 'node:crypto';
import * as XMPP from 'stanza';

const [url, domain, user1, pass1, user2, pass2] = process.argv.slice(2);
if (!pass2) {
    process.stderr.write('usage: node stanza-chat.mjs WS_URL DOMAIN USER1 PASS1 USER2 PASS2\n');
    process.exit(2);
}

const DEBUG = !!process.env.STANZA_DEBUG;
const started = Date.now();
const ms = () => Date.now() - started;
const trace = [];
const errors = [];
let clients = [];

function report(ok, error) {
    const out = { ok, url, domain, ms: ms(), errors };
    if (error) out.error = error;
    for (const c of clients) out[c.name] = c.summary();
    return JSON.stringify(out) + '\n';
}

function fail(msg) {
    process.stderr.write(`FAIL: ${msg}\n`);
    if (!DEBUG) {
        process.stderr.write('--- WebSocket messages (ms who direction data) ---\n');
        for (const [t, who, dir, data] of trace) process.stderr.write(`${t} ${who} ${dir} ${data}\n`);
    }
    process.stdout.write(report(false, msg));
    process.exit(1);
}

// StanzaJS reports a WebSocket error with console.error: on loopback against a
// correct server there is none, and the run fails with it.
console.error = (...a) => errors.push(a.map((x) => (x && x.message) || String(x)).join(' '));

const timer = setTimeout(() => fail('timed out after 30 s'), 30000);
process.on('uncaughtException', (e) => fail('uncaught exception: ' + (e && e.stack ? e.stack : e)));
process.on('unhandledRejection', (e) => fail('unhandled rejection: ' + (e && e.stack ? e.stack : e)));

/** One StanzaJS client and what it saw. */
class Client {
    constructor(name, jid, password) {
        this.name = name;
        this.bare = jid;
        this.events = [];
        this.received = []; // {from, type, body}
        this.closeSent = false;
        this.closeReceived = false; // the server's <close/> (RFC 7395 §3.6)
        this.transport = null;
        this.client = XMPP.createClient({
            jid,
            password,
            server: domain,
            // WebSocket only: no BOSH, no XEP-0156 look-up of the endpoint.
            transports: { websocket: url, bosh: false },
            resource: 'stanza-' + name,
        });
        const c = this.client;
        c.on('raw', (dir, data) => {
            trace.push([ms(), name, dir, data]);
            if (DEBUG) process.stderr.write(`${ms()} ${name} ${dir} ${data}\n`);
            if (/^<close\b[^>]*urn:ietf:params:xml:ns:xmpp-framing/.test(data)) {
                if (dir === 'outgoing') this.closeSent = true;
                else this.closeReceived = true;
            }
        });
        for (const ev of ['connected', 'session:started', 'disconnected', 'auth:failed', 'stream:error']) {
            c.on(ev, (arg) => {
                this.events.push(ev);
                if (ev === 'auth:failed') fail(`${name}: authentication failed`);
                if (ev === 'stream:error') fail(`${name}: stream error ${JSON.stringify(arg)}`);
                if (ev === 'disconnected' && !this.leaving) fail(`${name}: disconnected before logout`);
            });
        }
        c.on('message', (m) => {
            if (m.type === 'chat' && m.body) this.received.push({ from: m.from, type: m.type, body: m.body });
        });
    }

    login() {
        return new Promise((resolve) => {
            this.client.once('session:started', () => {
                this.transport = this.client.transport?.constructor?.name ?? null;
                resolve();
            });
            this.client.connect();
        });
    }

    message(text) {
        const seen = this.received.find((r) => r.body === text);
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve) => {
            const on = (m) => {
                if (m.body !== text) return;
                this.client.off('message', on);
                resolve(this.received.find((r) => r.body === text));
            };
            this.client.on('message', on);
        });
    }

    logout() {
        this.leaving = true;
        return new Promise((resolve) => {
            this.client.once('disconnected', resolve);
            this.client.disconnect();
        });
    }

    summary() {
        return {
            jid: this.client.jid || null,
            transport: this.transport,
            events: this.events,
            received: this.received,
            close_sent: this.closeSent,
            close_received: this.closeReceived,
        };
    }
}

const a = new Client('user1', user1, pass1);
const b = new Client('user2', user2, pass2);
clients = [a, b];
const token = randomUUID();
const text1 = `hello from stanza ${token}`;
const text2 = `reply to ${token}`;

async function main() {
    await Promise.all([a.login(), b.login()]);
    for (const c of [a, b]) {
        const jid = c.client.jid;
        if (!jid.startsWith(c.bare + '/') || jid.length <= c.bare.length + 1) fail(`${c.name}: bound ${jid}, not a full JID of ${c.bare}`);
        if (c.transport !== 'WSConnection') fail(`${c.name}: transport ${c.transport}, not WebSocket`);
        c.client.sendPresence();
    }
    const got1 = b.message(text1);
    a.client.sendMessage({ to: b.client.jid, type: 'chat', body: text1 });
    const m1 = await got1;
    if (m1.from !== a.client.jid) fail(`user2 got the message from ${m1.from}, not ${a.client.jid}`);
    const got2 = a.message(text2);
    b.client.sendMessage({ to: a.client.jid, type: 'chat', body: text2 });
    const m2 = await got2;
    if (m2.from !== b.client.jid) fail(`user1 got the answer from ${m2.from}, not ${b.client.jid}`);

    await Promise.all([a.logout(), b.logout()]);
    for (const c of [a, b]) {
        if (!c.closeSent) fail(`${c.name}: no <close/> was sent`);
        // StanzaJS waits a second for the server's <close/>, then drops the socket anyway.
        if (!c.closeReceived) fail(`${c.name}: the server did not answer <close/> with <close/>`);
    }
    if (b.received.length !== 1 || a.received.length !== 1) fail('a message came more than once or one too many');
    if (errors.length) fail('errors: ' + errors.join('; '));
    clearTimeout(timer);
    process.stdout.write(report(true));
    process.exit(0);
}

main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
