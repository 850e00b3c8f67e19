/// What a request body must be for the outbound client (hyper's bounds; `Unpin` so that it can
/// move between tasks freely). `http_body_util::Full`, `Empty`, axum's and tonic's bodies are.
pub trait OutboundBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
    + 'static
{
}

impl<B> OutboundBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static
{
}
