// Shared by chat.mjs, attach.mjs and restore.mjs: runs Strophe.js 5 in Node
// and gives each script the same shape of result: one JSON line on stdout,
// exit 0 only on full success, exit 1 with the reason and the raw BOSH bodies
// on stderr otherwise, and a hard timeout.
//
// Strophe's Node build brings DOMParser, XMLSerializer and document from
// @xmldom/xmldom; Node has no XMLHttpRequest, which Strophe's BOSH transport
// uses, so xmlhttprequest-ssl provides it, parsing responses into responseXML
// with that same DOMParser as a browser would (Strophe reads the response from
// responseXML only: with responseText alone it sees nothing). Node has no
// sessionStorage either, which Strophe's `keepalive` option and restore() use:
// installSessionStorage() puts a small in-memory one on globalThis.
//
// STROPHE_DEBUG=1 also logs Strophe's debug output and every BOSH body as it
// goes, on stderr.
import http from 'node:http';
import { Strophe, $msg, $pres } from 'strophe.js';
import BaseXHR from 'xmlhttprequest-ssl';

export { Strophe, $msg, $pres };

export const TIMEOUT_MS = 30000;
export const DEBUG = !!process.env.STROPHE_DEBUG;
export const S = Strophe.Status;
export const statusName = Object.fromEntries(Object.entries(S).map(([k, v]) => [v, k]));

// Strophe logs through console.*; keep stdout for our one JSON line.
// Strophe's errors are logged on stderr and also make the run fail: on
// loopback against a correct connection manager there should be none.
export const strophe_errors = [];
console.debug = console.info = console.log = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n');
console.error = (...a) => {
    strophe_errors.push(a.join(' '));
    process.stderr.write('strophe error: ' + a.join(' ') + '\n');
};
Strophe.setLogLevel(DEBUG ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

// One keep-alive agent, as a browser reuses its connections to the endpoint.
//
// It also hides the 'error' ("socket hang up") that Node emits on the
// ClientRequest of an XHR aborted while in flight (Strophe aborts requests
// when it times one out, and restore.mjs aborts the held poll when it
// "reloads" the page): xmlhttprequest-ssl 4.0.0 has already dropped that
// request in abort() and its error handler then throws (TypeError: reading
// 'reusedSocket' of null), an uncaught exception. A browser just forgets an
// aborted XHR, and so do we: the XHR is already done as far as Strophe knows.
class Agent extends http.Agent {
    addRequest(req, options) {
        const emit = req.emit;
        req.emit = function (event, ...args) {
            if (event === 'error' && this.aborted) return false;
            return emit.call(this, event, ...args);
        };
        return super.addRequest(req, options);
    }
}
export const agent = new Agent({ keepAlive: true });
globalThis.XMLHttpRequest = class XMLHttpRequest extends BaseXHR {
    constructor() {
        super({
            agent,
            xmlParser: (text) => (text ? new DOMParser().parseFromString(text, 'text/xml') : null),
        });
    }
};

/** A minimal in-memory Web Storage (what Strophe needs: get/set/removeItem). */
class MemoryStorage {
    #m = new Map();
    get length() {
        return this.#m.size;
    }
    key(i) {
        return [...this.#m.keys()][i] ?? null;
    }
    getItem(k) {
        return this.#m.has(String(k)) ? this.#m.get(String(k)) : null;
    }
    setItem(k, v) {
        this.#m.set(String(k), String(v));
    }
    removeItem(k) {
        this.#m.delete(String(k));
    }
    clear() {
        this.#m.clear();
    }
}

export function installSessionStorage() {
    if (typeof globalThis.sessionStorage === 'undefined') globalThis.sessionStorage = new MemoryStorage();
    return globalThis.sessionStorage;
}

const started = Date.now();
export const ms = () => Date.now() - started;
export const trace = []; // [ms, who, 'sent'|'recv', body]
export const errors = [];
let reportFn = () => ({});

/** What the JSON line carries besides ok/error (also on failure). */
export function setReport(fn) {
    reportFn = fn;
}

export function fail(msg) {
    process.stderr.write(`FAIL: ${msg}\n`);
    if (!DEBUG) {
        process.stderr.write('--- BOSH bodies (ms who direction body) ---\n');
        for (const [t, who, dir, body] of trace) process.stderr.write(`${t} ${who} ${dir} ${body}\n`);
    }
    if (errors.length) process.stderr.write('--- errors ---\n' + errors.join('\n') + '\n');
    let r = {};
    try {
        r = reportFn();
    } catch {
        // failed before the clients existed
    }
    process.stdout.write(JSON.stringify({ ok: false, error: msg, ...r, strophe_errors, ms: ms() }) + '\n');
    process.exit(1);
}

export function succeed() {
    clearTimeout(timer);
    if (errors.length) fail('errors: ' + errors.join('; '));
    if (strophe_errors.length) fail('Strophe logged errors: ' + strophe_errors.join('; '));
    process.stdout.write(JSON.stringify({ ok: true, ...reportFn(), strophe_errors, ms: ms() }) + '\n');
    agent.destroy();
    process.exit(0);
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);

process.on('uncaughtException', (e) => fail('uncaught exception: ' + (e && e.stack ? e.stack : e)));
process.on('unhandledRejection', (e) => fail('unhandled rejection: ' + (e && e.stack ? e.stack : e)));

const BAD = [S.ERROR, S.CONNFAIL, S.AUTHFAIL, S.CONNTIMEOUT, S.ATTACHFAIL];
const ridOf = (data) => {
    const m = /<body\b[^>]*\srid=['"](\d+)['"]/.exec(data);
    return m ? Number(m[1]) : null;
};

/**
 * One Strophe.Connection (one "page") and what it saw: every body it sent
 * (with its rid) and received, its statuses, the chat messages it got.
 */
export class Client {
    constructor(name, url, options = {}) {
        this.name = name;
        this.label = name; // who the status failures name; a script may make it more specific
        this.statuses = [];
        this.received = []; // {from, type, body}
        this.sent = []; // {ms, rid, type}
        this.recv = []; // {ms, data}
        this.waiters = new Map(); // status -> [resolve]
        this.ioWaiters = []; // {dir, n, resolve}
        this.terminateSentAt = null;
        this.bodiesAfterTerminate = 0;
        this.disconnectTimedOut = false;
        this.abandonedAt = null;
        this.websocket = /^wss?:/.test(url);
        const conn = (this.conn = new Strophe.Connection(url, options));
        conn.rawOutput = (data) => {
            const type = /<body[^>]*\btype=['"](\w+)['"]/.exec(data)?.[1] ?? null;
            // Over WebSocket (RFC 7395) the client's <close/> plays the terminate's part.
            if (type === 'terminate' || /^<close [^>]*urn:ietf:params:xml:ns:xmpp-framing/.test(data))
                this.terminateSentAt = ms();
            if (this.abandonedAt !== null) errors.push(`${this.name}: sent a body after the page was closed: ${data}`);
            this.sent.push({ ms: ms(), rid: ridOf(data), type });
            this.log('sent', data);
            this.wake();
        };
        conn.rawInput = (data) => {
            if (this.terminateSentAt !== null) this.bodiesAfterTerminate++;
            if (this.abandonedAt !== null) errors.push(`${this.name}: received a body after the page was closed: ${data}`);
            this.recv.push({ ms: ms(), data });
            this.log('recv', data);
            this.wake();
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
        this.callback = (status, condition) => {
            this.statuses.push({ status, name: statusName[status] ?? String(status), condition: condition ?? null, ms: ms() });
            if (DEBUG) process.stderr.write(`${ms()} ${this.name} status ${statusName[status]} ${condition ?? ''}\n`);
            if (BAD.includes(status)) {
                fail(`${this.label}: status ${statusName[status]}` + (condition ? ` (${condition})` : ''));
            }
            if (status === S.DISCONNECTED && !this.expectDisconnect) {
                fail(`${this.label}: DISCONNECTED before disconnect() was called` + (condition ? ` (${condition})` : ''));
            }
            if (status === S.CONNECTED || status === S.ATTACHED) this.sid = this.conn._proto.sid ?? null;
            for (const resolve of this.waiters.get(status) ?? []) resolve();
            this.waiters.delete(status);
        };
    }

    log(dir, data) {
        trace.push([ms(), this.name, dir, data]);
        if (DEBUG) process.stderr.write(`${ms()} ${this.name} ${dir} ${data}\n`);
    }

    wake() {
        this.ioWaiters = this.ioWaiters.filter((w) => {
            if (this[w.dir].length < w.n) return true;
            w.resolve(this[w.dir][w.n - 1]);
            return false;
        });
    }

    /** Resolves with the n-th (1-based) body sent ('sent') or received ('recv'). */
    nth(dir, n) {
        if (this[dir].length >= n) return Promise.resolve(this[dir][n - 1]);
        return new Promise((resolve) => this.ioWaiters.push({ dir, n, resolve }));
    }

    until(status) {
        if (this.statuses.some((s) => s.status === status)) return Promise.resolve();
        return new Promise((resolve) => {
            if (!this.waiters.has(status)) this.waiters.set(status, []);
            this.waiters.get(status).push(resolve);
        });
    }

    /** Resolves with the first chat message (from the handler) body equal to text. */
    message(text) {
        const seen = this.received.find((r) => r.body === text);
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve) => {
            const prev = this.onMessage;
            this.onMessage = (m) => {
                prev?.(m);
                const r = this.received[this.received.length - 1];
                if (r.body === text) {
                    this.onMessage = prev;
                    resolve(r);
                }
            };
        });
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
            statuses: this.statuses.map((s) => s.name + (s.condition ? `(${s.condition})` : '')),
            rids: this.sent.map((s) => s.rid),
            received: this.received,
            terminate_answered: this.bodiesAfterTerminate > 0,
            disconnect_timed_out: this.disconnectTimedOut,
        };
    }

    /** The checks every client's end must pass after disconnect(). */
    checkClosed(wantStatuses) {
        // Strophe reports AUTHENTICATING only for legacy (non-SASL) auth.
        const names = this.statuses.map((s) => s.status).filter((s) => s !== S.AUTHENTICATING);
        if (JSON.stringify(names) !== JSON.stringify(wantStatuses)) {
            fail(`${this.name}: statuses ${this.summary().statuses.join(',')}, expected ` + wantStatuses.map((s) => statusName[s]).join(','));
        }
        if (this.terminateSentAt === null) fail(`${this.name}: no terminate body was sent`);
        // Strophe's WebSocket transport does not wait for the server's <close/>
        // (it disconnects on the next tick): the caller checks the server's side.
        if (!this.bodiesAfterTerminate && !this.websocket) fail(`${this.name}: the terminate request got no answer`);
        if (this.disconnectTimedOut) fail(`${this.name}: Strophe's disconnect timed out waiting for the server`);
    }
}
