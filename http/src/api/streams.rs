//! Answers that are JSON, or a live Server-Sent Events stream of the same
//! content when the caller asks to follow it (`?follow=true`): one
//! documented 200 response with both media types.

use std::time::Duration;

use futures::stream::BoxStream;
use poem::IntoResponse;
use poem_openapi::ApiResponse;
use poem_openapi::payload::{EventStream, Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};

/// How often a quiet stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
            Self::Events(stream) => EventStream::new(stream)
                .keep_alive(KEEP_ALIVE)
                .into_response(),
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
                        schema: EventStream::<BoxStream<'static, E>>::schema_ref(),
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
