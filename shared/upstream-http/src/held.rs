//! Pieces of bytes gathered into one.

use bytes::{Bytes, BytesMut};

/// Pieces gathered into one (the next write of a stream, a body's decoded
/// chunks); a single piece is kept without copying.
#[derive(Default)]
pub struct Held {
    one: Option<Bytes>,
    more: BytesMut,
}

impl Held {
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if self.one.is_none() && self.more.is_empty() {
            self.one = Some(b);
            return;
        }
        if let Some(one) = self.one.take() {
            self.more.reserve(one.len() + b.len());
            self.more.extend_from_slice(&one);
        }
        self.more.extend_from_slice(&b);
    }

    pub fn is_empty(&self) -> bool {
        self.one.is_none() && self.more.is_empty()
    }

    pub fn len(&self) -> usize {
        self.one.as_ref().map_or(self.more.len(), Bytes::len)
    }

    pub fn take(&mut self) -> Option<Bytes> {
        if let Some(one) = self.one.take() {
            return Some(one);
        }
        (!self.more.is_empty()).then(|| self.more.split().freeze())
    }
}
