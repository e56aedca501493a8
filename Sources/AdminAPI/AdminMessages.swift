import Core

/// A request as the Admin API handles it, independent of the HTTP server carrying it.
public struct AdminRequest: Sendable {
    public var method: String
    /// Path without the query, percent-encoded as received.
    public var path: String
    public var query: [(name: String, value: String)]
    /// Header name (lower-cased) → values.
    public var headers: [String: [String]]
    public var body: [UInt8]

    public init(method: String, path: String, query: [(name: String, value: String)] = [],
                headers: [String: [String]] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()]?.first }
    public func queryValue(_ name: String) -> String? { query.first(where: { $0.name == name })?.value }
}

public struct AdminResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (a: AdminResponse, b: AdminResponse) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.map { "\($0.0):\($0.1)" } == b.headers.map { "\($0.0):\($0.1)" }
    }

    /// Kong's JSON bodies: `application/json; charset=utf-8`.
    static func json(_ status: Int, _ value: JSONValue) -> AdminResponse {
        AdminResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")],
                      body: value.serializedBytes(.kong))  // cjson, as Kong's Admin API: `/` escaped
    }

    static func message(_ status: Int, _ text: String) -> AdminResponse { json(status, ["message": .string(text)]) }

    static func error(_ error: KongError) -> AdminResponse {
        let mapped = AdminErrorResponse(error)
        return json(mapped.status, mapped.body)
    }

    static let notFound = message(404, "Not found")
    static let methodNotAllowed = message(405, "Method not allowed")
    static let noContent = AdminResponse(status: 204)

    public var json: JSONValue? { try? JSONValue.parse(bytes: body) }
}
