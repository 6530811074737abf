//! A small threaded HTTP/1.1 server on loopback for the HTTP sinks' tests: it parses the
//! request line, the headers and a `Content-Length` body, records each request, and answers
//! what the test's handler says (a status and body, raw bytes, silence, or a huge body). It
//! speaks plain TCP or TLS (rustls with ring, optionally requiring a client certificate).
//! Every connection is answered with `Connection: close`, so one connection is one request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the server answers.
pub enum Answer {
    /// A status and a JSON body.
    Json(u16, String),
    /// These bytes, then the connection is closed.
    Raw(Vec<u8>),
    /// Nothing: the connection stays open until the client closes it.
    Silent,
    /// A status with a `Content-Length` of this many bytes, streamed until the client stops
    /// reading; the bytes written are counted in [`Server::streamed`].
    Huge(u16, u64),
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    streamed: Arc<AtomicU64>,
}

impl Server {
    /// A plain HTTP server answering with `handler`.
    pub fn http(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        Self::start(None, Arc::new(handler))
    }

    /// An HTTPS server with this rustls configuration.
    pub fn https(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Self {
        Self::start(Some(config), Arc::new(handler))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streamed = Arc::new(AtomicU64::new(0));
        let (recorded, counter) = (requests.clone(), streamed.clone());
        // The accept loop runs until the test process ends: each test has its own server.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tls, handler, recorded, counter) = (
                    tls.clone(),
                    handler.clone(),
                    recorded.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    // A test's client that gives up (timeout, TLS refusal) ends the
                    // connection: errors here are expected and ignored.
                    let _ = serve(stream, tls, &*handler, &recorded, &counter);
                });
            }
        });
        Self {
            addr,
            requests,
            streamed,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// The requests read so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Bytes of [`Answer::Huge`] bodies written so far.
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    recorded: &Mutex<Vec<Request>>,
    counter: &AtomicU64,
) -> io::Result<()> {
    // A bound on every read, so that no thread of the test outlives a stuck client by much.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    match tls {
        None => exchange(stream, handler, recorded, counter),
        Some(config) => {
            let connection = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            exchange(
                rustls::StreamOwned::new(connection, stream),
                handler,
                recorded,
                counter,
            )
        }
    }
}

fn exchange<S: Read + Write>(
    stream: S,
    handler: &Handler,
    recorded: &Mutex<Vec<Request>>,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let request = read_request(&mut reader)?;
    recorded.lock().unwrap().push(request.clone());
    let answer = handler(&request);
    let stream = reader.get_mut();
    match answer {
        Answer::Json(status, body) => {
            write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            stream.flush()
        }
        Answer::Raw(bytes) => {
            stream.write_all(&bytes)?;
            stream.flush()
        }
        Answer::Silent => {
            // Wait for the client to close (read returns 0 or fails), answering nothing.
            let mut buf = [0u8; 256];
            while reader.read(&mut buf)? > 0 {}
            Ok(())
        }
        Answer::Huge(status, length) => {
            write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\nConnection: close\r\n\r\n"
            )?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = length;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                stream.write_all(&chunk[..n])?;
                counter.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
            stream.flush()
        }
    }
}

fn read_request<R: BufRead>(reader: &mut R) -> io::Result<Request> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or_else(|| bad("no method"))?.to_owned();
    let target = parts.next().ok_or_else(|| bad("no target"))?.to_owned();
    if parts.next() != Some("HTTP/1.1") {
        return Err(bad("not HTTP/1.1"));
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("header without :"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if headers.len() > 100 {
            return Err(bad("too many headers"));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map(|(_, value)| value.parse().map_err(|_| bad("bad content-length")))
        .transpose()?
        .unwrap_or(0);
    if length > 64 << 20 {
        return Err(bad("body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

/// A test PKI: a CA, a server certificate for 127.0.0.1 and a client certificate, written as
/// PEM files in `dir`.
pub struct Pki {
    pub ca_pem: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl Pki {
    /// A new CA named `name` and its certificates, in `dir`.
    pub fn new(dir: &std::path::Path, name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["agent.test".to_owned()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "daemoneye agent");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let write = |file: &str, text: String| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca_pem: write("ca.pem", ca_cert.pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key_der: server_key.serialize_der(),
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_key(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key_der.clone().into())
    }

    /// A server configuration presenting the server certificate, no client certificate asked.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Self::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(self.server_chain.clone(), self.server_key())
                .unwrap(),
        )
    }

    /// A server configuration that requires a client certificate signed by this CA.
    pub fn mtls_server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Self::provider(),
        )
        .build()
        .unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Self::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(self.server_chain.clone(), self.server_key())
                .unwrap(),
        )
    }
}
