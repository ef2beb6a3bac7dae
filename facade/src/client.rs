//! The facade client: a [`ws_mio::Client`] whose events become the tutorial's callbacks.
//!
//! Where the client is in its life is one [`Lifecycle`] value under one mutex; every method and
//! every event of the driver is a transition of it (the diagram is on [`Lifecycle`]). The lock
//! is held only to read or change that value: never while an application callback runs, nor
//! across [`ws_mio::Client::connect_url`] or [`ws_mio::Client::stop`] (nor a `Client`'s drop,
//! which stops it). So callbacks may call every method, including while `start` is connecting
//! (the connected and error callbacks run on the client's loop thread during `connect`).

use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use log::debug;
use ws_mio::{Disconnect, DriverError, Handler, Message, WsUrl};

use crate::callbacks::{CallbackTable, CallbackView};
use crate::config::ClientConfig;
use crate::error::Error;
use crate::traits::*;

#[derive(Default, Clone)]
struct Callbacks {
    receive: Option<ReceiveCallback>,
    connected: Option<EventCallback>,
    disconnected: Option<EventCallback>,
    error: Option<ErrorCallback>,
    text: Option<TextCallback>,
    binary: Option<BinaryCallback>,
    close: Option<CloseCallback>,
}

/// Where the client is. `s` is a connection's [`ws_mio::Session`]; events of a connection that
/// is not the one the state is about (an older one, stopped from its own callback, still
/// closing) change nothing: they are told apart by session id, and by attempt number before a
/// connection has a session.
///
/// ```text
/// Idle, Closing(s), Ended ──start──▶ Starting(Connecting)         (Running too, if its thread
///                                                                   died without on_close)
/// Starting(Connecting) ──on_open(s)──▶ Starting(Open(s))          (the connected callback runs
///                                                                   after: it can send)
/// Starting(Open(s)) ──on_close(s)──▶ Starting(Closed)             (ended before start returned)
/// Starting(step) ──stop──▶ Starting(step, stop_requested)
/// Starting(step) ──on_error──▶ Starting(step, error_reported)
/// Starting ──connect fails──▶ Idle                                (then the error callback,
///                                                                   unless error_reported)
/// Starting(stop_requested) ──connect ok──▶ Closing(s)             (start stops the Client:
///                                                                   StoppedWhileStarting)
/// Starting(Open(s)) ──connect ok──▶ Running(s, client)            (Connecting too: a driver
///                                                                   that skipped on_open)
/// Starting(Closed) ──connect ok──▶ Ended(client)
/// Running(s, client) ──stop──▶ Closing(s)                         (stop stops the Client)
/// Running(s, client) ──on_close(s), after its callbacks──▶ Ended(client)
/// Closing(s) ──on_close(s), after its callbacks──▶ Idle
/// Closing(s) ──stop's Client::stop saw the thread finished──▶ Idle
/// Ended(client) ──stop──▶ Idle                                    (joins the finished thread)
/// Idle, Closing(s) ──stop──▶ unchanged
/// Starting, Running(s, client) ──start──▶ unchanged               (AlreadyRunning)
/// ```
enum Lifecycle {
    /// Never started, the last `start` failed, or the last connection was stopped and ended.
    Idle,
    /// A `start` call is connecting (inside [`ws_mio::Client::connect_url`]).
    Starting(Start),
    /// `start` succeeded: the connection is open, or ending (its `on_close` callbacks running).
    Running {
        session: ws_mio::Session,
        client: ws_mio::Client,
    },
    /// Stopped (by `stop`, or by `start` after a stop while connecting) and not ended yet: a
    /// stop from the connection's own callback returns before the closing handshake, which goes
    /// on on that thread. The session stays readable until `on_close`, as before the stop.
    Closing { session: ws_mio::Session },
    /// The connection ended on its own (closed by the server, failed...): its thread is
    /// finishing and is joined by the next `start` or `stop` (or the drop of the client).
    Ended { client: ws_mio::Client },
}

/// A `start` under way.
struct Start {
    /// Which `start` call this is (events of an older connection are not this start's).
    attempt: u64,
    step: Step,
    /// `stop` was called meanwhile (from a callback or another thread): `start` closes what it
    /// opened and returns [`Error::StoppedWhileStarting`].
    stop_requested: bool,
    /// The driver reported an error of this attempt through `on_error`, hence to the error
    /// callback: a failed start does not report its failure a second time.
    error_reported: bool,
}

/// How far the connection of a [`Start`] got.
enum Step {
    /// Connecting, upgrading.
    Connecting,
    /// `on_open` ran: the connected callback can send, before `start` has the Client back.
    Open(ws_mio::Session),
    /// `on_close` ran too: the connection ended before `start` had the Client back.
    Closed,
}

impl Lifecycle {
    /// The session `send` and the other methods use: from `on_open` (before the connected
    /// callback) until the connection's end, or the start of a new one.
    fn session(&self) -> Option<&ws_mio::Session> {
        match self {
            Lifecycle::Starting(Start {
                step: Step::Open(session),
                ..
            })
            | Lifecycle::Running { session, .. }
            | Lifecycle::Closing { session } => Some(session),
            _ => None,
        }
    }

    /// The session id of the running connection (`is_running`): opened, not ended (its close
    /// callbacks done), not stopped.
    fn running(&self) -> Option<u64> {
        match self {
            Lifecycle::Starting(Start {
                step: Step::Open(session),
                stop_requested: false,
                ..
            })
            | Lifecycle::Running { session, .. } => Some(session.id()),
            _ => None,
        }
    }
}

/// What the state lock guards.
struct State {
    now: Lifecycle,
    /// The attempt number of the last `start`.
    attempts: u64,
}

impl State {
    /// Replaces the lifecycle with what `f` makes of it. `f` also returns what is left over
    /// (above all a `Client`, whose drop stops and joins its thread), for the caller to drop
    /// once the lock is released.
    fn change<R>(&mut self, f: impl FnOnce(Lifecycle) -> (Lifecycle, R)) -> R {
        let (now, left) = f(mem::replace(&mut self.now, Lifecycle::Idle));
        self.now = now;
        left
    }
}

/// What the client shares with the handlers of its connections.
struct Shared {
    callbacks: CallbackTable<Callbacks>,
    state: Mutex<State>,
    /// Notified after every transition: `wait_for_stop` waits on it.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one transition under the lock and wakes `wait_for_stop`. What `f` returns is
    /// dropped by the caller, after the lock is released.
    fn transition<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let out = f(&mut state);
        drop(state);
        self.changed.notify_all();
        out
    }

    /// Stops `client`, just taken out of the state (now `Closing` with its session, `Idle`
    /// or someone else's). Off the client's loop thread this waits for the closing handshake
    /// and `on_close` (which ends `Closing`); on it (a callback called `stop`) the close goes
    /// on once the callback returns and `on_close` ends `Closing` later. A thread found
    /// finished without `on_close` having ended `Closing` (a driver that lost the event) ends
    /// it here.
    fn close(&self, client: ws_mio::Client) {
        client.stop();
        if client.is_finished() {
            let id = client.session().id();
            let left = self.transition(|state| {
                state.change(|now| match now {
                    Lifecycle::Closing { session } if session.id() == id => {
                        (Lifecycle::Idle, Some(session))
                    }
                    other => (other, None),
                })
            });
            drop(left);
        }
    }

    /// `on_close` of session `id` is done (its callbacks ran, or panicked): if the state is
    /// about that connection, it has ended. Any other connection's end changes nothing.
    fn ended(&self, id: u64) {
        let left = self.transition(|state| {
            state.change(|now| match now {
                Lifecycle::Starting(mut start)
                    if matches!(&start.step, Step::Open(s) if s.id() == id) =>
                {
                    start.step = Step::Closed;
                    (Lifecycle::Starting(start), None)
                }
                Lifecycle::Running { session, client } if session.id() == id => {
                    (Lifecycle::Ended { client }, Some(session))
                }
                Lifecycle::Closing { session } if session.id() == id => {
                    (Lifecycle::Idle, Some(session))
                }
                other => (other, None),
            })
        });
        drop(left);
    }
}

/// The client returned by [`create_client`](crate::WebSocketFacade::create_client).
pub struct WsClient {
    config: ClientConfig,
    client_id: String,
    shared: Arc<Shared>,
}

/// How a `start` ended, decided under the lock and acted on after.
enum Outcome {
    /// `Running` (or `Ended`, if the connection is already over).
    Started,
    /// Stopped while connecting: the Client is to be stopped.
    Stopped(ws_mio::Client),
    /// Connecting failed; `reported` if the driver already told the error callback.
    Failed { error: Error, reported: bool },
}

impl WsClient {
    pub(crate) fn new(config: ClientConfig, client_id: String) -> WsClient {
        WsClient {
            config,
            client_id,
            shared: Arc::new(Shared {
                callbacks: CallbackTable::default(),
                state: Mutex::new(State {
                    now: Lifecycle::Idle,
                    attempts: 0,
                }),
                changed: Condvar::new(),
            }),
        }
    }

    fn set(&self, f: impl FnOnce(&mut Callbacks)) {
        self.shared.callbacks.set(f);
    }

    fn bridge(&self, attempt: u64) -> Bridge {
        Bridge {
            shared: Arc::clone(&self.shared),
            client_id: self.client_id.clone(),
            attempt,
            callbacks: self.shared.callbacks.view(),
        }
    }

    fn session(&self) -> Result<ws_mio::Session, Error> {
        self.shared
            .lock()
            .now
            .session()
            .cloned()
            .ok_or(Error::NotConnected)
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The handler of one connection (one `start` attempt): the driver's events become the
/// tutorial's callbacks, and transitions of the client's state.
struct Bridge {
    shared: Arc<Shared>,
    /// For log lines.
    client_id: String,
    attempt: u64,
    callbacks: CallbackView<Callbacks>,
}

impl Bridge {
    /// Changes the state of this bridge's `start`, if it is still under way.
    fn starting(&self, f: impl FnOnce(&mut Start)) {
        self.shared.transition(|state| {
            if let Lifecycle::Starting(start) = &mut state.now {
                if start.attempt == self.attempt {
                    f(start);
                }
            }
        });
    }
}

impl Handler for Bridge {
    fn on_open(&mut self, session: &ws_mio::Session) {
        // Before the connected callback, so that it can send (`start` is still in `connect`).
        self.starting(|start| {
            if matches!(start.step, Step::Connecting) {
                start.step = Step::Open(session.clone());
            }
        });
        if let Some(cb) = &self.callbacks.get(&self.shared.callbacks).connected {
            cb();
        }
    }

    fn on_message(&mut self, _session: &ws_mio::Session, message: Message) {
        let callbacks = self.callbacks.get(&self.shared.callbacks);
        match &message {
            Message::Text(text) => {
                if let Some(cb) = &callbacks.text {
                    cb("", text);
                }
            }
            Message::Binary(data) => {
                if let Some(cb) = &callbacks.binary {
                    cb("", data);
                }
            }
            _ => {}
        }
        if let Some(cb) = &callbacks.receive {
            cb(message.as_bytes());
        }
    }

    fn on_close(&mut self, session: &ws_mio::Session, disconnect: &Disconnect) {
        // The state changes once the close and disconnected callbacks ran (`is_running` stays
        // true and `wait_for_stop` waits until then), even if one of them panics. The session
        // is no longer open already: `is_connected` is false and sends fail meanwhile.
        struct Ended<'a>(&'a Shared, u64);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.ended(self.1);
            }
        }
        let _ended = Ended(&self.shared, session.id());
        debug!(
            "client {:?} disconnected: peer={} code={} reason={:?}",
            self.client_id,
            session.peer_addr(),
            disconnect.code,
            disconnect.reason
        );
        let callbacks = self.callbacks.get(&self.shared.callbacks);
        if let Some(cb) = &callbacks.close {
            cb("", disconnect.code.as_u16(), &disconnect.reason);
        }
        if let Some(cb) = &callbacks.disconnected {
            cb();
        }
    }

    fn on_error(&mut self, _session: &ws_mio::Session, error: &DriverError) {
        self.starting(|start| start.error_reported = true);
        if let Some(cb) = &self.callbacks.get(&self.shared.callbacks).error {
            cb(&Error::Connection(error.clone()));
        }
    }
}

impl ProtocolClient for WsClient {
    fn start(&self, host: &str, port: u16) -> Result<(), Error> {
        let (attempt, left) = self.shared.transition(|state| {
            let attempt = state.attempts + 1;
            let begun = state.change(|now| match now {
                Lifecycle::Starting(_) => (now, Err(Error::AlreadyRunning)),
                Lifecycle::Running { ref client, .. } if !client.is_finished() => {
                    (now, Err(Error::AlreadyRunning))
                }
                // Idle; Closing (the stopped connection ends on its own); Ended; Running
                // whose thread is gone.
                left => {
                    let start = Start {
                        attempt,
                        step: Step::Connecting,
                        stop_requested: false,
                        error_reported: false,
                    };
                    (Lifecycle::Starting(start), Ok((attempt, left)))
                }
            });
            if begun.is_ok() {
                state.attempts = attempt;
            }
            begun
        })?;
        // The Client of an ended connection is joined here, without the lock.
        drop(left);
        // Through the driver's URL parser: an IPv6 host with or without brackets, a name
        // checked and normalised, the path percent-encoded; a fragment is refused.
        #[allow(unused_mut)]
        let mut url = WsUrl::new(host, port, &self.config.path);
        #[cfg(feature = "tls")]
        if let Ok(url) = &mut url {
            url.secure = self.config.tls.is_some();
        }
        let target = match &url {
            Ok(url) => url.to_string(),
            Err(_) => format!("host {host:?} port {port}"),
        };
        let mut driver_config = ws_mio::ClientConfig::default();
        driver_config.protocol = self.config.protocol();
        driver_config.connect_timeout = self.config.connect_timeout;
        driver_config.headers = vec![("X-Client-Id".into(), self.client_id.clone())];
        #[cfg(feature = "tls")]
        {
            driver_config.tls = self.config.tls.clone();
        }
        // Without the lock: the connected and error callbacks, which run meanwhile on the
        // client's thread, can call every method (another `start` gets `AlreadyRunning`).
        let result = url
            .map_err(ws_mio::ConnectError::InvalidUrl)
            .and_then(|url| ws_mio::Client::connect_url(&url, driver_config, self.bridge(attempt)));
        let outcome = self.shared.transition(|state| {
            state.change(|now| {
                let start = match now {
                    Lifecycle::Starting(start) if start.attempt == attempt => start,
                    // Only this call leaves its `Starting`. Were it gone, what this call
                    // opened would be closed without touching the state.
                    other => {
                        let outcome = match result {
                            Ok(client) => Outcome::Stopped(client),
                            Err(e) => Outcome::Failed {
                                error: Error::Connect(Arc::new(e)),
                                reported: false,
                            },
                        };
                        return (other, outcome);
                    }
                };
                match result {
                    // Every failed start reaches the error callback once: the driver reports
                    // some failures through `on_error` (a connected callback that panicked),
                    // most only as `connect`'s error (refused, rejected upgrade, a host that
                    // does not resolve, a timeout).
                    Err(e) => (
                        Lifecycle::Idle,
                        Outcome::Failed {
                            error: Error::Connect(Arc::new(e)),
                            reported: start.error_reported,
                        },
                    ),
                    Ok(client) if start.stop_requested => {
                        let session = client.session().clone();
                        (Lifecycle::Closing { session }, Outcome::Stopped(client))
                    }
                    Ok(client) => match start.step {
                        Step::Closed => (Lifecycle::Ended { client }, Outcome::Started),
                        Step::Open(_) | Step::Connecting => {
                            let session = client.session().clone();
                            (Lifecycle::Running { session, client }, Outcome::Started)
                        }
                    },
                }
            })
        });
        let id = &self.client_id;
        match &outcome {
            Outcome::Started => debug!("client {id:?} connected to {target}"),
            Outcome::Stopped(_) => {
                debug!("client {id:?} connected to {target} and was stopped while starting")
            }
            Outcome::Failed { error, .. } => {
                debug!("client {id:?} could not connect to {target}: {error}");
            }
        }
        match outcome {
            Outcome::Started => Ok(()),
            Outcome::Stopped(client) => {
                self.shared.close(client);
                Err(Error::StoppedWhileStarting)
            }
            Outcome::Failed { error, reported } => {
                // The state is `Idle` again: the callback may start anew, or stop.
                if !reported {
                    if let Some(cb) = &self.shared.callbacks.get().error {
                        cb(&error);
                    }
                }
                Err(error)
            }
        }
    }

    fn stop(&self) -> Result<(), Error> {
        let client = self.shared.transition(|state| {
            state.change(|now| match now {
                // `start` closes what it opens.
                Lifecycle::Starting(mut start) => {
                    start.stop_requested = true;
                    (Lifecycle::Starting(start), None)
                }
                Lifecycle::Running { session, client } => {
                    (Lifecycle::Closing { session }, Some(client))
                }
                Lifecycle::Ended { client } => (Lifecycle::Idle, Some(client)),
                now @ (Lifecycle::Idle | Lifecycle::Closing { .. }) => (now, None),
            })
        });
        if let Some(client) = client {
            self.shared.close(client);
        }
        Ok(())
    }

    fn send(&self, data: Vec<u8>) -> Result<(), Error> {
        Ok(self.session()?.send_binary(data)?)
    }

    fn is_connected(&self) -> bool {
        self.shared
            .lock()
            .now
            .session()
            .is_some_and(|s| s.is_open())
    }

    fn is_running(&self) -> bool {
        self.shared.lock().now.running().is_some()
    }

    fn wait_for_stop(&self) {
        let mut state = self.shared.lock();
        // The connection running now: until it ended or was stopped (not one that a `start`
        // opened meanwhile).
        let Some(running) = state.now.running() else {
            return;
        };
        while state.now.running() == Some(running) {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn set_receive_callback_boxed(&self, callback: ReceiveCallback) {
        self.set(|c| c.receive = Some(callback));
    }
    fn set_connected_callback_boxed(&self, callback: EventCallback) {
        self.set(|c| c.connected = Some(callback));
    }
    fn set_disconnected_callback_boxed(&self, callback: EventCallback) {
        self.set(|c| c.disconnected = Some(callback));
    }
    fn set_error_callback_boxed(&self, callback: ErrorCallback) {
        self.set(|c| c.error = Some(callback));
    }
    fn as_websocket(&self) -> Option<&dyn WebSocketClient> {
        Some(self)
    }
}

impl WebSocketClient for WsClient {
    fn send_text(&self, text: String) -> Result<(), Error> {
        Ok(self.session()?.send_text(text)?)
    }
    fn send_binary(&self, data: Vec<u8>) -> Result<(), Error> {
        Ok(self.session()?.send_binary(data)?)
    }
    fn ping(&self, payload: Vec<u8>) -> Result<(), Error> {
        Ok(self.session()?.ping(payload)?)
    }
    fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        Ok(self
            .session()?
            .close(crate::server::close_code(code)?, reason)?)
    }
    fn subprotocol(&self) -> Option<String> {
        self.session().ok()?.subprotocol().map(str::to_owned)
    }
    fn set_text_callback_boxed(&self, callback: TextCallback) {
        self.set(|c| c.text = Some(callback));
    }
    fn set_binary_callback_boxed(&self, callback: BinaryCallback) {
        self.set(|c| c.binary = Some(callback));
    }
    fn set_close_callback_boxed(&self, callback: CloseCallback) {
        self.set(|c| c.close = Some(callback));
    }
}
