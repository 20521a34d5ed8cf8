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
//
// Strophe's Node build (strophe.js >= 5) brings DOMParser, XMLSerializer and
// document from @xmldom/xmldom; Node has no XMLHttpRequest, which Strophe's
// BOSH transport uses, so xmlhttprequest-ssl provides it, parsing responses
// into responseXML with that same DOMParser as a browser would (Strophe reads
// the response from responseXML only: with responseText alone it sees nothing).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Strophe, $msg, $pres } from 'strophe.js';
import BaseXHR from 'xmlhttprequest-ssl';

const TIMEOUT_MS = 30000;
const DEBUG = !!process.env.STROPHE_DEBUG;

const [url, domain, user1, pass1, user2, pass2] = process.argv.slice(2);
if (!pass2) {
    process.stderr.write('usage: node chat.mjs URL DOMAIN USER1 PASS1 USER2 PASS2\n');
    process.exit(2);
}

// Strophe logs through console.*; keep stdout for our one JSON line.
// Strophe's errors are logged on stderr and also make the run fail: on
// loopback against a correct connection manager there should be none.
const strophe_errors = [];
console.debug = console.info = console.log = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n');
console.error = (...a) => {
    strophe_errors.push(a.join(' '));
    process.stderr.write('strophe error: ' + a.join(' ') + '\n');
};
Strophe.setLogLevel(DEBUG ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

// One keep-alive agent, as a browser reuses its connections to the endpoint.
const agent = new http.Agent({ keepAlive: true });
globalThis.XMLHttpRequest = class XMLHttpRequest extends BaseXHR {
    constructor() {
        super({
            agent,
            xmlParser: (text) => (text ? new DOMParser().parseFromString(text, 'text/xml') : null),
        });
    }
};

const S = Strophe.Status;
const statusName = Object.fromEntries(Object.entries(S).map(([k, v]) => [v, k]));

const started = Date.now();
const ms = () => Date.now() - started;
const trace = []; // [ms, who, 'sent'|'recv', body]
const errors = [];

function fail(msg) {
    process.stderr.write(`FAIL: ${msg}\n`);
    if (!DEBUG) {
        process.stderr.write('--- BOSH bodies (ms who direction body) ---\n');
        for (const [t, who, dir, body] of trace) process.stderr.write(`${t} ${who} ${dir} ${body}\n`);
    }
    if (errors.length) process.stderr.write('--- errors ---\n' + errors.join('\n') + '\n');
    let r = {};
    try {
        r = report();
    } catch {
        // failed before the clients existed
    }
    process.stdout.write(JSON.stringify({ ok: false, error: msg, ...r }) + '\n');
    process.exit(1);
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);

process.on('uncaughtException', (e) => fail('uncaught exception: ' + (e && e.stack ? e.stack : e)));
process.on('unhandledRejection', (e) => fail('unhandled rejection: ' + (e && e.stack ? e.stack : e)));

class Client {
    constructor(name, jid, pass) {
        this.name = name;
        this.bareJid = jid;
        this.pass = pass;
        this.statuses = [];
        this.received = []; // {from, type, body}
        this.waiters = new Map(); // status -> [resolve]
        this.terminateSentAt = null;
        this.bodiesAfterTerminate = 0;
        this.disconnectTimedOut = false;
        const conn = (this.conn = new Strophe.Connection(url));
        conn.rawOutput = (data) => {
            const mech = /<auth [^>]*\bmechanism=['"]([^'"]+)['"]/.exec(data);
            if (mech) this.mechanism = mech[1];
            if (/<body[^>]*\btype=['"]terminate['"]/.test(data)) this.terminateSentAt = ms();
            this.log('sent', data);
        };
        conn.rawInput = (data) => {
            if (this.terminateSentAt !== null) this.bodiesAfterTerminate++;
            this.log('recv', data);
        };
        // Strophe falls back to this when the server did not answer the
        // terminate request in time: record it, it must not happen here.
        const onTimeout = conn._onDisconnectTimeout.bind(conn);
        conn._onDisconnectTimeout = () => {
            this.disconnectTimedOut = true;
            errors.push(`${this.name}: no answer to the terminate request, Strophe timed out`);
            return onTimeout();
        };
        conn.addHandler(
            (m) => {
                const body = m.getElementsByTagName('body')[0];
                this.received.push({
                    from: m.getAttribute('from'),
                    type: m.getAttribute('type'),
                    body: body ? Strophe.getText(body) : null,
                });
                this.onMessage?.(m);
                return true; // keep the handler
            },
            null,
            'message',
            'chat',
        );
    }

    log(dir, data) {
        trace.push([ms(), this.name, dir, data]);
        if (DEBUG) process.stderr.write(`${ms()} ${this.name} ${dir} ${data}\n`);
    }

    until(status) {
        if (this.statuses.some((s) => s.status === status)) return Promise.resolve();
        return new Promise((resolve) => {
            if (!this.waiters.has(status)) this.waiters.set(status, []);
            this.waiters.get(status).push(resolve);
        });
    }

    connect() {
        this.conn.connect(this.bareJid, this.pass, (status, condition) => {
            this.statuses.push({ status, name: statusName[status] ?? String(status), condition: condition ?? null, ms: ms() });
            if (DEBUG) process.stderr.write(`${ms()} ${this.name} status ${statusName[status]} ${condition ?? ''}\n`);
            const bad = [S.ERROR, S.CONNFAIL, S.AUTHFAIL, S.CONNTIMEOUT, S.ATTACHFAIL];
            if (bad.includes(status)) {
                fail(`${this.name} (${this.bareJid}): status ${statusName[status]}` + (condition ? ` (${condition})` : ''));
            }
            if (status === S.DISCONNECTED && !this.expectDisconnect) {
                fail(`${this.name} (${this.bareJid}): DISCONNECTED before disconnect() was called` + (condition ? ` (${condition})` : ''));
            }
            if (status === S.CONNECTED) this.sid = this.conn._proto.sid ?? null; // BOSH sid, for the caller
            for (const resolve of this.waiters.get(status) ?? []) resolve();
            this.waiters.delete(status);
        });
        return this.until(S.CONNECTED);
    }

    async disconnect() {
        this.expectDisconnect = true;
        const done = this.until(S.DISCONNECTED);
        this.conn.disconnect();
        await done;
    }

    summary() {
        return {
            jid: this.conn.jid,
            sid: this.sid ?? null,
            sasl: this.mechanism ?? null,
            statuses: this.statuses.map((s) => s.name + (s.condition ? `(${s.condition})` : '')),
            received: this.received,
            terminate_answered: this.bodiesAfterTerminate > 0,
            disconnect_timed_out: this.disconnectTimedOut,
        };
    }
}

const a = new Client('user1', user1, pass1);
const b = new Client('user2', user2, pass2);
const token = randomUUID();
const text1 = `hello from strophe ${token}`;
const text2 = `reply to ${token}`;

function report() {
    return { url, domain, user1: a.summary(), user2: b.summary(), sent: [text1, text2], strophe_errors, ms: ms() };
}

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
    for (const c of [a, b]) {
        // Strophe reports AUTHENTICATING only for legacy (non-SASL) auth.
        const names = c.statuses.map((s) => s.status).filter((s) => s !== S.AUTHENTICATING);
        const want = [S.CONNECTING, S.CONNECTED, S.DISCONNECTING, S.DISCONNECTED];
        if (JSON.stringify(names) !== JSON.stringify(want)) {
            fail(`${c.name}: statuses ${c.summary().statuses.join(',')}, expected ` + want.map((s) => statusName[s]).join(','));
        }
        if (c.terminateSentAt === null) fail(`${c.name}: no terminate body was sent`);
        if (!c.bodiesAfterTerminate) fail(`${c.name}: the terminate request got no answer`);
        if (c.disconnectTimedOut) fail(`${c.name}: Strophe's disconnect timed out waiting for the server`);
    }
    if (errors.length) fail('errors: ' + errors.join('; '));
    if (strophe_errors.length) fail('Strophe logged errors: ' + strophe_errors.join('; '));

    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ ok: true, ...report() }) + '\n');
    agent.destroy();
    process.exit(0);
}

main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
