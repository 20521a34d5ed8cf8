# xmpp4r (Debian's ruby-xmpp4r) as a BOSH test client: two users log in
# with Jabber::HTTPBinding::Client, send each other directed presence, then
# a message each way.
#
# usage: ruby chat.rb URL DOMAIN USER1 PASS1 USER2 PASS2
# Prints {"ok":true} and exits 0 once both messages arrived; exits 1 with a
# reason otherwise, at the latest after LIMIT seconds. XMPP4R_DEBUG=1 turns
# on xmpp4r's own log (which also changes its timing: see below).
require 'timeout'
require 'xmpp4r'
require 'xmpp4r/httpbinding'

LIMIT = 45

url, domain, user1, pass1, user2, pass2 = ARGV
abort "usage: chat.rb URL DOMAIN USER1 PASS1 USER2 PASS2" unless pass2
Jabber.debug = true if ENV['XMPP4R_DEBUG']

# xmpp4r 0.5.6's HTTPBinding::Client#send_data calls Jabber.errorlog, which
# xmpp4r does not define, when a poll is due while one request is already
# open within 'polling' seconds of the last: the branch its authors wrote
# "can't happen" for. Its 'elsif' there has a comment where its condition
# should be, so the next line (Jabber.debuglog, nil unless debugging) became
# the condition. Defining errorlog makes that branch do what it meant to:
# skip the extra poll (one request is open, so nothing is lost). Set
# XMPP4R_UNPATCHED=1 to see the library as shipped.
unless ENV['XMPP4R_UNPATCHED'] || Jabber.respond_to?(:errorlog)
  def Jabber.errorlog(string)
    Jabber.warnlog(string)
  end
end

def client(url, jid, password)
  c = Jabber::HTTPBinding::Client.new(Jabber::JID.new(jid))
  c.http_wait = 5 # a stanza xmpp4r buffers waits for an open request's answer
  c.connect(url)
  c.auth(password)
  c
end

done = Queue.new
ok = false
got = { presence: [], message: [] }
begin
  Timeout.timeout(LIMIT) do
    a_jid = "#{user1}@#{domain}/xmpp4r"
    b_jid = "#{user2}@#{domain}/xmpp4r"
    lock = Mutex.new
    clients = {}
    [[user1, a_jid, pass1], [user2, b_jid, pass2]].each do |name, jid, pass|
      c = client(url, jid, pass)
      c.add_presence_callback do |p|
        lock.synchronize { got[:presence] << "#{name}<-#{p.from}" } if p.type.nil?
        done << :presence
      end
      c.add_message_callback do |m|
        next unless m.body
        lock.synchronize { got[:message] << "#{name}<-#{m.from.strip}:#{m.body}" }
        done << :message
      end
      clients[name] = c
    end
    a, b = clients[user1], clients[user2]
    # initial presence, as every client sends it (the server answers at once
    # with the user's own presence), then directed presence to the other
    a.send(Jabber::Presence.new)
    b.send(Jabber::Presence.new)
    # directed presence reaches a resource only once it is available: wait
    # for each one's own presence to come back first
    want_self = ["#{user1}<-#{a_jid}", "#{user2}<-#{b_jid}"]
    done.pop until lock.synchronize { (want_self - got[:presence]).empty? }
    a.send(Jabber::Presence.new.set_to(b_jid))
    b.send(Jabber::Presence.new.set_to(a_jid))
    want_p = ["#{user1}<-#{b_jid}", "#{user2}<-#{a_jid}"]
    done.pop until lock.synchronize { (want_p - got[:presence]).empty? }
    a.send(Jabber::Message.new(b_jid, "hello from #{user1}").set_type(:chat))
    done.pop until lock.synchronize { got[:message].include?("#{user2}<-#{user1}@#{domain}:hello from #{user1}") }
    b.send(Jabber::Message.new(a_jid, "hello from #{user2}").set_type(:chat))
    done.pop until lock.synchronize { got[:message].include?("#{user1}<-#{user2}@#{domain}:hello from #{user2}") }
    ok = true
    [a, b].map { |c| Thread.new { c.close rescue nil } }.each(&:join)
  end
rescue Exception => e # Timeout::Error is not a StandardError
  $stderr.puts "xmpp4r: #{e.class}: #{e.message}\n  #{(e.backtrace || [])[0, 8].join("\n  ")}\n" \
               "  received so far: #{got.inspect}"
end
if ok
  puts '{"ok":true}'
  $stdout.flush
  exit! 0 # xmpp4r's threads may still be polling
end
exit! 1
