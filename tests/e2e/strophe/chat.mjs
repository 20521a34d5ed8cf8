// A real web XMPP client library, Strophe.js, over our BOSH endpoint:
// two users log in (plain http on loopback; Strophe picks the strongest SASL
// mechanism offered, SCRAM-SHA-1 with Prosody, which also offers PLAIN), send initial
// presence, user1 sends a chat message to user2's full JID, user2 replies to
// user1's full JID, then both log out.
//
// usage: node chat.mjs URL DOMAIN USER1 PASS1 USER2 PASS2
//
// Prints one JSON line on stdout saying what happened. Exits 0 only if all of
// it happened, 1 otherwise (with the reason and the raw BOSH bodies of both
// connections on stderr). Hard timeout: 30 s. STROPHE_DEBUG=1 also logs
// Strophe's debug output and every BOSH body as it goes, on stderr.
// The Node setup for Strophe (polyfills, result, timeout, BOSH body capture)
// is in harness.mjs.
import { randomUUID } from 'node:crypto';
import { Client, S, fail, succeed, setReport, $msg, $pres, Strophe } from './harness.mjs';

const [url, domain, user1, pass1, user2, pass2] = process.argv.slice(2);
if (!pass2) {
    process.stderr.write('usage: node chat.mjs URL DOMAIN USER1 PASS1 USER2 PASS2\n');
    process.exit(2);
}

/** A client that logs in with a password and records the SASL mechanism it used. */
class ChatClient extends Client {
    constructor(name, jid, pass) {
        super(name, url);
        this.label = `${name} (${jid})`;
        this.bareJid = jid;
        this.pass = pass;
        const rawOutput = this.conn.rawOutput;
        this.conn.rawOutput = (data) => {
            const mech = /<auth [^>]*\bmechanism=['"]([^'"]+)['"]/.exec(data);
            if (mech) this.mechanism = mech[1];
            rawOutput(data);
        };
    }

    connect() {
        this.conn.connect(this.bareJid, this.pass, this.callback);
        return this.until(S.CONNECTED);
    }

    summary() {
        const s = super.summary();
        return {
            jid: s.jid,
            sid: s.sid,
            sasl: this.mechanism ?? null,
            statuses: s.statuses,
            received: s.received,
            terminate_answered: s.terminate_answered,
            disconnect_timed_out: s.disconnect_timed_out,
        };
    }
}

const a = new ChatClient('user1', user1, pass1);
const b = new ChatClient('user2', user2, pass2);
const token = randomUUID();
const text1 = `hello from strophe ${token}`;
const text2 = `reply to ${token}`;

setReport(() => ({ url, domain, user1: a.summary(), user2: b.summary(), sent: [text1, text2] }));

function isFullJid(jid, bare) {
    return typeof jid === 'string' && jid.startsWith(bare + '/') && jid.length > bare.length + 1;
}

async function main() {
    await Promise.all([a.connect(), b.connect()]);
    for (const c of [a, b]) {
        if (!isFullJid(c.conn.jid, c.bareJid)) fail(`${c.name}: bound JID ${c.conn.jid} is not a full JID of ${c.bareJid}`);
        if (Strophe.getDomainFromJid(c.conn.jid) !== domain) fail(`${c.name}: bound JID ${c.conn.jid} not in domain ${domain}`);
        c.conn.send($pres());
    }

    // user2 answers the first message to user1's full JID; user1 waits for it.
    const gotMessage = new Promise((resolve) => {
        b.onMessage = (m) => {
            b.onMessage = null;
            b.conn.send($msg({ to: a.conn.jid, type: 'chat' }).c('body').t(text2));
            resolve();
        };
    });
    const gotReply = new Promise((resolve) => {
        a.onMessage = () => {
            a.onMessage = null;
            resolve();
        };
    });
    a.conn.send($msg({ to: b.conn.jid, type: 'chat' }).c('body').t(text1));
    await gotMessage;
    await gotReply;

    await Promise.all([a.disconnect(), b.disconnect()]);

    // Check what happened.
    const r1 = b.received[0];
    const r2 = a.received[0];
    if (b.received.length !== 1 || r1.body !== text1 || r1.from !== a.conn.jid) {
        fail(`user2 expected one message ${JSON.stringify(text1)} from ${a.conn.jid}, got ${JSON.stringify(b.received)}`);
    }
    if (a.received.length !== 1 || r2.body !== text2 || r2.from !== b.conn.jid) {
        fail(`user1 expected one message ${JSON.stringify(text2)} from ${b.conn.jid}, got ${JSON.stringify(a.received)}`);
    }
    for (const c of [a, b]) c.checkClosed([S.CONNECTING, S.CONNECTED, S.DISCONNECTING, S.DISCONNECTED]);
    succeed(); // also fails on recorded errors and on Strophe's logged errors
}

main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
