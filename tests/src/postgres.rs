//! A throwaway PostgreSQL 15 for the tests of the PostgreSQL sink: `initdb` and `pg_ctl` from
//! [`PG_BIN`] (which `.ci/run` installs) on a temporary directory and a free loopback port,
//! stopped and removed when dropped.
//!
//! `initdb` refuses to run as root, and CI runs as root: the server's commands then run as
//! `nobody:nogroup` through `setpriv`, and the directory is handed to that user. The server
//! listens on 127.0.0.1 only, its Unix socket in the temporary directory. Roles:
//!
//! - `postgres`, the superuser, trusted on loopback: [`TempPostgres::client`] for the tests'
//!   own queries (with the `postgres` crate, no `psql`).
//! - `daemoneye`, trusted on loopback, owner of the database `daemoneye`: the sink's role.
//! - [`PASSWORD_ROLE`], which must give [`PASSWORD`] (SCRAM-SHA-256), and may create tables in
//!   `daemoneye`: for the tests of `password_file`.
//!
//! With [`TempPostgres::start_tls`] the server also has `ssl = on` with a certificate for
//! `127.0.0.1` and `localhost` signed by a CA made for it ([`TempPostgres::ca_file`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's PostgreSQL 15 keeps its server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The role that logs in with a password.
pub const PASSWORD_ROLE: &str = "daemoneye_pw";

/// Its password.
pub const PASSWORD: &str = "correct horse battery staple";

/// How `pg_ctl stop` stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect the clients and shut down cleanly.
    Fast,
    /// Kill everything at once, as a crash would (recovery at the next start).
    Immediate,
}

/// A running (or stopped) private PostgreSQL server.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    ca_file: Option<PathBuf>,
    running: bool,
}

fn run_as_nobody() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A port nothing listens on right now (the server may still lose a race for it: start
/// tries again with another).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Hands `path` to `nobody:nogroup` when the tests run as root.
fn give_away(path: &Path) {
    if !run_as_nobody() {
        return;
    }
    let uid = nix::unistd::User::from_name("nobody")
        .expect("reading the user database")
        .expect("a user nobody")
        .uid;
    let gid = nix::unistd::Group::from_name("nogroup")
        .expect("reading the group database")
        .expect("a group nogroup")
        .gid;
    nix::unistd::chown(path, Some(uid), Some(gid)).expect("chown to nobody");
}

/// Writes a new CA's certificate to `path` and returns its key and parameters, to sign with.
fn make_ca(path: &Path, name: &str) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let key = rcgen::KeyPair::generate().expect("a CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).expect("a self-signed CA");
    std::fs::write(path, cert.pem()).expect("writing the CA certificate");
    rcgen::Issuer::new(params, key)
}

/// Writes the certificate of a CA that signed nothing the server has: a wrong CA.
pub fn write_unrelated_ca(path: &Path) {
    make_ca(path, "Some other CA");
}

impl TempPostgres {
    /// A new server without TLS, started, with the roles and database of the module doc.
    pub fn start() -> Self {
        Self::create(false)
    }

    /// [`TempPostgres::start`] with `ssl = on`.
    pub fn start_tls() -> Self {
        Self::create(true)
    }

    fn create(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        give_away(dir.path());
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).expect("creating the socket directory");
        give_away(&socket_dir);
        let mut server = Self {
            dir,
            data,
            port: 0,
            ca_file: None,
            running: false,
        };
        let initdb = server
            .pg_command("initdb")
            .arg("-D")
            .arg(&server.data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
            ])
            .output()
            .expect("running initdb");
        check("initdb", &initdb);
        let mut conf = format!(
            "\n# DaemonEye tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 40\nshared_buffers = 16MB\ndynamic_shared_memory_type = mmap\n",
            socket_dir.display()
        );
        if tls {
            let ca_file = server.dir.path().join("ca.pem");
            let issuer = make_ca(&ca_file, "DaemonEye test CA");
            let key = rcgen::KeyPair::generate().expect("a server key");
            let mut params =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                    .expect("server certificate parameters");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "localhost");
            let cert = params
                .signed_by(&key, &issuer)
                .expect("a server certificate");
            let cert_file = server.dir.path().join("server.crt");
            let key_file = server.dir.path().join("server.key");
            std::fs::write(&cert_file, cert.pem()).expect("writing the server certificate");
            std::fs::write(&key_file, key.serialize_pem()).expect("writing the server key");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the server key");
            give_away(&cert_file);
            give_away(&key_file);
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert_file.display(),
                key_file.display()
            ));
            server.ca_file = Some(ca_file);
        }
        append(&server.data.join("postgresql.conf"), &conf);
        std::fs::write(
            server.data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n\
                 host all all 127.0.0.1/32 trust\n"
            ),
        )
        .expect("writing pg_hba.conf");
        server.start_on_a_free_port();
        let mut admin = server.client_to("postgres");
        // One statement each: CREATE DATABASE cannot run inside a transaction block.
        for statement in [
            "CREATE ROLE daemoneye LOGIN".to_owned(),
            "CREATE DATABASE daemoneye OWNER daemoneye".to_owned(),
            format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        ] {
            admin
                .batch_execute(&statement)
                .unwrap_or_else(|err| panic!("{statement}: {err}"));
        }
        server
            .client()
            .batch_execute(&format!(
                "GRANT USAGE, CREATE ON SCHEMA public TO {PASSWORD_ROLE}"
            ))
            .expect("granting the password role its schema");
        server
    }

    /// Picks a free port and starts; another port when the one picked was taken meanwhile.
    fn start_on_a_free_port(&mut self) {
        for _ in 0..5 {
            self.port = free_port();
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {}\n", self.port),
            );
            if self.try_start() {
                return;
            }
        }
        panic!("PostgreSQL did not start: {}", self.log());
    }

    fn try_start(&mut self) -> bool {
        let output = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "120", "start"])
            .output()
            .expect("running pg_ctl start");
        self.running = output.status.success();
        self.running
    }

    /// Starts the server again (after [`TempPostgres::stop`]) on the same port.
    pub fn restart(&mut self) {
        assert!(!self.running, "the server is running already");
        assert!(
            self.try_start(),
            "PostgreSQL did not restart: {}",
            self.log()
        );
    }

    /// Stops the server and waits until it is down.
    pub fn stop(&mut self, mode: StopMode) {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let output = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "120", "stop"])
            .output()
            .expect("running pg_ctl stop");
        check("pg_ctl stop", &output);
        self.running = false;
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://USER@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// The sink's URL: the role `daemoneye` on the database `daemoneye`.
    pub fn sink_url(&self) -> String {
        self.url("daemoneye", "daemoneye")
    }

    /// The CA that signed the server's certificate ([`TempPostgres::start_tls`] only).
    pub fn ca_file(&self) -> &Path {
        self.ca_file
            .as_deref()
            .expect("a server started with start_tls")
    }

    /// The temporary directory (the tests may put files there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A superuser connection to the database `daemoneye`, without TLS.
    pub fn client(&self) -> ::postgres::Client {
        self.client_to("daemoneye")
    }

    fn client_to(&self, database: &str) -> ::postgres::Client {
        ::postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={database} connect_timeout=60",
                self.port
            ),
            ::postgres::NoTls,
        )
        .unwrap_or_else(|err| panic!("connecting to the test server: {err}"))
    }

    /// `program` from [`PG_BIN`], run as `nobody` when the tests run as root.
    fn pg_command(&self, program: &str) -> Command {
        let path = Path::new(PG_BIN).join(program);
        let mut command = if run_as_nobody() {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(path);
            command
        } else {
            Command::new(path)
        };
        command
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST");
        command
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .output();
        }
    }
}

fn check(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|err| panic!("appending to {}: {err}", path.display()));
}
