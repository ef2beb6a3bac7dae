//! Chat servers sharing one room through a real Redis server (`chat_server --redis URL
//! --node-id NAME`): every message reaches every participant once, in each sender's order;
//! a killed node's participants leave everywhere; the room survives Redis going away and
//! coming back.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ws_mio::{Client, ClientConfig, Disconnect, Handler, Message, SendError, Session};
use ws_tests::redis::RedisServer;
use ws_tests::{build_examples, free_port, Peer};

/// Bound on every wait for an event (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(20);
/// The node timeout chat_server uses (ClusterConfig's default).
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// One `chat_server` process in the cluster.
struct Node {
    name: String,
    port: u16,
    process: Peer,
}

impl Node {
    /// Starts `chat_server --redis URL --node-id NAME` on a free port and waits until it has
    /// subscribed.
    fn start(redis: &RedisServer, name: &str) -> Node {
        let chat_server = build_examples("ws-facade", &["chat_server"]).join("chat_server");
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(&chat_server);
            command.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--redis",
                &redis.url(),
                "--node-id",
                name,
            ]);
            let mut process = Peer::spawn(&format!("chat_server {name}"), &mut command)
                .with_grace(Duration::ZERO);
            // Listening and subscribed, in either order (the subscription is made on a
            // thread of its own); a process that ends first could not take the port.
            let listening = format!("[chat] ws://127.0.0.1:{port}/chat");
            let connected = format!("[chat] cluster: {name} connected");
            let (mut is_listening, mut is_connected) = (false, false);
            while !(is_listening && is_connected) {
                let Some(line) = process.try_next_line(WAIT) else {
                    break;
                };
                is_listening |= line == listening;
                is_connected |= line.starts_with(&connected);
            }
            if !(is_listening && is_connected) {
                continue;
            }
            return Node {
                name: name.to_owned(),
                port,
                process,
            };
        }
        panic!("chat_server {name} did not start");
    }

    /// Waits for a line printed by the node.
    fn expect(&mut self, what: impl Fn(&str) -> bool) -> String {
        self.process.line_where(WAIT, what)
    }

    /// Waits until the node has printed each of `lines`, in any order.
    fn expect_all(&mut self, lines: &[String]) {
        let mut missing: Vec<&String> = lines.iter().collect();
        while !missing.is_empty() {
            let line = self
                .process
                .line_where(WAIT, |l| missing.iter().any(|m| *m == l));
            missing.retain(|m| **m != line);
        }
    }

    /// Waits until the node reports `count` participants in the room (on a join line).
    fn expect_online(&mut self, count: usize) {
        let suffix = format!("({count} online)");
        self.expect(|l| l.starts_with("[chat] join") && l.ends_with(&suffix));
    }

    /// The node never reported another node lost (what it read of its output so far).
    fn assert_expired_nobody(&self) {
        let seen = self.process.seen();
        assert!(
            !seen.iter().any(|l| l.contains("(node lost)")),
            "{} expired another node while it was the one cut off: {seen:?}",
            self.name
        );
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.process.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }
}

/// A participant: what it received, and whether its connection ended.
struct Participant {
    name: String,
    client: Client,
    received: Arc<Mutex<Vec<String>>>,
    closed: mpsc::Receiver<()>,
}

struct Collect {
    received: Arc<Mutex<Vec<String>>>,
    closed: mpsc::Sender<()>,
}

impl Handler for Collect {
    fn on_message(&mut self, _session: &Session, message: Message) {
        let text = String::from_utf8_lossy(message.as_bytes()).into_owned();
        self.received.lock().unwrap().push(text);
    }
    fn on_close(&mut self, _session: &Session, _disconnect: &Disconnect) {
        let _ = self.closed.send(());
    }
}

impl Participant {
    fn join(node: &Node, name: &str) -> Participant {
        let url = format!("ws://127.0.0.1:{}/chat?id={name}", node.port);
        let received = Arc::default();
        let (closed_tx, closed) = mpsc::channel();
        let handler = Collect {
            received: Arc::clone(&received),
            closed: closed_tx,
        };
        let client = Client::connect(&url, ClientConfig::default(), handler)
            .unwrap_or_else(|e| panic!("{name} cannot join {}: {e}", node.name));
        Participant {
            name: name.to_owned(),
            client,
            received,
            closed,
        }
    }

    /// Sends `text`, waiting (bounded) while the client's own output buffer is full.
    fn say(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.session().send_text(text.to_owned()) {
                Ok(()) => return,
                Err(SendError::BufferFull { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{} cannot send: {e}", self.name),
            }
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a received message satisfies `what`.
    fn expect(&self, what: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.received().iter().any(|m| what(m)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{} never received the message; got {:?}",
            self.name,
            self.received()
        );
    }

    /// Waits until the connection has ended.
    fn expect_closed(&self) {
        self.closed
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{}'s connection did not end", self.name));
    }
}

#[test]
fn three_nodes_deliver_every_message_to_every_participant_once_in_each_senders_order() {
    const PER_NODE: usize = 3;
    const MESSAGES: usize = 40;
    let redis = RedisServer::start();
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| Node::start(&redis, name))
        .collect();
    let mut participants = Vec::new();
    for node in &nodes {
        for i in 1..=PER_NODE {
            participants.push(Participant::join(node, &format!("{}{i}", node.name)));
        }
    }
    // Every node knows every participant: every node is subscribed and heard from the others.
    let total = nodes.len() * PER_NODE;
    for node in &mut nodes {
        node.expect_online(total);
    }

    for i in 0..MESSAGES {
        for participant in &participants {
            participant.say(&format!("m{i}"));
        }
    }

    let expected = total * MESSAGES;
    let deadline = Instant::now() + WAIT;
    while participants.iter().any(|p| p.received().len() < expected) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Anything sent twice would arrive close behind.
    std::thread::sleep(Duration::from_millis(300));
    for participant in &participants {
        let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for message in participant.received() {
            let (sender, text) = message
                .split_once(": ")
                .unwrap_or_else(|| panic!("{message:?} is not `sender: text`"));
            by_sender
                .entry(sender.to_owned())
                .or_default()
                .push(text.to_owned());
        }
        let in_order: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
        assert_eq!(
            by_sender.len(),
            total,
            "{} heard from {:?}",
            participant.name,
            by_sender.keys()
        );
        for (sender, texts) in &by_sender {
            assert_eq!(
                texts, &in_order,
                "{} got {sender}'s messages lost, twice or out of order",
                participant.name
            );
        }
    }
}

#[test]
fn a_killed_node_costs_only_its_own_participants_and_their_leave_reaches_every_node() {
    let redis = RedisServer::start();
    let mut a = Node::start(&redis, "a");
    let mut b = Node::start(&redis, "b");
    let mut c = Node::start(&redis, "c");
    let ann = Participant::join(&a, "ann");
    let bob = Participant::join(&b, "bob");
    let cid = Participant::join(&c, "cid");
    let cat = Participant::join(&c, "cat");
    for node in [&mut a, &mut b, &mut c] {
        node.expect_online(4);
    }

    // c's participants are heard everywhere while c runs.
    cid.say("from c");
    ann.expect(|m| m == "cid: from c");
    bob.expect(|m| m == "cid: from c");

    // A node that stops reading (stopped, not dead) does not hold up the others, even with
    // more for it than any socket buffer holds: Redis keeps it, and a and b go on.
    c.signal("-STOP");
    let filler = "x".repeat(4096);
    for i in 0..500 {
        ann.say(&format!("{i} {filler}"));
    }
    ann.say("while c sleeps");
    bob.expect(|m| m == "ann: while c sleeps");
    ann.expect(|m| m == "ann: while c sleeps");
    let from_ann = bob
        .received()
        .iter()
        .filter(|m| m.starts_with("ann: "))
        .count();
    assert_eq!(from_ann, 501, "bob got every message of ann, in one piece");

    c.signal("-KILL");
    cid.expect_closed();
    cat.expect_closed();
    for node in [&mut a, &mut b] {
        node.expect_all(&[
            "[chat] leave cid on c (node lost)".into(),
            "[chat] leave cat on c (node lost)".into(),
        ]);
        node.expect(|l| l == "[chat] cluster: node c down (node lost)");
    }

    // The others chat on, and count the room without c's participants.
    bob.say("still here");
    ann.expect(|m| m == "bob: still here");
    bob.expect(|m| m == "bob: still here");
    let _dan = Participant::join(&a, "dan");
    a.expect(|l| l == "[chat] join dan (3 online)");
    b.expect(|l| l == "[chat] join dan on a (3 online)");
}

#[test]
fn a_hung_redis_cuts_nodes_off_without_expiring_each_other_and_they_resume_after_it() {
    let redis = RedisServer::start();
    let mut a = Node::start(&redis, "a");
    let mut b = Node::start(&redis, "b");
    let ann = Participant::join(&a, "ann");
    let bob = Participant::join(&b, "bob");
    for node in [&mut a, &mut b] {
        node.expect_online(2);
    }
    // Stopped, not killed: connections stay open and nothing comes back, so only the
    // node's own silence detection can tell.
    redis.pause();
    for node in [&mut a, &mut b] {
        node.expect(|l| l.starts_with("[chat] cluster: nothing heard from the bus"));
    }
    ann.say("during");
    ann.expect(|m| m == "ann: during");
    std::thread::sleep(NODE_TIMEOUT);
    redis.resume();
    for node in [&mut a, &mut b] {
        let connected = format!("[chat] cluster: {} connected", node.name);
        node.expect(|l| l.starts_with(&connected));
    }
    bob.say("after");
    ann.expect(|m| m == "bob: after");
    for node in [&a, &b] {
        node.assert_expired_nobody();
    }
}

#[test]
fn nodes_keep_local_chat_while_redis_is_down_and_resume_when_it_is_back() {
    let mut redis = RedisServer::start();
    let mut a = Node::start(&redis, "a");
    let mut b = Node::start(&redis, "b");
    let ann = Participant::join(&a, "ann");
    let amy = Participant::join(&a, "amy");
    let bob = Participant::join(&b, "bob");
    for node in [&mut a, &mut b] {
        node.expect_online(3);
    }
    ann.say("before");
    bob.expect(|m| m == "ann: before");

    redis.kill();
    for node in [&mut a, &mut b] {
        node.expect(|l| l.starts_with("[chat] cluster: bus unreachable"));
    }
    ann.say("during");
    amy.expect(|m| m == "ann: during");
    ann.expect(|m| m == "ann: during");
    // Longer than the node timeout: presence of the other node is not expired meanwhile,
    // since it is this node that is cut off.
    std::thread::sleep(NODE_TIMEOUT + Duration::from_secs(1));

    let restarted = Instant::now();
    redis.restart();
    for node in [&mut a, &mut b] {
        let connected = format!("[chat] cluster: {} connected", node.name);
        node.expect(|l| l.starts_with(&connected));
    }
    let reconnected = restarted.elapsed();
    eprintln!("both nodes subscribed again {reconnected:?} after Redis was restarted");
    // The stated bound: the backoff's maximum (1 s) plus a connection (1 s at most).
    assert!(
        reconnected < Duration::from_secs(5),
        "reconnected after {reconnected:?}"
    );
    ann.say("after");
    bob.expect(|m| m == "ann: after");
    amy.say("amy after");
    bob.expect(|m| m == "amy: amy after");
    // What a published while cut off (its heartbeats, "during") is missing from its
    // numbering: b says so.
    b.expect(|l| l.starts_with("[chat] cluster: ") && l.ends_with(" messages from a lost"));
    // At most once: what was said while Redis was down reached a's participants only.
    assert!(!bob.received().iter().any(|m| m == "ann: during"));
    for node in [&a, &b] {
        node.assert_expired_nobody();
    }
}
