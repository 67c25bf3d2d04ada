//! A private redis-server for one test.

use crate::{free_port, TempDir};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` started for one test on a free port, with an
/// append-only file fsynced on every write so a stop and restart loses
/// nothing. Killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub async fn start() -> RedisServer {
        let dir = TempDir::new("redis");
        let mut s = RedisServer {
            port: free_port(),
            dir,
            child: None,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self.dir.path().to_str().expect("utf-8 temp dir"),
                "--logfile",
                "redis.log",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server) or run scripts/test.sh");
        self.child = Some(child);
        // Generous: on a loaded machine a start can take seconds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    async fn ping(&self) -> bool {
        let Ok(c) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_millis(500),
            c.get_multiplexed_async_connection(),
        )
        .await
        else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A fresh connection for the test's own reads and writes.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// An integer key's value, 0 when the key does not exist.
    pub async fn get_i64(&self, key: &str) -> i64 {
        let mut c = self.conn().await;
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("GET on the test redis");
        v.unwrap_or(0)
    }

    /// Kills the server at once (SIGKILL); with `appendfsync always` every
    /// acknowledged write survives.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Closes every normal client connection from the server's side.
    pub async fn kill_clients(&self) -> u64 {
        let mut c = self.conn().await;
        // Our own connection is killed too; the reply still arrives first.
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async::<u64>(&mut c)
            .await
            .unwrap_or(0)
    }

    /// Calls of `command` (lower case, e.g. `keys`) since start or the last
    /// `CONFIG RESETSTAT`, from `INFO commandstats`.
    pub async fn command_calls(&self, command: &str) -> u64 {
        let mut c = self.conn().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .expect("INFO");
        parse_calls(&info, command)
    }

    /// Every command's call count from `INFO commandstats`.
    pub async fn command_stats(&self) -> Vec<(String, u64)> {
        let mut c = self.conn().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .expect("INFO");
        info.lines()
            .filter_map(|l| {
                let (name, _) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                Some((name.to_string(), parse_calls(l, name)))
            })
            .collect()
    }

    pub async fn reset_stats(&self) {
        let mut c = self.conn().await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut c)
            .await
            .expect("CONFIG RESETSTAT");
    }
}

fn parse_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
