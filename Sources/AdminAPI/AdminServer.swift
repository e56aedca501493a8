import Core
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Serves the Admin API over HTTP/1.1 with Hummingbird on `admin_listen`.
public struct AdminServer: Sendable {
    public let api: AdminAPI
    /// Kong's `status_listen`: only `GET /status` and `/status/ready` are served (health probes,
    /// monitoring), everything else is `404`.
    public let statusOnly: Bool
    /// Kong's `admin_access_log` / `status_access_log`: a `combined` line per request; nil: off.
    public let accessLog: AccessLog?
    /// Kong's limit on Admin API request bodies (`nginx_admin_client_max_body_size`, 10m).
    static let maxBodySize = 10 << 20
    static let statusPaths: Set<String> = ["/status", "/status/", "/status/ready", "/status/ready/"]

    public init(api: AdminAPI, statusOnly: Bool = false, accessLog: AccessLog? = nil) {
        self.api = api
        self.statusOnly = statusOnly
        self.accessLog = accessLog
    }

    /// Runs until the surrounding task is cancelled; `onRunning` receives the bound port.
    public func run(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let api = self.api
        let statusOnly = self.statusOnly
        let accessLog = self.accessLog
        let responder = CallbackResponder<AdminRequestContext> { request, context in
            func log(status: Int, bodyBytes: Int) {
                accessLog?.writeCombinedLine(remoteAddress: context.remoteAddress?.ipAddress ?? "-", method: request.method.rawValue,
                                             target: request.uri.description, status: status, bodyBytesSent: bodyBytes,
                                             // The first of repeated lines, as nginx's `$http_…` (the
                                             // fields' subscript would join them).
                                             referer: request.headers[values: .referer].first,
                                             userAgent: request.headers[values: .userAgent].first,
                                             authorization: request.headers[values: .authorization].first)
            }
            if statusOnly && !Self.statusPaths.contains(request.uri.path) {
                var fields = HTTPFields()
                fields.append(HTTPField(name: .contentType, value: "application/json; charset=utf-8"))
                let body = ByteBuffer(string: #"{"message":"Not found"}"#)
                log(status: 404, bodyBytes: body.readableBytes)
                return Response(status: .notFound, headers: fields, body: .init(byteBuffer: body))
            }
            do {
                let (response, bodyBytes) = try await Self.response(for: request, api: api, checkingToken: !statusOnly)
                log(status: response.status.code, bodyBytes: bodyBytes)
                return response
            } catch let error as HTTPResponseError {
                // Hummingbird answers it (a body over the limit: 413): logged with that status.
                log(status: error.status.code, bodyBytes: 0)
                throw error
            }
        }
        // Hummingbird's own lines follow the node's `log_level` (its start line is `info`).
        var logger = Logger(label: "silverback.admin")
        logger.logLevel = switch ErrorLog.level {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warn: .warning
        case .error: .error
        case .crit, .alert, .emerg: .critical
        }
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
        try await app.run()
    }

    /// The answer, and its body's size (for the access log).
    static func response(for request: Request, api: AdminAPI, checkingToken: Bool = true) async throws -> (Response, Int) {
        var headers: [String: [String]] = [:]
        for field in request.headers { headers[field.name.canonicalName, default: []].append(field.value) }
        let body = try await request.body.collect(upTo: maxBodySize)
        var query: [(name: String, value: String)] = []
        for (name, value) in request.uri.queryParameters { query.append((String(name), String(value))) }
        let adminRequest = AdminRequest(method: request.method.rawValue, path: request.uri.path, query: query,
                                        headers: headers, body: Array(buffer: body))
        let answer = await api.respond(to: adminRequest, checkingToken: checkingToken)
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        return (Response(status: .init(code: answer.status), headers: fields,
                         body: .init(byteBuffer: ByteBuffer(bytes: answer.body))), answer.body.count)
    }
}

/// Hummingbird's basic context, with the client's address (the access log's `$remote_addr`).
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
