//! Live Server-Sent Events streams: of a watched state (`Events`, at a path
//! of its own, so that tools reading the JSON answer's schema, such as
//! schemathesis's link inference, still find it), or of a log, answered as
//! JSON or followed (`?follow=true`, one 200 response with both media
//! types).

use std::time::Duration;

use futures::stream::BoxStream;
use poem::IntoResponse;
use poem_openapi::ApiResponse;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};

/// How often a quiet stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a watched state is read again: what a page shows is never
/// older than this plus the way to the browser.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A stream of a watched state: `first` at once, then each of `read`'s
/// answers, read every [`WATCH_EVERY`], that differs from the last sent.
/// Ends when `read` answers `None` (the resource is gone, or cannot be read:
/// the client's EventSource reconnects and is told why).
pub fn changes<T, F, Fut>(first: T, read: F) -> BoxStream<'static, T>
where
    T: ToJSON + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<T>> + Send + 'static,
{
    use futures::StreamExt;
    let last = first.to_json();
    let later = futures::stream::unfold((read, last), |(mut read, last)| async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let now = read().await?;
            let seen = now.to_json();
            if seen != last {
                return Some((now, (read, seen)));
            }
        }
    });
    futures::stream::once(async move { first })
        .chain(later)
        .boxed()
}

/// A Server-Sent Events stream of `E` events, documented per event.
pub struct Events<E>(pub BoxStream<'static, E>);

impl<E> IntoResponse for Events<E>
where
    E: Type + ToJSON + Send + 'static,
{
    fn into_response(self) -> poem::Response {
        EventStream::new(self.0)
            .keep_alive(KEEP_ALIVE)
            .into_response()
    }
}

impl<E> ApiResponse for Events<E>
where
    E: Type + ToJSON + Send + 'static,
{
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A Server-Sent Events stream: one event at once, then one per change",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: event_schema::<E>(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

/// JSON, or an SSE stream of `E` events.
pub enum JsonOrEvents<J, E> {
    Json(J),
    Events(BoxStream<'static, E>),
}

impl<J, E> IntoResponse for JsonOrEvents<J, E>
where
    J: ToJSON + Send,
    E: Type + ToJSON + Send + 'static,
{
    fn into_response(self) -> poem::Response {
        match self {
            Self::Json(value) => Json(value).into_response(),
            Self::Events(stream) => Events(stream).into_response(),
        }
    }
}

impl<J, E> ApiResponse for JsonOrEvents<J, E>
where
    J: ToJSON + Send,
    E: Type + ToJSON + Send + 'static,
{
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "JSON; with `follow=true`, a Server-Sent Events stream of events",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: J::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "text/event-stream",
                        schema: event_schema::<E>(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        J::register(registry);
        E::register(registry);
    }
}

/// One event of the stream, as OpenAPI 3.0 and 3.1 tools read an SSE
/// schema (OpenAPI 3.2's `itemSchema`): its `data` is one JSON document of
/// `E`'s schema, named in the title.
fn event_schema<E: Type>() -> MetaSchemaRef {
    let field = |ty, description| {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(description),
            ..MetaSchema::new(ty)
        }))
    };
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        title: Some(format!("Event of {}", E::name())),
        description: Some(
            "One Server-Sent Event; `data` holds one JSON document of the schema \
             the title names.",
        ),
        required: vec!["data"],
        properties: vec![
            ("data", field("string", "The JSON document (on one line).")),
            ("event", field("string", "`message`.")),
            ("id", field("string", "Not sent.")),
            ("retry", field("integer", "Not sent.")),
        ],
        ..MetaSchema::new("object")
    }))
}
