//! What a failed exchange reports, and whether its request may have been
//! processed.

use std::fmt;
use std::io;

/// A failed exchange. Its text names the kind of failure and the system's
/// reason, never an address, a header or a byte of the exchange.
pub enum Error {
    /// The connection could not be opened: nothing was sent.
    Connect(io::Error),
    /// The connection could not be opened in time: nothing was sent.
    ConnectTimeout,
    /// Writing the request failed before all of it was written.
    Write(io::Error),
    /// Reading the answer failed after the whole request was written.
    Read(io::Error),
    /// The connection closed before the answer's head was complete.
    Closed,
    /// The connection closed before the body's end.
    BodyClosed,
    /// The answer broke HTTP/1.1's rules.
    Protocol(&'static str),
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::ConnectTimeout => true,
            Error::Connect(e) | Error::Write(e) | Error::Read(e) => {
                e.kind() == io::ErrorKind::TimedOut
            }
            _ => false,
        }
    }

    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::ConnectTimeout)
    }

    pub fn is_body(&self) -> bool {
        matches!(self, Error::BodyClosed)
    }

    /// True only when the upstream provably did not get the whole request:
    /// the connection was never opened, or writing failed before the last
    /// byte of the request was written. Anything after the whole request
    /// was written (a lost connection, a timeout, a close after a `1xx`, a
    /// body cut short, an invalid answer) is an unknown outcome: the
    /// upstream may have processed the request.
    pub fn request_unsent(&self) -> bool {
        matches!(
            self,
            Error::Connect(_) | Error::ConnectTimeout | Error::Write(_)
        )
    }

    /// The innermost reason, for the log line.
    pub fn detail(&self) -> String {
        match self {
            Error::Connect(e) | Error::Write(e) | Error::Read(e) => e.to_string(),
            Error::ConnectTimeout => "connect timed out".into(),
            Error::Closed => "connection closed before the answer's head".into(),
            Error::BodyClosed => "connection closed before the body's end".into(),
            Error::Protocol(m) => format!("invalid answer: {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
