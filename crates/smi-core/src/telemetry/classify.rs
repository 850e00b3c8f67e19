//! Success and failure, as Linkerd classifies them: HTTP 5xx is a failure, and so are the gRPC
//! statuses that mean the server could not do its work (Unknown, DeadlineExceeded, Internal,
//! Unavailable, DataLoss). Everything else, 4xx and gRPC NotFound among them, is a success: the
//! server answered as designed. Requests the mesh itself refused are neither; they are denials.

/// How a finished request counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    /// Refused by the mesh (authorization, revocation, an invalid request) before the
    /// application saw it.
    Denied,
}

/// gRPC status codes that count as failures.
const GRPC_FAILURES: [u32; 5] = [
    2,  // Unknown
    4,  // DeadlineExceeded
    13, // Internal
    14, // Unavailable
    15, // DataLoss
];

/// Classifies an answer by its HTTP status and, for gRPC, its `grpc-status` (where the response
/// head or trailers carried one). A request that got no answer at all (status 0: the connection
/// failed) is a failure.
pub fn classify(http_status: u16, grpc_status: Option<u32>) -> Outcome {
    if http_status == 0 || http_status >= 500 {
        return Outcome::Failure;
    }
    match grpc_status {
        Some(code) if GRPC_FAILURES.contains(&code) => Outcome::Failure,
        _ => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_failing_grpc_statuses_are_failures() {
        assert_eq!(classify(200, None), Outcome::Success);
        assert_eq!(classify(404, None), Outcome::Success);
        assert_eq!(classify(503, None), Outcome::Failure);
        assert_eq!(classify(0, None), Outcome::Failure);
        for failing in [2, 4, 13, 14, 15] {
            assert_eq!(classify(200, Some(failing)), Outcome::Failure, "{failing}");
        }
        for answered in [0, 1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 16] {
            assert_eq!(
                classify(200, Some(answered)),
                Outcome::Success,
                "{answered}"
            );
        }
    }
}
