//! Typed connection state: the loop creates it for an accepted connection
//! (`T::default()`), takes it from `connect` for an outgoing one, hands it to every callback
//! for that connection, lets other callbacks reach it by id, and gives it to `on_close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};

use netcore::{Closed, Conn, ConnId, Control, Handler};

use crate::util::{self, BOUND};

/// One client's session: the name its first line gave, then how many lines followed.
#[derive(Debug, Default)]
struct Session {
    name: Option<String>,
    lines: usize,
}

/// Names each client by its first line and counts the rest; answers `who` with the names
/// of every other live client, read from their states by id.
#[derive(Default)]
struct Named {
    clients: Vec<ConnId>,
    finished: Arc<Mutex<Vec<(String, usize)>>>,
}

impl Handler<(), Session> for Named {
    fn on_open(&mut self, conn: &mut Conn<'_, Session>) {
        self.clients.push(conn.id());
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> usize {
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        let line = String::from_utf8_lossy(&input[..newline]).into_owned();
        let me = conn.id();
        if line == "who" {
            let ctl = conn.control();
            // Its own state is the callback's `conn.state()`, not reachable by id meanwhile.
            assert!(ctl.state(me).is_none());
            let mut others: Vec<String> = self
                .clients
                .iter()
                .filter(|&&id| id != me)
                .filter_map(|&id| ctl.state(id)?.name.clone())
                .collect();
            others.sort();
            conn.send(format!("{}\n", others.join(",")).as_bytes());
        } else if conn.state().name.is_none() {
            conn.state().name = Some(line);
        } else {
            conn.state().lines += 1;
        }
        newline + 1
    }

    fn on_close(&mut self, _: &mut Control<'_, Session>, closed: &Closed<'_, Session>) {
        self.clients.retain(|&id| id != closed.id);
        let name = closed.state.name.clone().unwrap_or_default();
        self.finished
            .lock()
            .unwrap()
            .push((name, closed.state.lines));
    }
}

#[test]
fn each_connection_keeps_its_own_state_from_open_to_close() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = Named::default();
    let finished = Arc::clone(&handler.finished);
    let running = util::spawn(event_loop, handler);
    let mut alice = util::connect(addr);
    let mut bob = util::connect(addr);
    alice.write_all(b"alice\n").unwrap();
    bob.write_all(b"bob\nlin").unwrap();
    alice.write_all(b"one\ntwo\n").unwrap();
    bob.write_all(b"e\n").unwrap();
    // Another callback reads the states by id: each client sees the other's name (once the
    // loop has read it: until then the answer leaves it out).
    for (me, other) in [(&mut alice, "bob"), (&mut bob, "alice")] {
        let mut reader = BufReader::new(me.try_clone().unwrap());
        util::wait_for("the other's name", BOUND, || {
            me.write_all(b"who\n").unwrap();
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            answer == format!("{other}\n")
        });
    }
    for client in [&alice, &bob] {
        client.shutdown(Shutdown::Write).unwrap();
    }
    for mut client in [alice, bob] {
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
    }
    util::wait_for("both to close", BOUND, || {
        finished.lock().unwrap().len() == 2
    });
    let mut finished = finished.lock().unwrap().clone();
    finished.sort();
    assert_eq!(
        finished,
        [("alice".to_string(), 2), ("bob".to_string(), 1)],
        "each session's count, as its connection left it"
    );
    running.stop();
}
