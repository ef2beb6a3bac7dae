//! Steady-state echo allocates nothing: a received message's buffer, sent back, returns to
//! the connection and receives the next message. (Its own test binary: the counting
//! allocator sees the whole process, and this file runs one test at a time.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ws_proto::{Accept, ClientRequest, Config, Connection, Event};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` unchanged; counting touches only an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Moves all of `from`'s output into `to` (a chunk at a time, as a driver's writes would).
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    while !from.pending_output().is_empty() {
        let n = from.pending_output().len();
        to.receive(from.pending_output(), now);
        from.advance_output(n);
    }
}

/// Allocations made by `rounds` echoes of `payload` (text or binary) after a warm-up.
fn allocations_per_echo(payload: &[u8], text: bool, rounds: usize) -> u64 {
    let now = Instant::now();
    let mut client = Connection::client(Config::default(), ClientRequest::new("x", "/"), now);
    let mut server = Connection::server(Config::default(), now);
    pump(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), now).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    pump(&mut server, &mut client, now);
    assert!(matches!(client.poll_event(), Some(Event::Open(_))));

    let mut outgoing = payload.to_vec();
    let mut counted = 0;
    for round in 0..rounds + 10 {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        if text {
            let s = String::from_utf8(std::mem::take(&mut outgoing)).unwrap();
            client.send_text(s).unwrap();
        } else {
            client.send_binary(std::mem::take(&mut outgoing)).unwrap();
        }
        pump(&mut client, &mut server, now);
        match server.poll_event() {
            Some(Event::Binary(data)) => server.send_binary(data).unwrap(),
            Some(Event::Text(data)) => server.send_text(data).unwrap(),
            other => panic!("{other:?}"),
        }
        pump(&mut server, &mut client, now);
        outgoing = match client.poll_event() {
            Some(Event::Binary(data)) => data,
            Some(Event::Text(data)) => data.into_bytes(),
            other => panic!("{other:?}"),
        };
        assert_eq!(outgoing, payload);
        if round >= 10 {
            counted += ALLOCATIONS.load(Ordering::Relaxed) - before;
        }
    }
    counted
}

#[test]
fn echo_allocates_nothing_in_steady_state() {
    // Small messages are copied into the output and their buffers recycled; large ones are
    // written from their own buffer, which comes back once written; the limit is 64 KiB.
    for (len, text) in [
        (20, false),
        (20, true),
        (512, false),
        (16 << 10, false),
        (60_000, true),
    ] {
        let payload = vec![b'a'; len];
        assert_eq!(
            allocations_per_echo(&payload, text, 200),
            0,
            "{len}-byte {} echo",
            if text { "text" } else { "binary" }
        );
    }
}
