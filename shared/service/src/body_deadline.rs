//! A deadline on reading a request body. actix bounds the time to receive a
//! request head but not its body, so a client trickling a byte a second
//! could hold a connection (and, on the gateway, an in-flight slot) for as
//! long as it liked. This middleware wraps every request's payload: once the
//! deadline passes before the body is complete, reading fails and the
//! response becomes a JSON 408 (the connection is closed, since the body was
//! not read to its end). Reading the body is the only thing timed: a handler
//! that has its body may take as long as its own work needs.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse};
use aigw_types::openai_error::{ErrorEnvelope, INVALID_REQUEST_ERROR};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use futures_util::Stream;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Middleware: the whole request body must arrive within the duration.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

impl<S, B> Transform<S, ServiceRequest> for BodyDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type InitError = ();
    type Transform = BodyDeadlineService<S>;
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyDeadlineService {
            service: Rc::new(service),
            limit: self.0,
        }))
    }
}

pub struct BodyDeadlineService<S> {
    service: Rc<S>,
    limit: Duration,
}

impl<S, B> Service<ServiceRequest> for BodyDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let fired = Rc::new(Cell::new(false));
        let inner = req.take_payload();
        let stream = DeadlineStream {
            inner,
            deadline: Box::pin(tokio::time::sleep(self.limit)),
            fired: fired.clone(),
            done: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(stream),
        });
        let limit = self.limit;
        let fut = self.service.call(req);
        Box::pin(async move {
            let res = fut.await?;
            if !fired.get() {
                return Ok(res.map_into_left_body());
            }
            let (req, _) = res.into_parts();
            let message = format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            );
            // OpenAI's envelope, with the admin API's `field` beside it so
            // the answer fits both error shapes the services use.
            let body = ErrorEnvelope::with_detail(
                INVALID_REQUEST_ERROR,
                "request_timeout",
                message,
                AdminField { field: None },
            );
            let resp = HttpResponse::RequestTimeout()
                .insert_header(("connection", "close"))
                .json(body);
            Ok(ServiceResponse::new(req, resp).map_into_right_body())
        })
    }
}

/// The config-center's error objects name the field at fault; a body
/// deadline concerns none.
#[derive(serde::Serialize)]
struct AdminField {
    field: Option<String>,
}

struct DeadlineStream {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    fired: Rc<Cell<bool>>,
    done: bool,
}

impl Stream for DeadlineStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    self.fired.set(true);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
