//! HTTPS: the server's connections through TLS when `[server] tls` names
//! a certificate and its key (PEM files).
//!
//! TLS is OpenSSL's (the library the connectors' TLS already builds on),
//! with Mozilla's "intermediate" settings: TLS 1.2 and 1.3, forward-secret
//! ciphers. Handshakes run concurrently, each on a task of its own with a
//! time limit, so a client that connects and stalls holds up no one; a
//! failed handshake is logged at debug level and the connection dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_openssl::SslStream;

/// How long a client has to finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY: usize = 128;

/// A certificate and key to serve HTTPS with.
#[derive(Clone)]
pub struct Tls(SslAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Reads the certificate chain and the private key (PEM), or says what
    /// is wrong with them.
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<Tls, String> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        builder
            .set_certificate_chain_file(certificate)
            .map_err(|e| format!("certificate {}: {e}", certificate.display()))?;
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| format!("key {}: {e}", key.display()))?;
        builder
            .check_private_key()
            .map_err(|_| "the key does not belong to the certificate".to_string())?;
        Ok(Tls(builder.build()))
    }
}

/// Accepts TCP connections and hands on those whose TLS handshake
/// succeeded.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Serves `tls` on `listener` (the accepting task runs until the
    /// listener is dropped with the runtime).
    pub(crate) fn new(listener: TcpListener, tls: Tls) -> std::io::Result<TlsListener> {
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (tls.0.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(ssl) = Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut stream) = SslStream::new(ssl, tcp) else {
                        return;
                    };
                    match tokio::time::timeout(HANDSHAKE, Pin::new(&mut stream).accept()).await {
                        Ok(Ok(())) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task is gone (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
