import Core

/// How the Admin API answers a `KongError` (`kong/api/endpoints.lua` `handle_error`):
/// the status per error code, and the body Kong sends for it.
public struct AdminErrorResponse: Sendable, Equatable {
    public let status: Int
    public let body: JSONValue

    public init(_ error: KongError) {
        switch error.code {
        case .uniqueViolation:
            status = 409
            body = error.json
        case .notFound:
            status = 404
            body = error.json
        case .operationUnsupported:
            status = 405
            body = error.json
        case .databaseError, .transformationError:
            // Internal details stay in the log; the client gets Kong's generic text.
            status = 500
            body = ["message": "An unexpected error occurred"]
        default:
            status = 400
            body = error.json
        }
    }
}
