//! Test support for the `sql` connector: a real PostgreSQL server (Debian's
//! `postgresql`) in a fresh data directory on a free port, and statements
//! run on it or on a SQLite file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::{WAIT, free_port};

/// The user and password of the test server.
pub const PG_USER: &str = "oort";
/// The password of [`PG_USER`], required over TCP.
pub const PG_PASSWORD: &str = "oort-test-pw";

/// The directory of PostgreSQL's server programs (the newest installed).
fn pg_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("the sql tests need PostgreSQL's server (`apt-get install -y postgresql`)");
    versions
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .max()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/postgres: `apt-get install -y postgresql`")
}

/// Whether this process runs as root (the owner of its /proc entry).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command run as the `postgres` user when this process is root
/// (PostgreSQL refuses to run as root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL server on 127.0.0.1:`port`, password authentication over
/// TCP; killed, and its data removed, on drop.
pub struct PostgresServer {
    /// The port it listens on.
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Creates a database cluster and starts its server.
    pub async fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let (data, pwfile) = (dir.path().join("data"), dir.path().join("pw"));
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown to postgres failed");
        }
        let status = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", PG_USER, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let port = free_port();
        let child = as_server_user(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-k")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        let server = PostgresServer { port, child: Some(child), _dir: dir };
        let deadline = Instant::now() + WAIT;
        while sqlx::PgPool::connect(&server.url_with_password()).await.is_err() {
            assert!(Instant::now() < deadline, "postgres not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// The URL of its `postgres` database, without the password.
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    fn url_with_password(&self) -> String {
        format!("postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` (several statements).
    pub async fn execute(&self, sql: &str) {
        let pool = sqlx::PgPool::connect(&self.url_with_password()).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// The rows of `query`, as JSON objects.
    pub async fn rows(&self, query: &str) -> Vec<serde_json::Value> {
        let pool = sqlx::PgPool::connect(&self.url_with_password()).await.unwrap();
        let rows: Vec<(sqlx::types::Json<serde_json::Value>,)> =
            sqlx::query_as(&format!("SELECT to_jsonb(q) FROM ({query}) AS q")).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(json,)| json.0).collect()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT, clients disconnected), sent to the
        // postmaster itself: runuser does not always pass it on.
        let pid_file = self._dir.path().join("data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|s| s.lines().next().map(str::to_owned)) {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `sql` (several statements) on the SQLite file at `path`, creating it.
pub async fn sqlite_execute(path: &Path, sql: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// The rows of `query` on the SQLite file at `path`, as JSON objects.
pub async fn sqlite_rows(path: &Path, query: &str) -> Vec<serde_json::Value> {
    let pool = sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path)).await.unwrap();
    let rows = sqlx::query(query).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.iter().map(|row| oort_engine::json::map_to_json(&crate::sql::db::sqlite_row(row).unwrap())).collect()
}
