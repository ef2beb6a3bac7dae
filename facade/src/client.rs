//! The facade client: a [`ws_mio::Client`] whose events become the tutorial's callbacks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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

struct Inner {
    callbacks: CallbackTable<Callbacks>,
    /// True from a successful start until the connection ends.
    running: Mutex<bool>,
    ended: Condvar,
    /// The open connection's session, from its opening (before the connected callback runs,
    /// so that the callback can send) until its end.
    session: Mutex<Option<ws_mio::Session>>,
    /// Errors the driver reported to the error callback, so far.
    errors_reported: AtomicU64,
}

impl Inner {
    fn set(&self, f: impl FnOnce(&mut Callbacks)) {
        self.callbacks.set(f);
    }

    fn set_session(&self, session: Option<ws_mio::Session>) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = session;
    }

    fn set_running(&self, running: bool) {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = running;
        self.ended.notify_all();
    }
}

/// The client returned by [`create_client`](crate::WebSocketFacade::create_client).
pub struct WsClient {
    config: ClientConfig,
    client_id: String,
    inner: Arc<Inner>,
    /// The driver of the current connection. Locked only briefly, never while connecting, so
    /// that callbacks running during `start` can call any method.
    client: Mutex<Option<ws_mio::Client>>,
    /// Held by `start` (until it returns, or calls the error callback of its failure): one
    /// start at a time; another one meanwhile, from a callback say, gets `AlreadyRunning`.
    starting: Mutex<()>,
    /// Bumped by `stop`: a start that sees it change while connecting stops what it started.
    stops: AtomicU64,
}

impl WsClient {
    pub(crate) fn new(config: ClientConfig, client_id: String) -> WsClient {
        WsClient {
            config,
            client_id,
            inner: Arc::new(Inner {
                callbacks: CallbackTable::default(),
                running: Mutex::new(false),
                ended: Condvar::new(),
                session: Mutex::new(None),
                errors_reported: AtomicU64::new(0),
            }),
            client: Mutex::new(None),
            starting: Mutex::new(()),
            stops: AtomicU64::new(0),
        }
    }

    fn bridge(&self) -> Bridge {
        Bridge {
            inner: Arc::clone(&self.inner),
            callbacks: self.inner.callbacks.view(),
        }
    }

    fn session(&self) -> Result<ws_mio::Session, Error> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::NotConnected)
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The connection's handler: the driver's events become the tutorial's callbacks.
struct Bridge {
    inner: Arc<Inner>,
    callbacks: CallbackView<Callbacks>,
}

impl Handler for Bridge {
    fn on_open(&mut self, session: &ws_mio::Session) {
        self.inner.set_session(Some(session.clone()));
        self.inner.set_running(true);
        if let Some(cb) = &self.callbacks.get(&self.inner.callbacks).connected {
            cb();
        }
    }

    fn on_message(&mut self, _session: &ws_mio::Session, message: Message) {
        let callbacks = self.callbacks.get(&self.inner.callbacks);
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
        // Only the current connection's end clears the state (a connection stopped from its own
        // callback ends on its own, possibly after a later start opened another).
        let current = {
            let mut slot = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
            let current = slot.as_ref().is_some_and(|s| s.id() == session.id());
            if current {
                *slot = None;
            }
            current
        };
        struct Ended<'a>(&'a Inner, bool);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.set_running(false);
                }
            }
        }
        let _ended = Ended(&self.inner, current);
        let callbacks = self.callbacks.get(&self.inner.callbacks);
        if let Some(cb) = &callbacks.close {
            cb("", disconnect.code.as_u16(), &disconnect.reason);
        }
        if let Some(cb) = &callbacks.disconnected {
            cb();
        }
    }

    fn on_error(&mut self, _session: &ws_mio::Session, error: &DriverError) {
        self.inner.errors_reported.fetch_add(1, Ordering::AcqRel);
        if let Some(cb) = &self.callbacks.get(&self.inner.callbacks).error {
            cb(&Error::Connection(error.clone()));
        }
    }
}

impl ProtocolClient for WsClient {
    fn start(&self, host: &str, port: u16) -> Result<(), Error> {
        let one_start = match self.starting.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(Error::AlreadyRunning),
        };
        let running = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if running.as_ref().is_some_and(|c| !c.is_finished()) {
            return Err(Error::AlreadyRunning);
        }
        drop(running);
        let stops = self.stops.load(Ordering::Acquire);
        let reported = self.inner.errors_reported.load(Ordering::Acquire);
        let url = WsUrl {
            host: host.to_owned(),
            port,
            path: self.config.path.clone(),
        };
        let driver_config = ws_mio::ClientConfig {
            protocol: self.config.protocol(),
            connect_timeout: self.config.connect_timeout,
            headers: vec![("X-Client-Id".into(), self.client_id.clone())],
            ..ws_mio::ClientConfig::default()
        };
        // Only `starting` is held while connecting: the connected and error callbacks, which
        // run meanwhile, can call every other method.
        let client = match ws_mio::Client::connect_url(&url, driver_config, self.bridge()) {
            Ok(client) => client,
            Err(e) => {
                let error = Error::Connect(Arc::new(e));
                drop(one_start);
                // Every failed start reaches the error callback once: the driver reports
                // what fails on its loop (refused, handshake), not a host that does not
                // resolve or a connect that timed out before the loop answered.
                if self.inner.errors_reported.load(Ordering::Acquire) == reported {
                    if let Some(cb) = &self.inner.callbacks.get().error {
                        cb(&error);
                    }
                }
                return Err(error);
            }
        };
        // Checked under the slot's lock: a `stop` counts itself before taking that lock, so it
        // either shows here or finds the client stored.
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if self.stops.load(Ordering::Acquire) != stops {
            // `stop` was called (by a callback, or another thread) while this start connected.
            drop(slot);
            client.stop();
            self.inner.set_running(false);
            return Err(Error::StoppedWhileStarting);
        }
        *slot = Some(client);
        Ok(())
    }

    fn stop(&self) -> Result<(), Error> {
        self.stops.fetch_add(1, Ordering::AcqRel);
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(client) = client {
            client.stop();
        }
        self.inner.set_running(false);
        Ok(())
    }

    fn send(&self, data: Vec<u8>) -> Result<(), Error> {
        Ok(self.session()?.send_binary(data)?)
    }

    fn is_connected(&self) -> bool {
        self.session().is_ok_and(|s| s.is_open())
    }

    fn is_running(&self) -> bool {
        *self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_for_stop(&self) {
        let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running {
            running = self
                .inner
                .ended
                .wait(running)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn set_receive_callback_boxed(&self, callback: ReceiveCallback) {
        self.inner.set(|c| c.receive = Some(callback));
    }
    fn set_connected_callback_boxed(&self, callback: EventCallback) {
        self.inner.set(|c| c.connected = Some(callback));
    }
    fn set_disconnected_callback_boxed(&self, callback: EventCallback) {
        self.inner.set(|c| c.disconnected = Some(callback));
    }
    fn set_error_callback_boxed(&self, callback: ErrorCallback) {
        self.inner.set(|c| c.error = Some(callback));
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
        self.inner.set(|c| c.text = Some(callback));
    }
    fn set_binary_callback_boxed(&self, callback: BinaryCallback) {
        self.inner.set(|c| c.binary = Some(callback));
    }
    fn set_close_callback_boxed(&self, callback: CloseCallback) {
        self.inner.set(|c| c.close = Some(callback));
    }
}
