// The demo web chat (index.html): log in over BOSH or WebSocket through the
// connection manager on this page's own origin, see the contacts' presence,
// chat, log out. Everything shown comes from the network, so it is set as
// text (textContent, dataset), never parsed as HTML.
'use strict';

(function () {
    const Strophe = window.Strophe;
    const $msg = window.$msg, $pres = window.$pres, $iq = window.$iq;
    const NS_ROSTER = 'jabber:iq:roster';
    const DEMO = { alice: 'bob', bob: 'alice' };  // make run's two accounts
    const el = (id) => document.getElementById(id);
    const statusNames = Object.fromEntries(Object.entries(Strophe.Status).map(([k, v]) => [v, k]));

    let conn = null;
    let roster = new Map();    // bare JID -> { subscription, ask, name }
    let presence = new Map();  // bare JID -> Map(resource -> show)
    let requests = new Set();  // bare JIDs asking to see our presence

    function endpoint(transport) {
        if (transport === 'websocket')
            return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/xmpp-websocket';
        return new URL('/http-bind', location.href).href;
    }

    function setStatus(state, text) {
        const s = el('status');
        s.dataset.state = state;
        s.textContent = text;
    }

    function node(tag, cls, text) {
        const n = document.createElement(tag);
        if (cls) n.className = cls;
        if (text !== undefined) n.textContent = text;
        return n;
    }

    function button(label, action) {
        const b = node('button', '', label);
        b.type = 'button';
        b.dataset.action = label.toLowerCase();
        b.addEventListener('click', action);
        return b;
    }

    // ---- what is shown ----

    function note(text) {
        addLine('note', '', text);
    }

    function addLine(kind, who, text) {
        const line = node('div', 'msg ' + kind);
        if (who) line.appendChild(node('span', 'who', who));
        line.appendChild(node('span', 'text', text));
        const log = el('log');
        log.appendChild(line);
        log.scrollTop = log.scrollHeight;
    }

    function presenceOf(jid) {
        const res = presence.get(jid);
        if (!res || res.size === 0) return 'offline';
        const shows = [...res.values()];
        return shows.includes('online') || shows.includes('chat') ? 'online' : shows[0];
    }

    function drawRoster() {
        const ul = el('roster'), to = el('to');
        const chosen = to.value;
        ul.replaceChildren();
        to.replaceChildren();
        for (const [jid, item] of [...roster].sort((a, b) => a[0].localeCompare(b[0]))) {
            const li = node('li', '', item.name || jid);
            li.dataset.jid = jid;
            li.dataset.presence = presenceOf(jid);
            li.dataset.subscription = item.subscription;
            let detail = li.dataset.presence;
            if (item.ask === 'subscribe') detail += ', asked to see their presence';
            else if (item.subscription === 'none' || item.subscription === 'from') detail += ', presence not shared';
            li.appendChild(node('span', 'detail', detail));
            ul.appendChild(li);
            const opt = node('option', '', jid);
            opt.value = jid;
            to.appendChild(opt);
        }
        if (chosen && roster.has(chosen)) to.value = chosen;
        if (roster.size === 0) ul.appendChild(node('li', 'detail', 'none yet: add one below'));
    }

    function drawRequests() {
        const ul = el('requests');
        ul.replaceChildren();
        for (const jid of requests) {
            const li = node('li', '', jid);
            li.dataset.jid = jid;
            li.appendChild(node('span', 'detail', 'wants to see your presence'));
            li.appendChild(button('Allow', () => allow(jid)));
            li.appendChild(button('Deny', () => deny(jid)));
            ul.appendChild(li);
        }
        if (requests.size === 0) ul.appendChild(node('li', 'detail', 'none'));
    }

    // ---- XMPP ----

    function rosterItem(item) {
        const jid = item.getAttribute('jid');
        if (!jid) return;
        const bare = Strophe.getBareJidFromJid(jid);
        if (item.getAttribute('subscription') === 'remove') {
            roster.delete(bare);
            return;
        }
        roster.set(bare, {
            subscription: item.getAttribute('subscription') || 'none',
            ask: item.getAttribute('ask') || '',
            name: item.getAttribute('name') || '',
        });
    }

    function onRosterPush(iq) {
        // Only our own server may push roster changes (RFC 6121 2.1.6).
        const from = iq.getAttribute('from');
        if (from && from !== Strophe.getBareJidFromJid(conn.jid)) return true;
        for (const item of iq.getElementsByTagName('item')) rosterItem(item);
        conn.send($iq({ type: 'result', id: iq.getAttribute('id') }));
        drawRoster();
        return true;
    }

    function onPresence(p) {
        const from = p.getAttribute('from') || '';
        const bare = Strophe.getBareJidFromJid(from);
        const resource = Strophe.getResourceFromJid(from) || '';
        const type = p.getAttribute('type') || '';
        if (from === conn.jid && type === '') connected();
        if (bare === Strophe.getBareJidFromJid(conn.jid)) return true;  // ours, or our other resources
        if (type === 'subscribe') {
            const item = roster.get(bare);
            // We asked them first (or already see them): they are answering in kind.
            if (item && (item.ask === 'subscribe' || item.subscription === 'to')) allow(bare);
            else {
                requests.add(bare);
                drawRequests();
            }
        } else if (type === 'unavailable') {
            const res = presence.get(bare);
            if (res) res.delete(resource);
            drawRoster();
        } else if (type === '') {
            const show = p.getElementsByTagName('show')[0];
            if (!presence.has(bare)) presence.set(bare, new Map());
            presence.get(bare).set(resource, show ? Strophe.getText(show) : 'online');
            drawRoster();
        }
        return true;
    }

    function onMessage(m) {
        const body = m.getElementsByTagName('body')[0];
        if (body && m.getAttribute('type') !== 'error') {
            const from = Strophe.getBareJidFromJid(m.getAttribute('from') || '');
            // getText gives the text with XML's escapes kept: undo them, then show it as text
            addLine('in', from, Strophe.xmlunescape(Strophe.getText(body)));
            if (roster.has(from)) el('to').value = from;
        }
        return true;
    }

    function allow(jid) {
        conn.send($pres({ to: jid, type: 'subscribed' }));
        const item = roster.get(jid);
        if (!item || (item.subscription !== 'to' && item.subscription !== 'both' && item.ask !== 'subscribe'))
            conn.send($pres({ to: jid, type: 'subscribe' }));
        requests.delete(jid);
        drawRequests();
    }

    function deny(jid) {
        conn.send($pres({ to: jid, type: 'unsubscribed' }));
        requests.delete(jid);
        drawRequests();
    }

    function addContact(jid) {
        conn.sendIQ($iq({ type: 'set' }).c('query', { xmlns: NS_ROSTER }).c('item', { jid: jid }),
            () => conn.send($pres({ to: jid, type: 'subscribe' })),
            () => note('could not add ' + jid));
    }

    // Connected once the server has our presence (it sends it back to us):
    // before that, a message to our bare JID finds no resource to go to.
    function available() {
        conn.send($pres());
        const c = conn;
        setTimeout(() => { if (conn === c) connected(); }, 5000);  // a server that does not send it back
    }

    function connected() {
        if (!conn || el('status').dataset.state === 'connected') return;
        el('status').dataset.jid = conn.jid;
        setStatus('connected', 'Connected as ' + conn.jid + ' over ' +
                  (conn.service.startsWith('ws') ? 'WebSocket' : 'BOSH') + '.');
    }

    function online() {
        const me = Strophe.getBareJidFromJid(conn.jid);
        setStatus('connecting', 'Logged in as ' + conn.jid + '; fetching contacts …');
        el('login').hidden = true;
        el('main').hidden = false;
        // make run's demo: the other account, ready to add
        const other = DEMO[Strophe.getNodeFromJid(me)] && DEMO[Strophe.getNodeFromJid(me)] + '@' +
                      Strophe.getDomainFromJid(me);
        conn.addHandler(onRosterPush, NS_ROSTER, 'iq', 'set');
        conn.addHandler(onPresence, null, 'presence');
        conn.addHandler(onMessage, null, 'message');
        // The roster first: presence from contacts follows our initial presence.
        conn.sendIQ($iq({ type: 'get' }).c('query', { xmlns: NS_ROSTER }), (result) => {
            for (const item of result.getElementsByTagName('item')) rosterItem(item);
            if (other && !roster.has(other)) el('add-jid').value = other;
            drawRoster();
            available();
        }, () => {
            note('could not fetch the roster');
            available();
        });
        drawRoster();
        drawRequests();
    }

    function offline(text, state) {
        setStatus(state, text);
        delete el('status').dataset.jid;
        conn = null;
        roster = new Map();
        presence = new Map();
        requests = new Set();
        el('main').hidden = true;
        el('login').hidden = false;
        el('log').replaceChildren();
        el('login-button').disabled = false;
    }

    function login(ev) {
        ev.preventDefault();
        if (conn) return;
        const transport = document.querySelector('input[name=transport]:checked').value;
        const jid = el('jid').value.trim();
        el('login-button').disabled = true;
        setStatus('connecting', 'Connecting to ' + endpoint(transport) + ' …');
        conn = new Strophe.Connection(endpoint(transport));
        let failed = '';
        conn.connect(jid, el('password').value, (status, condition) => {
            const S = Strophe.Status;
            if (status === S.CONNECTED) {
                online();
            } else if (status === S.AUTHFAIL || status === S.CONNFAIL || status === S.ERROR) {
                failed = statusNames[status] + (condition ? ': ' + condition : '');
            } else if (status === S.DISCONNECTED) {
                if (failed) offline('Login failed (' + failed + ').', 'failed');
                else offline('Logged out.', 'disconnected');
            }
        });
    }

    document.addEventListener('DOMContentLoaded', () => {
        el('login').addEventListener('submit', login);
        el('logout').addEventListener('click', () => {
            if (conn) {
                setStatus('disconnecting', 'Logging out …');
                conn.send($pres({ type: 'unavailable' }));
                conn.disconnect('logout');
            }
        });
        el('add').addEventListener('submit', (ev) => {
            ev.preventDefault();
            const jid = el('add-jid').value.trim();
            if (conn && jid) addContact(jid);
            el('add-jid').value = '';
        });
        el('send').addEventListener('submit', (ev) => {
            ev.preventDefault();
            const to = el('to').value, text = el('body').value;
            if (!conn || !to || !text) return;
            conn.send($msg({ to: to, type: 'chat' }).c('body').t(text));
            addLine('out', 'me → ' + to, text);
            el('body').value = '';
        });
    });
})();
