// The page-reload flow of Strophe.js: with the `keepalive: true` option
// Strophe caches the session's jid, sid and next rid in sessionStorage
// ('strophe-bosh-session', rewritten each time it builds a request body once
// authenticated), and after a reload the new page calls
// connection.restore(JID, callback) instead of connect(), which attaches to
// the cached session with that rid.
//
// usage: node restore.mjs URL BAREJID PASSWORD
//
// First page: connect with keepalive (wait 10), wait for CONNECTED, send
// initial presence and wait for the server to reflect it, then wait for a
// quiet moment (only the blank poll held by the connection manager, sent
// >= 300 ms ago) and "reload": the page is closed WITHOUT disconnecting, as a
// browser tears a page down: its timers stop (the idle loop that sends the
// polls) and its in-flight XHRs are aborted (the held poll's HTTP connection
// is closed), then the Connection object is dropped; if it ever sent or
// received anything more, the run fails. sessionStorage (an in-memory
// polyfill, shared as a tab's is) survives the reload.
//
// Second page: a new Strophe.Connection with keepalive in the same process
// calls restore(BAREJID, callback), waits for ATTACHED, sends a chat message
// to its own full JID (the first page's), receives it (so the same session
// and bound resource go on), disconnect()s and waits for DISCONNECTED.
//
// Prints one JSON line on stdout: sid before and after (equal), the rids each
// page used, the cached session. Exits 0 only if all of it happened, 1
// otherwise (with the reason and the raw BOSH bodies on stderr). Hard
// timeout: 30 s. STROPHE_DEBUG=1 logs everything as it goes.
import { randomUUID } from 'node:crypto';
import { Client, S, fail, succeed, setReport, installSessionStorage, $msg, $pres, Strophe, ms } from './harness.mjs';

const WAIT = 10;
const KEY = 'strophe-bosh-session';

const [url, bareJid, password] = process.argv.slice(2);
if (!password) {
    process.stderr.write('usage: node restore.mjs URL BAREJID PASSWORD\n');
    process.exit(2);
}
if (Strophe.getResourceFromJid(bareJid)) fail(`${bareJid} is not a bare JID`);

const storage = installSessionStorage();
const sleep = (t) => new Promise((r) => setTimeout(r, t));
const cached = () => JSON.parse(storage.getItem(KEY) ?? 'null');

const page1 = new Client('page1', url, { keepalive: true });
let page2 = null;
const text = `restored ${randomUUID()}`;
const reload = {}; // what the reload saw

setReport(() => ({
    url,
    jid: page1.conn.jid,
    sid_before: page1.sid ?? null,
    sid_after: page2?.sid ?? null,
    cached_at_reload: reload.cached ?? null,
    held_rid_at_reload: reload.heldRid ?? null,
    reload_ms: reload.ms ?? null,
    restored: page2 ? !!page2.restoredFlag : null,
    storage_cleared_after_disconnect: reload.clearedAfter ?? null,
    page1: page1.summary(),
    page2: page2?.summary() ?? null,
    sent_text: text,
}));

/** Closes the first page as a browser does on reload, without a word to the server. */
function closePage(c) {
    const conn = c.conn;
    c.abandonedAt = ms();
    // timers of a closed page never fire again: the idle loop (polls, timed
    // handlers such as the disconnect timeout) ...
    clearTimeout(conn._idleTimeout);
    conn._idleTimeout = null;
    conn._onIdle = () => {};
    conn._proto._onIdle = () => {};
    // ... and its in-flight requests are aborted, their connections closed.
    conn._proto._abortAllRequests();
    conn._proto._throttledRequestHandler = () => {};
}

async function main() {
    // First page.
    const presence = new Promise((resolve) => {
        page1.conn.addHandler(
            (p) => {
                if (p.getAttribute('from') === page1.conn.jid && !p.getAttribute('type')) {
                    resolve();
                    return false;
                }
                return true;
            },
            null,
            'presence',
        );
    });
    page1.conn.connect(bareJid, password, page1.callback, WAIT, 1);
    await page1.until(S.CONNECTED);
    const jid = page1.conn.jid;
    if (!jid.startsWith(bareJid + '/') || jid.length <= bareJid.length + 1) fail(`bound JID ${jid} is not a full JID of ${bareJid}`);
    page1.conn.send($pres());
    await presence;

    // A quiet moment: nothing queued, just the poll the CM holds, well under way.
    const proto = page1.conn._proto;
    for (;;) {
        const q = proto._requests;
        if (q.length === 1 && page1.conn._data.length === 0 && q[0].xhr.readyState < 4 && q[0].age() >= 0.3) break;
        await sleep(20);
    }
    reload.heldRid = proto._requests[0].rid;
    reload.cached = cached();
    reload.ms = ms();
    closePage(page1);
    const lastRid1 = Math.max(...page1.sent.map((s) => s.rid));
    if (!reload.cached) fail(`nothing cached in sessionStorage under ${KEY} at the reload`);
    if (reload.cached.sid !== page1.sid || reload.cached.jid !== jid) {
        fail(`cached session ${JSON.stringify(reload.cached)} is not page1's (sid ${page1.sid}, jid ${jid})`);
    }
    if (reload.cached.rid !== lastRid1 + 1) fail(`cached rid ${reload.cached.rid}, expected page1's last rid + 1 = ${lastRid1 + 1}`);

    // The reloaded page: a new Connection restores the cached session.
    page2 = new Client('page2', url, { keepalive: true });
    page2.conn.restore(bareJid, page2.callback, WAIT, 1);
    await page2.until(S.ATTACHED);
    page2.restoredFlag = page2.conn.restored;
    if (!page2.conn.restored) fail('restore() did not mark the connection restored');
    if (page2.conn.jid !== jid) fail(`restored JID ${page2.conn.jid}, expected ${jid}`);
    if (page2.sid !== page1.sid) fail(`restored sid ${page2.sid}, expected ${page1.sid}`);

    const got = page2.message(text);
    page2.conn.send($msg({ to: page2.conn.jid, type: 'chat' }).c('body').t(text));
    const r = await got;
    if (r.from !== jid) fail(`the message came back from ${r.from}, not ${jid}`);

    await page2.disconnect();
    reload.clearedAfter = storage.getItem(KEY) === null;
    await sleep(200); // anything page1 would still do shows up here

    page2.checkClosed([S.ATTACHED, S.DISCONNECTING, S.DISCONNECTED]);
    const st1 = page1.statuses.map((s) => s.status).filter((s) => s !== S.AUTHENTICATING);
    if (JSON.stringify(st1) !== JSON.stringify([S.CONNECTING, S.CONNECTED])) {
        fail(`page1: statuses ${page1.summary().statuses.join(',')}, expected CONNECTING,CONNECTED (no disconnect)`);
    }
    if (page2.received.length !== 1) fail(`page2 expected one chat message, got ${JSON.stringify(page2.received)}`);
    if (page1.received.length !== 0) fail(`page1 got chat messages: ${JSON.stringify(page1.received)}`);
    if (!reload.clearedAfter) fail(`${KEY} still in sessionStorage after disconnect: ${storage.getItem(KEY)}`);

    // rids: each page's follow on without a gap, page2 from the cached one.
    for (const [c, from] of [
        [page1, page1.sent[0].rid],
        [page2, reload.cached.rid],
    ]) {
        const rids = [...new Set(c.sent.map((s) => s.rid))];
        const want = rids.map((_, i) => from + i);
        if (JSON.stringify(rids) !== JSON.stringify(want)) fail(`${c.name}: rids sent ${rids.join(',')}, expected ${want.join(',')}`);
    }

    succeed();
}

main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
