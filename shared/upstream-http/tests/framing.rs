//! Answer framing equal to hyper 1.x's client, byte for byte over a real
//! socket: what hyper refuses is an error (and the request is not sent
//! again), what it accepts decodes the same.

mod common;

use bytes::Bytes;
use common::{answer, pool, post, run, Act, Upstream};

/// Sends one request to an upstream that answers `wire` and then closes;
/// the result, checked to have reached the upstream exactly once.
async fn exchange(wire: &[u8]) -> Result<(u16, Bytes), aigw_upstream_http::Error> {
    let up = Upstream::start(vec![vec![answer(wire), Act::Close]]).await;
    let got = post(&pool(), &up.addr).await;
    assert_eq!(
        (up.accepted(), up.requests()),
        (1, 1),
        "{:?}",
        String::from_utf8_lossy(wire)
    );
    got
}

async fn refused(wire: &[u8]) {
    let got = exchange(wire).await;
    let e = got.expect_err(&String::from_utf8_lossy(wire));
    assert!(
        !e.request_unsent() && !e.is_connect(),
        "{e}: {:?}",
        String::from_utf8_lossy(wire)
    );
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut w = head.as_bytes().to_vec();
    w.extend_from_slice(body);
    w
}

#[test]
fn content_length_must_be_plain_equal_digits() {
    run(async {
        for cl in [
            "+5", "-1", "1,2", "5x", "x5", "5 5", "0x5", "5,", ",5", "", "5;q",
        ] {
            refused(&with_body(
                &format!("HTTP/1.1 200 OK\r\ncontent-length: {cl}\r\n\r\n"),
                b"hello",
            ))
            .await;
        }
        refused(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 4\r\n\r\nhello").await;
        // Equal values, in one line or several, are one length.
        let ok = with_body(
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n",
            b"hello",
        );
        assert_eq!(exchange(&ok).await.unwrap(), (200, Bytes::from("hello")));
    });
}

const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

async fn refused_chunked(bodies: &[&[u8]]) {
    for body in bodies {
        refused(&with_body(CHUNKED, body)).await;
    }
}

#[test]
fn bare_lf_in_chunked_framing_is_refused() {
    run(async {
        refused_chunked(&[
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r0\r\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\rX",
            b"5\r\nhello\r\n0\r\nx: 1\ry\r\n\r\n",
        ])
        .await;
        // CRLF everywhere, whitespace before an extension.
        let ok = with_body(CHUNKED, b"5 \t;a=\"b\"\r\nhello\r\n0\r\nx: 1\r\n\r\n");
        assert_eq!(exchange(&ok).await.unwrap(), (200, Bytes::from("hello")));
    });
}

#[test]
fn chunk_sizes_are_hex_digits_without_sign_or_overflow() {
    run(async {
        refused_chunked(&[
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n",
        ])
        .await;
    });
}

/// `n` one-byte chunks whose extensions add up to `ext_total` bytes.
fn chunks_with_extensions(ext_total: usize) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    let mut data = Vec::new();
    let mut left = ext_total;
    while left > 0 {
        let ext = left.min(1000);
        left -= ext;
        // `;` starts the extension; the bytes after it are counted.
        body.extend_from_slice(b"1;");
        body.extend(std::iter::repeat_n(b'e', ext));
        body.extend_from_slice(b"\r\nz\r\n");
        data.push(b'z');
    }
    body.extend_from_slice(b"0\r\n\r\n");
    (body, data)
}

#[test]
fn chunk_extensions_are_capped_at_16_kib_per_body() {
    run(async {
        let (body, data) = chunks_with_extensions(16 * 1024 - 1);
        assert_eq!(
            exchange(&with_body(CHUNKED, &body)).await.unwrap(),
            (200, Bytes::from(data))
        );
        let (body, _) = chunks_with_extensions(16 * 1024);
        refused(&with_body(CHUNKED, &body)).await;
    });
}

#[test]
fn trailers_are_capped_in_bytes_and_lines() {
    run(async {
        let trailers = |lines: usize, value: usize| {
            let mut body = b"2\r\nhi\r\n0\r\n".to_vec();
            for _ in 0..lines {
                body.extend_from_slice(b"x: ");
                body.extend(std::iter::repeat_n(b'v', value));
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"\r\n");
            with_body(CHUNKED, &body)
        };
        // 100 lines of `x: v\r\n` (6 bytes) and the final CRLF.
        assert_eq!(
            exchange(&trailers(100, 1)).await.unwrap(),
            (200, Bytes::from("hi"))
        );
        refused(&trailers(101, 1)).await;
        // One line: `x: ` + value + CRLF + the final CRLF must stay under
        // 16 KiB.
        let fits = 16 * 1024 - 1 - 3 - 2 - 2;
        assert_eq!(
            exchange(&trailers(1, fits)).await.unwrap(),
            (200, Bytes::from("hi"))
        );
        refused(&trailers(1, fits + 1)).await;
        refused(&with_body(CHUNKED, b"2\r\nhi\r\n0\r\nno colon\r\n\r\n")).await;
    });
}

#[test]
fn transfer_encoding_and_content_length_together_are_chunked_and_not_reused() {
    run(async {
        let up = Upstream::start(vec![
            vec![answer(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )],
            vec![answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")],
        ])
        .await;
        let p = pool();
        assert_eq!(
            post(&p, &up.addr).await.unwrap(),
            (200, Bytes::from("hello"))
        );
        assert_eq!(p.idle_count(), 0);
        assert_eq!(post(&p, &up.addr).await.unwrap(), (200, Bytes::from("ok")));
        assert_eq!((up.accepted(), up.requests()), (2, 2));
        // Content-Length alone keeps the connection.
        assert_eq!(p.idle_count(), 1);
    });
}

#[test]
fn transfer_encoding_on_http_1_0_is_refused() {
    run(async {
        refused(b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            .await;
    });
}

#[test]
fn status_codes_outside_100_to_999_are_protocol_errors() {
    run(async {
        for line in [
            "HTTP/1.1 099 Low",
            "HTTP/1.1 000 Zero",
            "HTTP/1.1 1000 High",
            "HTTP/1.1 20 Short",
        ] {
            refused(format!("{line}\r\ncontent-length: 2\r\n\r\nok").as_bytes()).await;
        }
        // 1xx heads are skipped; the final answer counts.
        let ok = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 299 Odd\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(exchange(ok).await.unwrap(), (299, Bytes::from("ok")));
    });
}
