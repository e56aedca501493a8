import Foundation

/// Errors the gateway itself produces, rendered in Kong's templates (spec §8.3, §8.4).
public struct KongErrorResponse: Sendable, Equatable {
    public let status: Int
    public let contentType: String
    public let body: String

    public enum Format: Sendable, Equatable { case json, plain, html, xml }

    /// Kong's default message per status (`kong.response.error` without a message).
    public static func defaultMessage(for status: Int) -> String {
        switch status {
        case 400: return "Bad request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not found"
        case 405: return "Method not allowed"
        case 409: return "Conflict"
        case 413: return "Payload too large"
        case 415: return "Unsupported media type"
        case 426: return "Upgrade required"
        case 429: return "Too many requests"
        case 500: return ProxyErrorText.unexpected
        case 502: return ProxyErrorText.invalidUpstreamResponse
        case 503: return "The upstream server is currently unavailable"
        case 504: return ProxyErrorText.upstreamTimeout
        default: return "The upstream server responded with \(status)"
        }
    }

    /// Gateway-logic errors choose the format from `Accept` only (JSON when absent);
    /// NGINX-level errors fall back to the request `Content-Type`, then plain text.
    public static func format(accept: String?, contentType: String? = nil, nginxLevel: Bool = false) -> Format {
        if let accept, let best = bestMediaType(accept) { return format(forMediaType: best) }
        if nginxLevel {
            if let contentType { return format(forMediaType: contentType.split(separator: ";").first.map(String.init) ?? "") }
            return .plain
        }
        return .json
    }

    static func format(forMediaType type: String) -> Format {
        switch type.trimmingCharacters(in: .whitespaces).lowercased() {
        case "text/html": return .html
        case "application/xml": return .xml
        case "text/plain", "text/*": return .plain
        default: return .json
        }
    }

    /// The media range with the highest q (first wins ties).
    static func bestMediaType(_ accept: String) -> String? {
        var best: (type: String, q: Double)?
        for part in accept.split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = pieces.first, !type.isEmpty else { continue }
            var q = 1.0
            for parameter in pieces.dropFirst() where parameter.hasPrefix("q=") {
                q = Double(parameter.dropFirst(2)) ?? 1.0
            }
            if best == nil || q > best!.q { best = (type, q) }
        }
        return best?.type
    }

    public init(status: Int, message: String? = nil, requestID: String, format: Format) {
        let message = message ?? Self.defaultMessage(for: status)
        self.status = status == 494 ? 400 : status
        switch format {
        case .json:
            contentType = "application/json; charset=utf-8"
            body = "{\n  \"message\":\"\(message)\",\n  \"request_id\":\"\(requestID)\"\n}"
        case .plain:
            contentType = "text/plain; charset=utf-8"
            body = "\(message)\nrequest_id: \(requestID)\n"
        case .html:
            contentType = "text/html; charset=utf-8"
            body = """
            <!doctype html>
            <html>
              <head>
                <meta charset="utf-8">
                <title>Error</title>
              </head>
              <body>
                <h1>Error</h1>
                <p>\(message).</p>
                <p>request_id: \(requestID)</p>
              </body>
            </html>

            """
        case .xml:
            contentType = "application/xml; charset=utf-8"
            body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>\(message)</message>\n  <requestid>\(requestID)</requestid>\n</error>\n"
        }
    }
}

/// The exact texts of spec §8.4.
public enum ProxyErrorText {
    public static let noRoute = "no Route matched with those values"
    public static let noService = "no Service found with those values"
    public static let invalidUpstreamResponse = "An invalid response was received from the upstream server"
    public static let upstreamTimeout = "The upstream server is timing out"
    public static let nameResolutionFailed = "name resolution failed"
    public static let unexpected = "An unexpected error occurred"
    public static let httpsRequired = "Please use HTTPS protocol"
}
