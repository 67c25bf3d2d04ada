//! A Redis connection that a service can hold from start even while Redis is
//! unreachable: it connects lazily, reconnects on its own, and every call is
//! bounded by timeouts so a dead Redis costs a quick error, never a hang.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Timeouts for Redis calls.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_millis(1000),
            response: Duration::from_millis(3000),
        }
    }
}

/// A shared, lazily connected Redis handle.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    timeouts: RedisTimeouts,
    manager: Arc<Mutex<Option<ConnectionManager>>>,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only where it points.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisConn")
            .field("addr", &info.addr.to_string())
            .finish()
    }
}

impl RedisConn {
    /// Parses the URL; does not connect.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        Self::with_timeouts(url, RedisTimeouts::default())
    }

    pub fn with_timeouts(url: &str, timeouts: RedisTimeouts) -> redis::RedisResult<Self> {
        Ok(RedisConn {
            client: redis::Client::open(url)?,
            timeouts,
            manager: Arc::new(Mutex::new(None)),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A connection ready for commands, connecting first if needed.
    pub async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeouts.connect)
            .set_response_timeout(self.timeouts.response)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let m = tokio::time::timeout(
            self.timeouts.connect + Duration::from_millis(200),
            ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::IoError, "redis connect timed out"))
        })??;
        *slot = Some(m.clone());
        Ok(m)
    }

    /// A dedicated (non-multiplexed) connection for blocking commands or
    /// pub/sub.
    pub async fn dedicated(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeouts.connect)
            .set_response_timeout(self.timeouts.response);
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }
}
