//! 1 000 concurrent connections through one server: every message echoed, and when half of
//! the peers vanish mid-frame, every disconnection reported exactly once.
//!
//! A few driver threads each own a share of blocking raw clients and step through them in
//! turn, so all connections are open at once without 1 000 OS threads.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{
    ensure_open_files, eventually, Ending, RawClient, Recording, OP_BINARY, OP_CLOSE, OP_TEXT, WAIT,
};
use ws_mio::{Server, ServerConfig};

const CLIENTS: usize = 1000;
const DRIVERS: usize = 4;
const ROUNDS: usize = 5;

/// Both ends of every connection live in this process, for both tests of this file running in
/// parallel, plus a margin for everything else.
fn check_open_files_limit() {
    ensure_open_files(4 * CLIENTS as u64 + 200);
}

fn server() -> (Server, std::sync::Arc<std::sync::Mutex<common::Tally>>) {
    let (factory, tally) = Recording::counting(true);
    let mut config = ServerConfig::default();
    config.threads = 2;
    (Server::bind("127.0.0.1:0", config, factory).unwrap(), tally)
}

/// One round trip of a text and a binary message, checked byte for byte.
fn echo_round(client: &mut RawClient, index: usize, round: usize) -> Result<(), String> {
    let text = format!("client {index} round {round}");
    let binary = common::pattern(1 + (index * 7 + round * 131) % 3000, index as u8);
    let io = |e: std::io::Error| format!("client {index} round {round}: {e}");
    client
        .send_frame(true, OP_TEXT, text.as_bytes())
        .map_err(io)?;
    client.send_frame(true, OP_BINARY, &binary).map_err(io)?;
    let first = client.read_message().map_err(io)?;
    let second = client.read_message().map_err(io)?;
    if first != (OP_TEXT, text.into_bytes()) || second != (OP_BINARY, binary) {
        return Err(format!("client {index} round {round}: wrong echo"));
    }
    Ok(())
}

/// What a driver thread reports back.
#[derive(Debug, Default)]
struct Report {
    echoes: usize,
    clean: Vec<SocketAddr>,
    vanished: Vec<SocketAddr>,
}

/// What a driver thread does with its connected clients (`(index, client)` pairs).
type Work = fn(usize, Vec<(usize, RawClient)>) -> Result<Report, String>;

/// The go signals, the "all connected" reports, and the driver threads.
type Drivers = (
    Vec<mpsc::Sender<()>>,
    mpsc::Receiver<Result<(), String>>,
    Vec<JoinHandle<Result<Report, String>>>,
);

/// Starts the driver threads. Each connects its share of clients, reports `Ok(())` on
/// `connected`, waits for the go signal, then runs `work` on its clients.
fn drive(addr: SocketAddr, work: Work) -> Drivers {
    let (connected_tx, connected) = mpsc::channel();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    for driver in 0..DRIVERS {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        let connected_tx = connected_tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut clients = Vec::new();
            for index in (driver..CLIENTS).step_by(DRIVERS) {
                match RawClient::connect(addr, "/") {
                    Ok(client) => clients.push((index, client)),
                    Err(e) => {
                        let error = format!("client {index}: connect: {e}");
                        let _ = connected_tx.send(Err(error.clone()));
                        return Err(error);
                    }
                }
            }
            let _ = connected_tx.send(Ok(()));
            go_rx
                .recv_timeout(2 * WAIT)
                .map_err(|_| "no go signal".to_string())?;
            work(driver, clients)
        }));
    }
    (go, connected, threads)
}

/// Waits until every driver has connected all its clients and the server has opened them all.
fn all_connected(
    connected: &mpsc::Receiver<Result<(), String>>,
    server: &Server,
    tally: &std::sync::Mutex<common::Tally>,
) {
    for _ in 0..DRIVERS {
        match connected.recv_timeout(4 * WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("drivers did not connect in time"),
        }
    }
    assert!(
        eventually(WAIT, || tally.lock().unwrap().opens.len() == CLIENTS),
        "opened: {}",
        tally.lock().unwrap().opens.len()
    );
    assert_eq!(
        server.connection_count(),
        CLIENTS,
        "all open at the same time"
    );
}

fn join(threads: Vec<JoinHandle<Result<Report, String>>>) -> Report {
    let mut total = Report::default();
    for thread in threads {
        let report = thread
            .join()
            .expect("driver thread panicked")
            .unwrap_or_else(|e| panic!("{e}"));
        total.echoes += report.echoes;
        total.clean.extend(report.clean);
        total.vanished.extend(report.vanished);
    }
    total
}

/// Closes cleanly: close frame, the server's echo, then the server's EOF.
fn close_cleanly(index: usize, client: &mut RawClient) -> Result<SocketAddr, String> {
    let addr = client.stream.local_addr().map_err(|e| e.to_string())?;
    client
        .send_close(1000, "")
        .map_err(|e| format!("client {index}: {e}"))?;
    match client.read_message() {
        Ok((OP_CLOSE, payload)) if payload[..2] == 1000u16.to_be_bytes() => {}
        other => {
            return Err(format!(
                "client {index}: expected the close echo, got {other:?}"
            ))
        }
    }
    match client.read_to_end(0) {
        Ending::Eof => {}
        other => {
            return Err(format!(
                "client {index}: no clean EOF after the close: {other:?}"
            ))
        }
    }
    Ok(addr)
}

#[test]
fn a_thousand_concurrent_clients_get_every_message_echoed() {
    check_open_files_limit();
    let (server, tally) = server();
    let (go, connected, threads) = drive(server.local_addr(), |_, mut clients| {
        let mut report = Report::default();
        for round in 0..ROUNDS {
            for (index, client) in &mut clients {
                echo_round(client, *index, round)?;
                report.echoes += 2;
            }
        }
        for (index, client) in &mut clients {
            report.clean.push(close_cleanly(*index, client)?);
        }
        Ok(report)
    });
    all_connected(&connected, &server, &tally);
    go.iter().for_each(|tx| tx.send(()).unwrap());
    let report = join(threads);
    assert_eq!(report.echoes, CLIENTS * ROUNDS * 2);

    assert!(
        eventually(WAIT, || server.connection_count() == 0),
        "connections left: {}",
        server.connection_count()
    );
    server.stop();
    let tally = tally.lock().unwrap();
    assert_eq!(tally.messages, CLIENTS * ROUNDS * 2);
    assert_eq!(tally.opens.len(), CLIENTS);
    for (id, opens) in &tally.opens {
        assert_eq!(*opens, 1, "session {id} opened {opens} times");
        assert_eq!(tally.closes.get(id), Some(&1), "session {id}");
        let disconnect = &tally.disconnects[id];
        assert_eq!(disconnect.code, 1000, "{disconnect:?}");
        assert!(disconnect.error.is_none(), "{disconnect:?}");
    }
    assert!(
        tally.errors.is_empty(),
        "{:?}",
        &tally.errors[..5.min(tally.errors.len())]
    );
}

#[test]
fn half_of_a_thousand_clients_vanishing_mid_frame_are_each_reported_once() {
    check_open_files_limit();
    let (server, tally) = server();
    let (go, connected, threads) = drive(server.local_addr(), |_, clients| {
        let mut report = Report::default();
        let mut survivors = Vec::new();
        for (index, mut client) in clients {
            echo_round(&mut client, index, 0)?;
            report.echoes += 2;
            if index % 2 == 1 {
                // A frame header announcing 1 000 bytes, 10 of them, and the socket is gone.
                let addr = client.stream.local_addr().map_err(|e| e.to_string())?;
                let frame = common::client_frame(true, OP_BINARY, &[7; 1000], [1, 2, 3, 4]);
                std::io::Write::write_all(&mut client.stream, &frame[..8 + 10])
                    .map_err(|e| format!("client {index}: {e}"))?;
                drop(client);
                report.vanished.push(addr);
            } else {
                survivors.push((index, client));
            }
        }
        // The others keep talking while their neighbours disappear, then close cleanly.
        for (index, client) in &mut survivors {
            echo_round(client, *index, 1)?;
            report.echoes += 2;
        }
        for (index, client) in &mut survivors {
            report.clean.push(close_cleanly(*index, client)?);
        }
        Ok(report)
    });
    all_connected(&connected, &server, &tally);
    go.iter().for_each(|tx| tx.send(()).unwrap());
    let report = join(threads);
    assert_eq!(report.echoes, CLIENTS * 2 + CLIENTS / 2 * 2);
    assert_eq!(report.vanished.len(), CLIENTS / 2);

    assert!(
        eventually(Duration::from_secs(20), || server.connection_count() == 0),
        "connections left: {}",
        server.connection_count()
    );
    // After stop no callback can run any more: the counts are final.
    server.stop();
    let tally = tally.lock().unwrap();
    assert_eq!(tally.opens.len(), CLIENTS);
    let mut vanished = 0;
    for (id, opens) in &tally.opens {
        assert_eq!(*opens, 1, "session {id} opened {opens} times");
        assert_eq!(tally.closes.get(id), Some(&1), "session {id} closes");
        let disconnect = &tally.disconnects[id];
        if report.vanished.contains(&tally.peers[id]) {
            vanished += 1;
            assert_eq!(disconnect.code, 1006, "{disconnect:?}");
            assert!(disconnect.error.is_some(), "{disconnect:?}");
        } else {
            assert!(report.clean.contains(&tally.peers[id]));
            assert_eq!(disconnect.code, 1000, "{disconnect:?}");
            assert!(disconnect.error.is_none(), "{disconnect:?}");
        }
    }
    assert_eq!(vanished, CLIENTS / 2);
}
