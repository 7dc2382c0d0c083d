//! Outgoing Unix-domain connections: `Control::connect_unix` from a callback and
//! `EventLoop::connect_unix` before `run`, to a std `UnixListener`: `on_open`, data both
//! ways, `on_close`; a missing path or a socket nobody listens on is reported.

use crate::util;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use netcore::{
    CloseReason, Closed, Conn, ConnId, ConnectError, Control, EventLoop, Handler, PeerAddr, TimerId,
};
use util::{TempDir, BOUND};

/// What the loop sends on each connection it opens.
const REQUEST_LEN: usize = 256 << 10;

fn request() -> Vec<u8> {
    (0..REQUEST_LEN as u32).map(|i| (i % 251) as u8).collect()
}

/// One outgoing connection as the client saw it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen {
    opened: Option<(u64, PeerAddr)>,
    read: Vec<u8>,
    closed: Option<(ConnId, u64, PeerAddr, CloseReason)>,
}

/// A client loop: connects to `path` from a timer when `connect_from_timer` is set; sends
/// a request on open, reads the reply until the server's EOF, closes and stops.
struct Client {
    path: PathBuf,
    connect_from_timer: bool,
    /// The id `Control::connect_unix` returned.
    started: Option<ConnId>,
    seen: Arc<Mutex<Seen>>,
}

impl Client {
    fn new(path: &Path, connect_from_timer: bool) -> Client {
        Client {
            path: path.to_path_buf(),
            connect_from_timer,
            started: None,
            seen: Arc::default(),
        }
    }
}

impl Handler<(), u64> for Client {
    fn on_timer(&mut self, ctl: &mut Control<'_, u64>, _: TimerId) {
        if self.connect_from_timer && self.started.is_none() {
            self.started = Some(ctl.connect_unix(&self.path, 7));
        } else {
            ctl.stop(); // the bound on the whole exchange
        }
    }

    fn on_connect(&mut self, conn: &mut Conn<'_, u64>, outcome: Result<&PeerAddr, &ConnectError>) {
        if outcome.is_err() {
            return;
        }
        self.seen.lock().unwrap().opened = Some((*conn.state(), conn.peer().clone()));
        conn.send(&request());
    }

    fn on_data(&mut self, _: &mut Conn<'_, u64>, data: &[u8]) -> usize {
        self.seen.lock().unwrap().read.extend_from_slice(data);
        data.len()
    }

    fn on_close(&mut self, ctl: &mut Control<'_, u64>, closed: &Closed<'_, u64>) {
        self.seen.lock().unwrap().closed =
            Some((closed.id, closed.state, closed.peer.clone(), closed.reason));
        ctl.stop();
    }
}

/// Accepts one connection on `listener`, reads the whole request, answers with its length
/// and the server's name, and closes after the client's EOF.
fn serve_one(listener: UnixListener) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut got = vec![0; REQUEST_LEN];
        stream.read_exact(&mut got).unwrap();
        stream
            .write_all(format!("{} bytes, thanks", got.len()).as_bytes())
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "nothing after the request");
        got
    })
}

/// Runs `event_loop` with `client` (a timer ends it after `BOUND` at most) and checks the
/// whole exchange with a server on `path`.
fn exchange(mut event_loop: EventLoop<(), u64>, client: Client, path: &Path, tag: u64) {
    let server = serve_one(UnixListener::bind(path).unwrap());
    event_loop.set_timer(Instant::now() + BOUND);
    let seen = Arc::clone(&client.seen);
    let (client, _) = util::spawn(event_loop, client).join_within(BOUND + BOUND);
    let got = server.join().expect("the server's thread");
    assert!(got == request(), "the server got the request intact");

    let peer = PeerAddr::Unix(Some(path.to_path_buf()));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.opened, Some((tag, peer.clone())));
    assert_eq!(seen.read, format!("{REQUEST_LEN} bytes, thanks").as_bytes());
    let (id, closed_tag, closed_peer, reason) = seen.closed.expect("on_close");
    assert_eq!(
        (closed_tag, closed_peer, reason),
        (tag, peer, CloseReason::Done)
    );
    if let Some(started) = client.started {
        assert_eq!(id, started, "on_close names the id connect_unix returned");
    }
}

#[test]
fn control_connect_unix_from_a_timer() {
    let dir = TempDir::new("unix-connect-ctl");
    let path = dir.0.join("server.sock");
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    event_loop.set_timer(Instant::now());
    exchange(event_loop, Client::new(&path, true), &path, 7);
}

#[test]
fn event_loop_connect_unix_before_run() {
    let dir = TempDir::new("unix-connect-loop");
    let path = dir.0.join("server.sock");
    // The listener must exist before the connect: bind it here, serve it in `exchange`.
    let listener = UnixListener::bind(&path).unwrap();
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    let id = event_loop.connect_unix(&path, 3).unwrap();
    let server = serve_one(listener);
    event_loop.set_timer(Instant::now() + BOUND);
    let client = Client::new(&path, false);
    let seen = Arc::clone(&client.seen);
    util::spawn(event_loop, client).join_within(BOUND + BOUND);
    assert!(server.join().expect("the server's thread") == request());
    let seen = seen.lock().unwrap().clone();
    let peer = PeerAddr::Unix(Some(path.clone()));
    assert_eq!(seen.opened, Some((3, peer.clone())));
    assert_eq!(seen.read, format!("{REQUEST_LEN} bytes, thanks").as_bytes());
    assert_eq!(seen.closed, Some((id, 3, peer, CloseReason::Done)));
}

/// A connect to a path where nothing is: `on_close` with the reason and the tag, never
/// `on_open`; `EventLoop::connect_unix` fails at once, naming the path.
#[test]
fn connecting_to_a_missing_path_is_reported() {
    let dir = TempDir::new("unix-connect-missing");
    let path = dir.0.join("nobody.sock");

    let mut event_loop = EventLoop::new(util::config()).unwrap();
    let err = event_loop.connect_unix(&path, 1).unwrap_err();
    assert_eq!(err.kind(), netcore::ErrorKind::Connect);
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    event_loop.set_timer(Instant::now());
    let client = Client::new(&path, true);
    let seen = Arc::clone(&client.seen);
    let started = Instant::now();
    let (client, event_loop) = util::spawn(event_loop, client).join_within(BOUND);
    assert!(
        started.elapsed() < BOUND,
        "reported at once, not by a timer"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.opened, None);
    let (id, tag, peer, reason) = seen.closed.expect("on_close for the failed connect");
    assert_eq!(Some(id), client.started);
    assert_eq!((tag, peer), (7, PeerAddr::Unix(Some(path.clone()))));
    assert!(
        matches!(
            reason,
            CloseReason::ConnectFailed(std::io::ErrorKind::NotFound)
        ),
        "{reason:?}"
    );
    assert_eq!(event_loop.counters().snapshot().connect_failures, 1);
}

/// A socket file whose listener is gone: the connect is refused.
#[test]
fn connecting_to_a_socket_nobody_listens_on_is_refused() {
    let dir = TempDir::new("unix-connect-refused");
    let path = dir.0.join("gone.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, the listener does not
    assert!(path.exists());

    let mut event_loop = EventLoop::new(util::config()).unwrap();
    let err = event_loop.connect_unix(&path, 1).unwrap_err();
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::ConnectionRefused);

    event_loop.set_timer(Instant::now());
    let client = Client::new(&path, true);
    let seen = Arc::clone(&client.seen);
    let (_, event_loop) = util::spawn(event_loop, client).join_within(BOUND);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.opened, None);
    let (_, tag, _, reason) = seen.closed.expect("on_close for the refused connect");
    assert_eq!((tag, reason), (7, CloseReason::Refused));
    assert_eq!(event_loop.counters().snapshot().refused, 1);
}
