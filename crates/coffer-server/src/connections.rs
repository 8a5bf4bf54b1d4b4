//! The threads that serve client connections.
//!
//! Each connection lives on one thread for its whole life: a listener's accept loop hands every
//! accepted connection to the thread serving the fewest open ones, and that thread, a
//! single-threaded tokio runtime, registers the socket with its own reactor and runs every
//! request of the connection. On the work-stealing runtime a connection's task moved between
//! worker threads from one request to the next, and its buffers, parser state and request
//! future (several KiB) moved between cores' caches with it; pinned, a KV read costs less CPU
//! and the read rate rose by about a sixth (bench `kv-read`, two cores). The work-stealing
//! runtime keeps everything else: accept loops, background jobs, storage.
//!
//! A handler that must block or compute for long already leaves the async threads
//! (`spawn_blocking`, as password hashing does), so one busy connection does not stall the
//! others on its thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Serves one connection once it is registered with the thread's runtime.
pub type ServeConnection =
    Box<dyn FnOnce(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A connection on its way to a thread: the socket, not registered with any runtime yet, and
/// what to do with it.
struct Handoff {
    stream: std::net::TcpStream,
    serve: ServeConnection,
}

impl Handoff {
    /// Register the socket with the calling thread's runtime and serve it there; `ended` runs
    /// when the connection is done (or could not be registered).
    fn serve_here(self, ended: impl FnOnce() + Send + 'static) {
        match TcpStream::from_std(self.stream) {
            Ok(stream) => {
                tokio::spawn(async move {
                    (self.serve)(stream).await;
                    ended();
                });
            }
            Err(e) => {
                ended();
                tracing::warn!(error = %e, "could not register a connection");
            }
        }
    }
}

/// What a connection thread is told.
enum Message {
    Serve(Handoff),
    /// Drop every connection (and so every reference it holds to the server), then confirm.
    Stop(std::sync::mpsc::Sender<()>),
}

struct ConnectionThread {
    queue: mpsc::UnboundedSender<Message>,
    /// Connections handed to this thread and not finished yet.
    open: Arc<AtomicUsize>,
}

/// The connection threads, one per core.
pub struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

impl ConnectionThreads {
    /// The process's connection threads, started on first use (one per available core).
    /// `None` if no thread could be started: callers then serve on their own runtime.
    pub fn global() -> Option<&'static ConnectionThreads> {
        static THREADS: OnceLock<Option<ConnectionThreads>> = OnceLock::new();
        THREADS
            .get_or_init(|| {
                let count = std::thread::available_parallelism().map_or(2, |n| n.get());
                ConnectionThreads::start(count)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "connection threads did not start; serving connections on the main runtime")
                    })
                    .ok()
            })
            .as_ref()
    }

    /// Start `count` threads (at least one).
    pub fn start(count: usize) -> std::io::Result<ConnectionThreads> {
        let mut threads = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (queue, mut messages) = mpsc::unbounded_channel::<Message>();
            let open = Arc::new(AtomicUsize::new(0));
            let thread_open = open.clone();
            std::thread::Builder::new()
                .name(format!("coffer-connections-{index}"))
                .spawn(move || {
                    let stopped = runtime.block_on(async move {
                        while let Some(message) = messages.recv().await {
                            let handoff = match message {
                                Message::Serve(handoff) => handoff,
                                Message::Stop(confirm) => return Some(confirm),
                            };
                            let open = thread_open.clone();
                            handoff.serve_here(move || {
                                open.fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                        None
                    });
                    // Dropping the runtime drops every connection still open on it.
                    drop(runtime);
                    if let Some(confirm) = stopped {
                        let _ = confirm.send(());
                    }
                })?;
            threads.push(ConnectionThread { queue, open });
        }
        Ok(ConnectionThreads { threads })
    }

    /// Hand `stream` to the thread with the fewest open connections, which runs `serve` on
    /// it. If that thread is gone, `serve` runs on the caller's runtime instead.
    pub fn dispatch(&self, stream: TcpStream, serve: ServeConnection) {
        let thread = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
            .expect("at least one thread");
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection to its thread");
                return;
            }
        };
        thread.open.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(Message::Serve(handoff))) =
            thread.queue.send(Message::Serve(Handoff {
                stream: std_stream,
                serve,
            }))
        {
            thread.open.fetch_sub(1, Ordering::Relaxed);
            handoff.serve_here(|| {});
        }
    }

    /// Close every connection on every thread and stop the threads, waiting (at most a few
    /// seconds) until they have. The server calls this at shutdown, before it lets go of its
    /// core: the connections hold references to it, and the core's storage checkpoints and
    /// audit devices finish only once the last reference is gone. Later connections are served
    /// on the caller's runtime.
    pub fn stop(&self) {
        let mut confirmations = Vec::new();
        for thread in &self.threads {
            let (confirm, confirmed) = std::sync::mpsc::channel();
            if thread.queue.send(Message::Stop(confirm)).is_ok() {
                confirmations.push(confirmed);
            }
        }
        for confirmed in confirmations {
            if confirmed
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_err()
            {
                tracing::warn!("a connection thread did not stop within 5 s");
            }
        }
    }

    /// Open connections per thread, for tests and diagnostics.
    pub fn open_per_thread(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.open.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Each connection is served on a connection thread, they spread over the threads, and
    /// a finished connection no longer counts as open.
    #[tokio::test]
    async fn connections_spread_over_the_threads_and_are_served_there() {
        let threads = ConnectionThreads::start(2).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server_side, _) = listener.accept().await.unwrap();
            threads.dispatch(
                server_side,
                Box::new(|mut stream: TcpStream| {
                    Box::pin(async move {
                        let mut byte = [0u8; 1];
                        if stream.read_exact(&mut byte).await.is_ok() {
                            let name = std::thread::current().name().unwrap_or("").to_string();
                            let _ = stream.write_all(name.as_bytes()).await;
                        }
                    })
                }),
            );
            clients.push(client);
        }
        assert_eq!(
            threads.open_per_thread(),
            vec![2, 2],
            "least-loaded placement"
        );
        let mut names = Vec::new();
        for mut client in clients {
            client.write_all(b"?").await.unwrap();
            let mut name = String::new();
            client.read_to_string(&mut name).await.unwrap();
            names.push(name);
        }
        names.sort();
        assert_eq!(
            names,
            vec![
                "coffer-connections-0",
                "coffer-connections-0",
                "coffer-connections-1",
                "coffer-connections-1"
            ]
        );
        // The counts drop as the connections' tasks end.
        for _ in 0..200 {
            if threads.open_per_thread() == vec![0, 0] {
                return;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("open counts stayed at {:?}", threads.open_per_thread());
    }

    /// Stopping drops the connections still open (and what they hold), and later connections
    /// are served on the caller's runtime.
    #[tokio::test]
    async fn stopping_drops_open_connections_and_what_they_hold() {
        let threads = ConnectionThreads::start(2).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(());
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (server_side, _) = listener.accept().await.unwrap();
            let held = held.clone();
            threads.dispatch(
                server_side,
                Box::new(move |mut stream: TcpStream| {
                    Box::pin(async move {
                        let _held = held;
                        // Waits for a byte that never comes: the connection stays open.
                        let mut byte = [0u8; 1];
                        let _ = stream.read_exact(&mut byte).await;
                    })
                }),
            );
        }
        // Each connection is registered and holds its reference (give the threads a moment).
        for _ in 0..200 {
            if Arc::strong_count(&held) == 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(Arc::strong_count(&held), 4);
        threads.stop();
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "every connection's future was dropped"
        );
        for mut client in clients {
            let mut rest = Vec::new();
            assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0, "closed");
        }
        // After the stop, a connection is served on this runtime.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        threads.dispatch(
            server_side,
            Box::new(|mut stream: TcpStream| {
                Box::pin(async move {
                    let _ = stream.write_all(b"here").await;
                })
            }),
        );
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "here");
    }
}
