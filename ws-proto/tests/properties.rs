//! Properties of the state machine, checked on generated inputs:
//!
//! * how the input is cut into reads never changes what happens (both roles);
//! * arbitrary input, in either role, before or after the handshake, ends only the way the
//!   events say: before the handshake a handshake error (with its HTTP answer on a server) or
//!   nothing yet; after it, the connection stays open, or its one ending (a protocol error,
//!   the peer's close, EOF) is the last event, sets the state and close status, and what is
//!   written is exactly a pong per ping reported then the close frame of that ending;
//! * messages sent by one side arrive intact at the other, both directions, whatever the
//!   fragment size;
//! * outgoing frames are always well-formed and masked exactly when the sender is a client.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ws_proto::handshake::error_response;
use ws_proto::CloseCode;
use ws_proto::{
    AnswerError, ClientRequest, CloseFrame, Config, Connection, Error, Event, Role, SendError,
    State,
};

/// `cases` cases. Failing inputs are saved to, and replayed first from,
/// `properties.proptest-regressions` beside this file: `WithSource` replaces the extension of
/// the test's source path (`file!()`) with the one given. (Proptest's default,
/// `SourceParallel`, looks for a `lib.rs` or `main.rs` above the source file, finds none for
/// an integration test, warns and falls back to that same path.)
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
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

/// A piece of hostile input: raw bytes, a frame with arbitrary header fields (so the fuzzing
/// gets past the first header check), or a valid close frame.
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
        // A valid close frame (random payloads seldom hold a code that may be sent).
        (
            close_frame(),
            proptest::option::weighted(0.5, any::<[u8; 4]>())
        )
            .prop_map(|(close, mask)| Piece::Frame {
                fin: true,
                rsv: 0,
                opcode: CLOSE,
                mask,
                payload: close.map_or_else(Vec::new, |c| c.payload()),
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

/// Checks how an open connection answered arbitrary input, given the events `got` it reported
/// and the frames it wrote (masks forgotten):
///
/// * a pong for every ping reported, in order (§5.5.2: "Upon receipt of a Ping frame, an
///   endpoint MUST send a Pong frame in response");
/// * if the connection ended, its ending is the last event, the state is `Closed`, the close
///   status is the ending's code, and the last frame written is the ending's close frame and
///   nothing follows it: the protocol error's code (§7.1.7), the echo of the peer's code
///   (§5.5.1), none after EOF (1006 is never sent);
/// * otherwise the connection is still open and wrote no close frame.
fn check_outcome(conn: &Connection, got: &[Event], written: &[Frame]) -> Result<(), TestCaseError> {
    let mut expected: Vec<Frame> = got
        .iter()
        .filter_map(|e| match e {
            Event::Ping(p) => Some(Frame::pong(p.clone())),
            _ => None,
        })
        .collect();
    let end = got
        .iter()
        .position(|e| matches!(e, Event::Error(_) | Event::Close(_)));
    match end {
        None => prop_assert_eq!(conn.state(), State::Open),
        Some(i) => {
            prop_assert_eq!(i, got.len() - 1, "events after the ending: {:?}", got);
            prop_assert_eq!(conn.state(), State::Closed);
            let (status, close) = match &got[i] {
                Event::Error(Error::Protocol(e)) => (
                    CloseFrame {
                        code: e.close_code(),
                        reason: String::new(),
                    },
                    Some(Frame::close(e.close_code().as_u16(), "")),
                ),
                Event::Error(Error::ConnectionReset) => (
                    CloseFrame {
                        code: CloseCode::ABNORMAL,
                        reason: String::new(),
                    },
                    None,
                ),
                Event::Close(frame) if frame.code == CloseCode::NO_STATUS => {
                    (frame.clone(), Some(Frame::close_empty()))
                }
                Event::Close(frame) => (frame.clone(), Some(Frame::close(frame.code.as_u16(), ""))),
                other => return Err(TestCaseError::fail(format!("ended by {other:?}"))),
            };
            prop_assert_eq!(conn.close_status(), Some(&status));
            expected.extend(close);
        }
    }
    prop_assert_eq!(written, &expected[..]);
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary bytes in place of the handshake (never a valid request or response) end in
    /// one of two ways: the head is not complete yet (still connecting, nothing written), or
    /// the handshake fails (closed; a server writes the error's HTTP response, a client
    /// writes nothing and is terminated). EOF before either is a reset. Nothing is accepted
    /// or sent afterwards.
    #[test]
    fn arbitrary_bytes_before_the_handshake_fail_it_or_wait(
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
        let mut got = drive(&mut conn, &bytes, step);
        if eof {
            conn.receive_eof(t0());
            got.extend(events(&mut conn));
            prop_assert!(conn.is_terminated());
        }
        let written = drain(&mut conn);
        match got.as_slice() {
            [] => {
                prop_assert!(!eof);
                prop_assert_eq!(conn.state(), State::Connecting);
                prop_assert_eq!(written, b"");
            }
            [Event::Error(Error::Handshake(e))] => {
                prop_assert_eq!(conn.state(), State::Closed);
                match role {
                    Role::Server => prop_assert_eq!(written, e.to_response().unwrap_or_default()),
                    Role::Client => {
                        prop_assert_eq!(written, b"");
                        prop_assert!(conn.is_terminated());
                    }
                }
            }
            [Event::Error(Error::ConnectionReset)] => {
                prop_assert!(eof);
                prop_assert_eq!(conn.state(), State::Closed);
                prop_assert_eq!(written, b"");
            }
            other => prop_assert!(false, "{:?} from {:02x?}", other, bytes),
        }
        prop_assert_eq!(conn.accept(Default::default(), t0()), Err(AnswerError::NoPendingRequest));
        let refused = match conn.state() {
            State::Connecting => SendError::NotOpen,
            _ => SendError::Closed,
        };
        prop_assert_eq!(conn.send_text("x"), Err(refused));
        prop_assert_eq!(drain(&mut conn), b"");
    }

    /// A valid request followed by garbage is reported as it is; the garbage waits for the
    /// application's answer. Accepted, the 101 goes out, then the garbage is read as frames
    /// and answered as [`check_outcome`] says. Rejected, the error response is all that is
    /// written and the garbage is never read.
    #[test]
    fn garbage_after_a_request_waits_for_the_answer(
        bytes in vec(any::<u8>(), 0..256),
        accept: bool,
    ) {
        let mut conn = Connection::server(Config::default(), t0());
        let mut input = upgrade_request("/", &[]);
        input.extend_from_slice(&bytes);
        conn.receive(&input, t0());
        prop_assert!(matches!(events(&mut conn).as_slice(), [Event::Request(_)]));
        prop_assert_eq!(drain(&mut conn), b"");
        if accept {
            conn.accept(Default::default(), t0()).unwrap();
            let got = events(&mut conn);
            prop_assert!(matches!(got.first(), Some(Event::Open(_))), "{:?}", got);
            let written = drain(&mut conn);
            let head_end = written
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a response head")
                + 4;
            prop_assert!(written.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            let frames: Vec<Frame> = decode_frames(&written[head_end..]);
            prop_assert!(frames.iter().all(|f| f.mask.is_none()), "a server never masks");
            check_outcome(&conn, &got[1..], &frames)?;
        } else {
            conn.reject(400, "no", t0()).unwrap();
            prop_assert_eq!(events(&mut conn), vec![]);
            prop_assert_eq!(drain(&mut conn), error_response(400, &[], "no"));
            prop_assert_eq!(conn.state(), State::Closed);
            prop_assert!(conn.should_shutdown());
        }
    }

    /// Arbitrary input to an open connection, with or without a final EOF, is answered as
    /// [`check_outcome`] says; everything written is well-formed frames, masked exactly when
    /// the connection is a client (`sent` checks both). Once ended, it refuses to send.
    #[test]
    fn arbitrary_input_after_the_handshake_is_answered_as_the_events_say(
        role in role(),
        pieces in vec(piece(), 0..12),
        step in 1usize..100,
        eof: bool,
    ) {
        let mut conn = open(role, Config::default());
        let bytes = hostile_bytes(&pieces);
        let mut got = drive(&mut conn, &bytes, step);
        if eof {
            let open = conn.state() == State::Open;
            conn.receive_eof(t0());
            let after = events(&mut conn);
            prop_assert!(conn.is_terminated());
            if open {
                prop_assert_eq!(&after, &[Event::Error(Error::ConnectionReset)]);
            } else {
                prop_assert_eq!(&after, &[]);
            }
            got.extend(after);
        }
        let frames: Vec<Frame> = sent(&mut conn).into_iter().map(Frame::unmasked).collect();
        check_outcome(&conn, &got, &frames)?;
        if conn.state() != State::Open {
            prop_assert_eq!(conn.send_text("x"), Err(SendError::Closed));
            prop_assert_eq!(drain(&mut conn), b"");
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
        let mut config = Config::default();
        config.fragment_size = fragment;
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
        let mut conn = open(role, { let mut config = Config::default(); config.fragment_size = fragment; config });
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
