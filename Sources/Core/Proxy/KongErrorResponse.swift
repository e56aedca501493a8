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
    /// NGINX-level errors without `Accept` read the request `Content-Type` the same way, then fall
    /// back to plain text (`error_default_type`). Repeated `Accept` lines are passed joined by `,`.
    public static func format(accept: String?, contentType: String? = nil, nginxLevel: Bool = false) -> Format {
        if let accept { return responseFormat(accept) }
        if nginxLevel { return contentType.map(responseFormat) ?? .plain }
        return .json
    }

    static func format(forMediaType type: String) -> Format {
        switch type.lowercased() {
        case "text/html": return .html
        case "application/xml": return .xml
        case "text/plain", "text/*": return .plain
        default: return .json
        }
    }

    /// Kong's `get_response_type`: the type of the media range with the highest q; a range with
    /// q=0 never wins, the first wins ties, and JSON stands when none qualifies. An entry that is
    /// not `type/subtype` is skipped; a `q` outside Kong's grammar (`0`–`1`, three decimals at
    /// most) counts as a plain parameter, leaving q at 1.
    static func responseFormat(_ accept: String) -> Format {
        var format = Format.json, best = 0.0
        for entry in accept.split(separator: ",") {
            let pieces = entry.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = pieces.first, isMediaRange(type) else { continue }
            var q = 1.0
            for parameter in pieces.dropFirst() { if let value = qValue(parameter) { q = value } }
            guard q > best else { continue }
            best = q
            format = Self.format(forMediaType: type)
        }
        return format
    }

    /// `token/token`, either side possibly `*`.
    static func isMediaRange(_ text: String) -> Bool {
        let sides = text.split(separator: "/", omittingEmptySubsequences: false)
        return sides.count == 2 && sides.allSatisfy { side in
            !side.isEmpty && (side == "*" || side.utf8.allSatisfy(HTTPBytes.isTokenByte))
        }
    }

    /// The value of a `q=` parameter in Kong's grammar (`1`, `1.0`–`1.000`, `0`, `0.d`–`0.ddd`).
    static func qValue(_ parameter: String) -> Double? {
        let parts = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, parts[0].lowercased() == "q" else { return nil }
        let value = parts[1]
        let digits = value.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = digits.first, whole == "0" || whole == "1" else { return nil }
        if digits.count == 2 {
            let fraction = digits[1]
            guard fraction.count <= 3, fraction.allSatisfy(\.isASCIIDigit), whole == "0" || fraction.allSatisfy({ $0 == "0" }) else {
                return nil
            }
        }
        return Double(value)
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
    public static let requestTimeout = "Request timeout"
}
