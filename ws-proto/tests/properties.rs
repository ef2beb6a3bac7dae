//! Properties of the state machine, checked on generated inputs:
//!
//! * how the input is cut into reads never changes what happens (both roles);
//! * no input panics, in either role, before or after the handshake, and whatever is written
//!   after the handshake is well-formed frames;
//! * messages sent by one side arrive intact at the other, both directions, whatever the
//!   fragment size;
//! * outgoing frames are always well-formed and masked exactly when the sender is a client.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use ws_proto::CloseCode;
use ws_proto::{ClientRequest, CloseFrame, Config, Connection, Event, Role, State};

/// `cases` cases; failures are reported (with the minimal input) but not persisted, as an
/// integration test has no source directory proptest recognises.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

#[derive(Debug, Clone)]
enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    fn bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    fn opcode(&self) -> u8 {
        match self {
            Message::Text(_) => TEXT,
            Message::Binary(_) => BINARY,
        }
    }

    fn event(&self) -> Event {
        match self {
            Message::Text(t) => Event::Text(t.clone()),
            Message::Binary(b) => Event::Binary(b.clone()),
        }
    }
}

fn message(max_len: usize) -> impl Strategy<Value = Message> {
    prop_oneof![
        proptest::string::string_regex(&format!("(?s).{{0,{}}}", max_len / 4))
            .unwrap()
            .prop_map(Message::Text),
        vec(any::<u8>(), 0..max_len).prop_map(Message::Binary),
    ]
}

/// Something a peer sends: a message cut into fragments of `fragment` bytes with a ping after
/// its first fragment, or a lone ping or pong.
#[derive(Debug, Clone)]
enum Item {
    Message {
        message: Message,
        fragment: usize,
        ping: Option<Vec<u8>>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (message(300), 1usize..64, proptest::option::of(vec(any::<u8>(), 0..126)))
            .prop_map(|(message, fragment, ping)| Item::Message { message, fragment, ping }),
        1 => vec(any::<u8>(), 0..126).prop_map(Item::Ping),
        1 => vec(any::<u8>(), 0..126).prop_map(Item::Pong),
    ]
}

fn close_frame() -> impl Strategy<Value = Option<CloseFrame>> {
    let code = prop_oneof![
        Just(1000u16),
        Just(1001),
        Just(1003),
        Just(1011),
        3000u16..5000
    ];
    proptest::option::of(
        (code, "[a-zé ]{0,20}").prop_map(|(code, reason)| CloseFrame {
            code: CloseCode::new(code).expect("a sendable code"),
            reason,
        }),
    )
}

/// The frames of `items` followed by the close, and the events a receiver should report, and
/// the frames it should answer with.
fn script(items: &[Item], close: &Option<CloseFrame>) -> (Vec<Frame>, Vec<Event>, Vec<Frame>) {
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    let mut answers = Vec::new();
    for item in items {
        match item {
            Item::Message {
                message,
                fragment,
                ping,
            } => {
                let bytes = message.bytes();
                let chunks: Vec<&[u8]> = if bytes.is_empty() {
                    vec![&[]]
                } else {
                    bytes.chunks(*fragment).collect()
                };
                for (i, chunk) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    let opcode = if i == 0 { message.opcode() } else { CONT };
                    frames.push(Frame::new(opcode, chunk.to_vec()).fin(last));
                    if last {
                        expected.push(message.event());
                    }
                    // The ping goes after the first fragment: inside the message when it has
                    // several, right after it otherwise.
                    if let (0, Some(ping)) = (i, ping) {
                        frames.push(Frame::ping(ping.clone()));
                        expected.push(Event::Ping(ping.clone()));
                        answers.push(Frame::pong(ping.clone()));
                    }
                }
            }
            Item::Ping(p) => {
                frames.push(Frame::ping(p.clone()));
                expected.push(Event::Ping(p.clone()));
                answers.push(Frame::pong(p.clone()));
            }
            Item::Pong(p) => {
                frames.push(Frame::pong(p.clone()));
                expected.push(Event::Pong(p.clone()));
            }
        }
    }
    match close {
        Some(c) => {
            frames.push(Frame::close(c.code.as_u16(), &c.reason));
            expected.push(Event::Close(c.clone()));
            answers.push(Frame::close(c.code.as_u16(), ""));
        }
        None => {
            frames.push(Frame::close_empty());
            expected.push(Event::Close(CloseFrame {
                code: CloseCode::NO_STATUS,
                reason: String::new(),
            }));
            answers.push(Frame::close_empty());
        }
    }
    (frames, expected, answers)
}

/// Feeds `wire` cut at `cuts` (positions, any order, out of range ones clamped) and returns the
/// events and the frames written (masks forgotten).
fn feed(role: Role, wire: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<Frame>) {
    let mut conn = open(role, Config::default());
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.push(0);
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut got = Vec::new();
    for pair in cuts.windows(2) {
        conn.receive(&wire[pair[0]..pair[1]], t0());
        got.extend(events(&mut conn));
    }
    let answers = sent(&mut conn).into_iter().map(Frame::unmasked).collect();
    assert_eq!(conn.state(), State::Closed);
    (got, answers)
}

proptest! {
    #![proptest_config(cases(128))]

    /// Any split of a valid byte stream gives the same events, and the same answers, as feeding
    /// it whole: exactly the ones the stream calls for.
    #[test]
    fn any_split_gives_the_same_events(
        role in role(),
        items in vec(item(), 0..8),
        close in close_frame(),
        cuts in vec(any::<usize>(), 0..40),
    ) {
        let (frames, expected, answers) = script(&items, &close);
        let wire = incoming_all(role, frames);
        let whole = feed(role, &wire, &[]);
        prop_assert_eq!(&whole.0, &expected);
        prop_assert_eq!(&whole.1, &answers);
        let split = feed(role, &wire, &cuts);
        prop_assert_eq!(split, whole);
    }

    /// One byte per read is the most extreme split.
    #[test]
    fn byte_by_byte_gives_the_same_events(
        role in role(),
        items in vec(item(), 0..4),
        close in close_frame(),
    ) {
        let (frames, expected, answers) = script(&items, &close);
        let wire = incoming_all(role, frames);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let (got, sent_back) = feed(role, &wire, &cuts);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(sent_back, answers);
    }
}

/// A piece of hostile input: raw bytes, or a frame with arbitrary header fields (so the fuzzing
/// gets past the first header check).
#[derive(Debug, Clone)]
enum Piece {
    Raw(Vec<u8>),
    Frame {
        fin: bool,
        rsv: u8,
        opcode: u8,
        mask: Option<[u8; 4]>,
        payload: Vec<u8>,
    },
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(Piece::Raw),
        (
            any::<bool>(),
            prop_oneof![4 => Just(0u8), 1 => 0u8..8],
            prop_oneof![
                3 => prop_oneof![Just(CONT), Just(TEXT), Just(BINARY)],
                2 => prop_oneof![Just(CLOSE), Just(PING), Just(PONG)],
                1 => 0u8..16
            ],
            proptest::option::weighted(0.5, any::<[u8; 4]>()),
            vec(any::<u8>(), 0..200),
        )
            .prop_map(|(fin, rsv, opcode, mask, payload)| Piece::Frame {
                fin,
                rsv,
                opcode,
                mask,
                payload,
            }),
    ]
}

fn hostile_bytes(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Raw(bytes) => out.extend_from_slice(bytes),
            Piece::Frame {
                fin,
                rsv,
                opcode,
                mask,
                payload,
            } => out.extend(
                Frame {
                    fin: *fin,
                    rsv: *rsv,
                    opcode: *opcode,
                    mask: *mask,
                    payload: payload.clone(),
                }
                .encode(),
            ),
        }
    }
    out
}

/// Feeds `bytes` in pieces of `step` bytes, polling events and handling time as a driver would.
fn drive(conn: &mut Connection, bytes: &[u8], step: usize) -> Vec<Event> {
    let mut got = Vec::new();
    for (i, chunk) in bytes.chunks(step.max(1)).enumerate() {
        conn.receive(chunk, t0());
        conn.handle_timeout(t0() + std::time::Duration::from_millis(i as u64));
        got.extend(events(conn));
    }
    got
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary bytes in place of the handshake never panic.
    #[test]
    fn arbitrary_bytes_before_the_handshake_never_panic(
        role in role(),
        bytes in vec(any::<u8>(), 0..512),
        step in 1usize..64,
        eof: bool,
    ) {
        let mut conn = match role {
            Role::Server => Connection::server(Config::default(), t0()),
            Role::Client => Connection::client(Config::default(), ClientRequest::new("h", "/"), t0()),
        };
        drain(&mut conn);
        drive(&mut conn, &bytes, step);
        if eof {
            conn.receive_eof(t0());
        }
        let _ = events(&mut conn);
        let _ = drain(&mut conn);
        let _ = conn.accept(Default::default(), t0());
        let _ = conn.send_text("x");
    }

    /// A plausible request head followed by garbage never panics either.
    #[test]
    fn garbage_after_a_request_never_panics(
        bytes in vec(any::<u8>(), 0..256),
        accept: bool,
    ) {
        let mut conn = Connection::server(Config::default(), t0());
        let mut input = upgrade_request("/", &[]);
        input.extend_from_slice(&bytes);
        conn.receive(&input, t0());
        let _ = events(&mut conn);
        if accept {
            let _ = conn.accept(Default::default(), t0());
        } else {
            let _ = conn.reject(400, "no", t0());
        }
        let _ = events(&mut conn);
        let _ = drain(&mut conn);
    }

    /// Arbitrary input to an open connection never panics; what it writes is always well-formed
    /// frames, masked exactly when it is a client (`sent` checks both); after a failure the last
    /// frame written is a close and nothing follows it.
    #[test]
    fn arbitrary_input_after_the_handshake_never_panics(
        role in role(),
        pieces in vec(piece(), 0..12),
        step in 1usize..100,
        eof: bool,
    ) {
        let mut conn = open(role, Config::default());
        let bytes = hostile_bytes(&pieces);
        let got = drive(&mut conn, &bytes, step);
        if eof {
            conn.receive_eof(t0());
        }
        let frames = sent(&mut conn);
        let close_at = frames.iter().position(|f| f.opcode == CLOSE);
        if let Some(i) = close_at {
            prop_assert_eq!(i, frames.len() - 1, "frames after a close: {:?}", frames);
        }
        if got.iter().any(|e| matches!(e, Event::Error(_))) {
            prop_assert_eq!(conn.state(), State::Closed);
        }
        // Whatever happened, the connection still refuses nothing it should accept and
        // accepts nothing after the end.
        if conn.state() != State::Open {
            prop_assert!(conn.send_text("x").is_err());
        }
    }
}

/// Sends `messages` from `sender` and checks its output frame by frame: well-formed, masked iff
/// client, one frame per `fragment` bytes (at least one), FIN only on the last, opcode then
/// continuations. Returns the bytes.
fn send_and_check(
    sender: &mut Connection,
    messages: &[Message],
    fragment: usize,
) -> Result<Vec<u8>, TestCaseError> {
    for message in messages {
        match message {
            Message::Text(t) => sender.send_text(t.clone()).unwrap(),
            Message::Binary(b) => sender.send_binary(b.clone()).unwrap(),
        }
    }
    let wire = drain(sender);
    let mut frames = decode_frames(&wire).into_iter();
    for message in messages {
        let count = message.bytes().len().div_ceil(fragment).max(1);
        let mut payload = Vec::new();
        for i in 0..count {
            let frame = frames.next().expect("a frame");
            prop_assert_eq!(frame.mask.is_some(), sender.role() == Role::Client);
            prop_assert_eq!(frame.rsv, 0);
            prop_assert_eq!(frame.fin, i + 1 == count);
            let opcode = if i == 0 { message.opcode() } else { CONT };
            prop_assert_eq!(frame.opcode, opcode);
            prop_assert!(frame.payload.len() <= fragment);
            payload.extend(frame.payload);
        }
        prop_assert_eq!(&payload[..], message.bytes());
    }
    prop_assert!(frames.next().is_none());
    Ok(wire)
}

fn messages() -> impl Strategy<Value = Vec<Message>> {
    vec(
        prop_oneof![
            8 => message(200),
            1 => vec(any::<u8>(), 4096..12_000).prop_map(Message::Binary),
        ],
        0..6,
    )
}

proptest! {
    #![proptest_config(cases(96))]

    /// Messages encoded by one side decode to the same messages on the other, in both
    /// directions, for any fragment size; the frames on the way are well-formed.
    #[test]
    fn messages_roundtrip_between_client_and_server(
        messages in messages(),
        fragment in prop_oneof![1usize..50, 1000usize..5000, Just(64 << 10)],
        client_to_server: bool,
    ) {
        let config = Config { fragment_size: fragment, ..Config::default() };
        let (mut client, mut server) = connected_pair(config.clone(), config);
        let (sender, receiver) = if client_to_server {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        let wire = send_and_check(sender, &messages, fragment)?;
        receiver.receive(&wire, t0());
        let expected: Vec<Event> = messages.iter().map(Message::event).collect();
        prop_assert_eq!(events(receiver), expected);
        prop_assert_eq!(drain(receiver), b"");
    }

    /// Whatever the application asks for, refused or not, the output is well-formed frames
    /// masked iff client, and no data frame follows a close.
    #[test]
    fn outgoing_frames_are_always_well_formed(
        role in role(),
        commands in vec((0u8..5, vec(any::<u8>(), 0..140), 0u16..5100), 0..20),
        fragment in 1usize..300,
    ) {
        let mut conn = open(role, Config { fragment_size: fragment, ..Config::default() });
        for (kind, data, code) in &commands {
            let _ = match kind {
                0 => conn.send_text(String::from_utf8_lossy(data).into_owned()),
                1 => conn.send_binary(data.clone()),
                2 => conn.ping(data),
                3 => conn.pong(data),
                // Codes that may not be sent cannot be made: only valid ones reach `close`.
                _ => match CloseCode::new(*code) {
                    Some(code) => conn.close(code, &String::from_utf8_lossy(&data[..data.len().min(30)]), t0()),
                    None => Ok(()),
                },
            };
        }
        let frames = sent(&mut conn);
        if let Some(i) = frames.iter().position(|f| f.opcode == CLOSE) {
            prop_assert!(
                frames[i..].iter().all(|f| f.opcode & 0x8 != 0),
                "data after close: {:?}", frames
            );
            prop_assert_eq!(frames.iter().filter(|f| f.opcode == CLOSE).count(), 1);
            prop_assert_eq!(conn.state(), State::Closing);
        }
    }
}
