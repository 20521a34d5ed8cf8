// Pre-bind then attach, as web apps do it: a server-side program has already
// created and authenticated a BOSH session (sid SID, resource bound, full JID
// JID) and the page's Strophe.js takes it over with
// connection.attach(JID, SID, RID, callback, wait, hold).
//
// usage: node attach.mjs URL JID SID RID [WAIT]
//
//   RID  the next rid the page must use, i.e. the pre-binder's last rid + 1.
//        Strophe 5's attach() takes exactly that: its `rid` is "the current RID
//        of the BOSH session. This RID will be used by the next request"
//        (Bosh._attach sets this.rid = rid and _buildBody sends this.rid++), so
//        it is passed on unchanged, and the script checks that the first body
//        Strophe sends carries it.
//   WAIT the session's `wait` (default 10, what tests/e2e/bosh.py asks for):
//        given to attach() so Strophe's own request timeout (1.1 x wait) fits
//        the session; it does not change the session's wait on the server.
//
// Then: wait for Status.ATTACHED; measure how long the first request Strophe
// sends (its blank poll, ~100 ms after attach) takes to be answered, from
// the rawOutput hook to the rawInput hook, sending nothing else meanwhile
// (`first_response_ms`: the connection manager should answer the first
// request after an attach at once; one that holds it like any poll shows as
// ~WAIT*1000 ms. This script only reports it; the caller judges it); send
// initial presence; send a chat <message/> with a unique body to its own full
// JID and wait until it comes back; disconnect() and wait for DISCONNECTED.
// Passing the pre-binder's last rid instead (off by one) makes the first
// request a retransmission, which the connection manager answers at once by
// replaying the bind result: the script detects that and fails, since such a
// first_response_ms would look fine and mean nothing.
//
// Prints one JSON line on stdout saying what happened. Exits 0 only if all of
// it happened, 1 otherwise (with the reason and the raw BOSH bodies on
// stderr). Hard timeout: 30 s. STROPHE_DEBUG=1 logs everything as it goes.
import { randomUUID } from 'node:crypto';
import { Client, S, fail, succeed, setReport, $msg, $pres, Strophe } from './harness.mjs';

const [url, jid, sid, ridArg, waitArg] = process.argv.slice(2);
if (!ridArg) {
    process.stderr.write('usage: node attach.mjs URL JID SID RID [WAIT]\n');
    process.exit(2);
}
const rid = Number(ridArg);
const wait = waitArg ? Number(waitArg) : 10;
if (!Number.isSafeInteger(rid) || rid <= 0) fail(`RID ${JSON.stringify(ridArg)} is not a positive integer`);
if (!Number.isSafeInteger(wait) || wait <= 0) fail(`WAIT ${JSON.stringify(waitArg)} is not a positive integer`);
if (!Strophe.getResourceFromJid(jid)) fail(`JID ${jid} is not a full JID`);

const page = new Client('page', url);
const text = `attached ${randomUUID()}`;
const first = {}; // what the first request after attach saw

setReport(() => ({
    url,
    jid_given: jid,
    sid_given: sid,
    rid_given: rid,
    rid_semantics: 'next rid to use (passed to attach() unchanged)',
    wait,
    first_rid: first.rid ?? null,
    first_response_ms: first.response_ms ?? null,
    first_request_sends: first.sends ?? null,
    first_response_empty: first.empty ?? null,
    first_response_body: first.body ?? null,
    ...page.summary(),
    sent_text: text,
}));

async function main() {
    // The Connection's idle loop (which sends the blank poll of an attached
    // session) runs once 100 ms after construction and keeps going only if
    // connected by then: attach at once, as pages do.
    page.conn.attach(jid, sid, rid, page.callback, wait, 1);
    await page.until(S.ATTACHED);
    if (page.conn.jid !== jid) fail(`after attach conn.jid is ${page.conn.jid}, not ${jid}`);
    if (page.conn._proto.sid !== sid) fail(`after attach the BOSH sid is ${page.conn._proto.sid}, not ${sid}`);

    // The first request, answered before anything else is sent.
    const out = await page.nth('sent', 1);
    const inp = await page.nth('recv', 1);
    first.rid = out.rid;
    first.response_ms = inp.ms - out.ms;
    first.sends = page.sent.filter((s) => s.rid === out.rid).length; // >1: Strophe gave up and resent it
    first.empty = !/<body\b[^>]*>[\s\S]*<[a-zA-Z]/.test(inp.data); // no payload: the CM just released it
    first.body = inp.data.length > 600 ? inp.data.slice(0, 600) + '...' : inp.data;
    if (out.rid !== rid) fail(`the first body Strophe sent carries rid ${out.rid}, not the RID given (${rid})`);
    // The page has sent no <iq/> yet: an iq result in the answer is the
    // pre-binder's (its bind), replayed because RID was the pre-binder's last
    // rid, not the next one; its "at once" answer measures nothing.
    if (/<iq\b[^>]*\btype=['"]result['"]/.test(inp.data)) {
        fail('the first request was answered with an <iq type="result"/> the page never asked for: the ' +
            "pre-binder's last response replayed, so RID is its last rid, not the next one (last + 1)");
    }

    page.conn.send($pres());
    const got = page.message(text);
    page.conn.send($msg({ to: page.conn.jid, type: 'chat' }).c('body').t(text));
    const r = await got;
    if (r.from !== jid) fail(`the message came back from ${r.from}, not ${jid}`);

    await page.disconnect();
    page.checkClosed([S.ATTACHED, S.DISCONNECTING, S.DISCONNECTED]);
    if (page.received.length !== 1) fail(`expected one chat message, got ${JSON.stringify(page.received)}`);

    // The rids the page used follow on from RID without a gap.
    const rids = [...new Set(page.sent.map((s) => s.rid))];
    const want = rids.map((_, i) => rid + i);
    if (JSON.stringify(rids) !== JSON.stringify(want)) fail(`rids sent ${rids.join(',')}, expected ${want.join(',')}`);

    succeed();
}

main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
