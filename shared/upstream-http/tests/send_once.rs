//! A request reaches the upstream once: no resend after the whole request
//! could have been read, and `request_unsent` tells which failures left it
//! unsent.

mod common;

use bytes::Bytes;
use common::{answer, pool, post, post_body, run, Act, Upstream};
use std::sync::Arc;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const AGAIN: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain";

/// A body larger than loopback's socket buffers, so that writing it is
/// still going on when the upstream resets the connection.
fn big_body() -> Bytes {
    Bytes::from(vec![b'x'; 32 * 1024 * 1024])
}

#[test]
fn connections_are_reused_until_the_upstream_says_close() {
    run(async {
        let up = Upstream::start(vec![vec![
            answer(OK),
            answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
            answer(b"HTTP/1.1 201 Created\r\ncontent-length: 3\r\nconnection: close\r\n\r\nnew"),
        ]])
        .await;
        let p = pool();
        assert_eq!(post(&p, &up.addr).await.unwrap(), (200, Bytes::from("ok")));
        assert_eq!(p.idle_count(), 1);
        assert_eq!(post(&p, &up.addr).await.unwrap(), (200, Bytes::from("hi")));
        assert_eq!(post(&p, &up.addr).await.unwrap(), (201, Bytes::from("new")));
        assert_eq!(p.idle_count(), 0, "`connection: close` is not kept");
        assert_eq!((up.accepted(), up.requests()), (1, 3));
    });
}

#[test]
fn a_post_read_whole_on_a_reused_connection_then_dropped_is_sent_once() {
    run(async {
        let up = Upstream::start(vec![vec![answer(OK), Act::ReadThenClose]]).await;
        let p = pool();
        post(&p, &up.addr).await.unwrap();
        let e = post(&p, &up.addr).await.unwrap_err();
        assert!(!e.request_unsent(), "{e}");
        assert_eq!(
            (up.accepted(), up.requests()),
            (1, 2),
            "the second POST reached the upstream once"
        );
    });
}

#[test]
fn a_post_read_whole_on_a_new_connection_then_dropped_is_sent_once() {
    run(async {
        let up = Upstream::start(vec![vec![Act::ReadThenClose]]).await;
        let e = post(&pool(), &up.addr).await.unwrap_err();
        assert!(!e.request_unsent(), "{e}");
        assert_eq!((up.accepted(), up.requests()), (1, 1));
    });
}

#[test]
fn a_close_after_a_1xx_is_an_answer_and_not_resent() {
    run(async {
        let up = Upstream::start(vec![vec![
            answer(OK),
            answer(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Act::Close,
        ]])
        .await;
        let p = pool();
        post(&p, &up.addr).await.unwrap();
        let e = post(&p, &up.addr).await.unwrap_err();
        assert!(!e.request_unsent(), "{e}");
        assert_eq!((up.accepted(), up.requests()), (1, 2));
    });
}

#[test]
fn an_idle_connection_the_upstream_closed_is_replaced_before_sending() {
    run(async {
        let up = Upstream::start(vec![vec![answer(OK), Act::Close], vec![answer(AGAIN)]]).await;
        let p = pool();
        post(&p, &up.addr).await.unwrap();
        assert_eq!(p.idle_count(), 1);
        up.closed(1).await;
        assert_eq!(
            post(&p, &up.addr).await.unwrap(),
            (200, Bytes::from("again"))
        );
        assert_eq!(
            (up.accepted(), up.heads(), up.requests()),
            (2, 2, 2),
            "the request went once, on the new connection"
        );
    });
}

#[test]
fn a_write_that_fails_on_a_reused_connection_goes_once_on_a_new_one() {
    run(async {
        let up = Upstream::start(vec![
            vec![answer(OK), Act::ReadHeadThenReset],
            vec![answer(AGAIN)],
        ])
        .await;
        let p = pool();
        post(&p, &up.addr).await.unwrap();
        assert_eq!(
            post_body(&p, &up.addr, big_body()).await.unwrap(),
            (200, Bytes::from("again"))
        );
        // The first connection saw the big request's head only; the second
        // got it whole.
        assert_eq!((up.accepted(), up.heads(), up.requests()), (2, 3, 2));
    });
}

#[test]
fn a_write_that_fails_on_a_new_connection_is_unsent_and_not_resent() {
    run(async {
        let up = Upstream::start(vec![vec![Act::ReadHeadThenReset]]).await;
        let e = post_body(&pool(), &up.addr, big_body()).await.unwrap_err();
        assert!(e.request_unsent(), "{e}");
        assert_eq!((up.accepted(), up.heads(), up.requests()), (1, 1, 0));
    });
}

#[test]
fn a_body_cut_short_is_an_unknown_outcome() {
    run(async {
        let up = Upstream::start(vec![vec![
            answer(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"),
            Act::Close,
        ]])
        .await;
        let e = post(&pool(), &up.addr).await.unwrap_err();
        assert!(e.is_body() && !e.request_unsent(), "{e}");
        assert_eq!((up.accepted(), up.requests()), (1, 1));
    });
}

#[test]
fn a_refused_connection_is_unsent() {
    run(async {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Arc<str> = l.local_addr().unwrap().to_string().into();
        drop(l);
        let e = post(&pool(), &addr).await.unwrap_err();
        assert!(
            e.is_connect() && !e.is_timeout() && e.request_unsent(),
            "{e}"
        );
    });
}

#[test]
fn a_connect_timeout_is_unsent() {
    run(async {
        // A listener whose accept queue (one connection) is full: further
        // SYNs are dropped and the connect cannot complete.
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        l.listen(0).unwrap();
        let at = l.local_addr().unwrap().as_socket().unwrap();
        let _queued = std::net::TcpStream::connect(at).unwrap();
        let addr: Arc<str> = at.to_string().into();
        let p = aigw_upstream_http::Pool::new(aigw_upstream_http::PoolConfig {
            connect_timeout: std::time::Duration::from_millis(300),
            idle_timeout: std::time::Duration::from_secs(60),
            max_idle_per_host: 4,
            tcp_keepalive: None,
        });
        let e = post(&p, &addr).await.unwrap_err();
        assert!(
            e.is_connect() && e.is_timeout() && e.request_unsent(),
            "{e}"
        );
    });
}
