import Core
import Crypto
import Foundation

/// AWS Signature Version 4 for a request whose method, Host, path, query and body are final
/// (spec ai-plugins §2.5, Bedrock row). Pure: the signing time is an input.
public enum AWSSigV4 {
    /// The headers to set: `Authorization`, `X-Amz-Date` and, with session credentials,
    /// `X-Amz-Security-Token`.
    ///
    /// Signed headers are `host`, `x-amz-date`, `x-amz-security-token` (session credentials) and
    /// `content-type` (when the request has one); they must go out with exactly these values.
    /// `request.path` is the path as sent on the wire; the canonical URI encodes it once more
    /// (keeping `/`), as AWS does for every service but S3.
    public static func headers(for request: LLMSignableRequest, credentials: AWSCredentials, region: String,
                               service: String, date: Date) -> [(name: String, value: String)] {
        let amzDate = timestamp(date)
        let day = String(amzDate.prefix(8))
        let parts = canonicalParts(request, credentials: credentials, amzDate: amzDate)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n"
            + CloudEncoding.hex(SHA256.hash(data: Array(parts.canonicalRequest.utf8)))

        var key = SymmetricKey(data: Array(("AWS4" + credentials.secretAccessKey).utf8))
        for component in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(component.utf8), using: key)))
        }
        let signature = CloudEncoding.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))

        var headers: [(name: String, value: String)] = [
            ("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
                + "SignedHeaders=\(parts.signedHeaders), Signature=\(signature)"),
            ("X-Amz-Date", amzDate),
        ]
        if let token = credentials.sessionToken {
            headers.append(("X-Amz-Security-Token", token))
        }
        return headers
    }

    /// The canonical request AWS hashes (exposed for diagnosing signature mismatches; it holds
    /// the session token, so it is never logged).
    public static func canonicalRequest(for request: LLMSignableRequest, credentials: AWSCredentials, date: Date) -> String {
        canonicalParts(request, credentials: credentials, amzDate: timestamp(date)).canonicalRequest
    }

    private static func canonicalParts(_ request: LLMSignableRequest, credentials: AWSCredentials,
                                       amzDate: String) -> (canonicalRequest: String, signedHeaders: String) {
        var signed: [(String, String)] = [("host", request.hostHeader), ("x-amz-date", amzDate)]
        if let token = credentials.sessionToken { signed.append(("x-amz-security-token", token)) }
        if let contentType = request.contentType { signed.append(("content-type", contentType)) }
        signed.sort { $0.0 < $1.0 }
        let canonicalHeaders = signed.map { "\($0.0):\(trimmedHeaderValue($0.1))\n" }.joined()
        let signedHeaders = signed.map(\.0).joined(separator: ";")
        let canonicalRequest = [
            request.method.uppercased(),
            CloudEncoding.percentEncoded(request.path.isEmpty ? "/" : request.path, keepingSlash: true),
            canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            CloudEncoding.hex(SHA256.hash(data: request.body)),
        ].joined(separator: "\n")
        return (canonicalRequest, signedHeaders)
    }

    /// Parameters decoded then URI-encoded (so an already encoded query is not encoded twice),
    /// sorted by name, then value; a name without `=` gets an empty value.
    static func canonicalQuery(_ query: String?) -> String {
        guard let query, !query.isEmpty else { return "" }
        var pairs: [(String, String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring, value: Substring
            if let equals = item.firstIndex(of: "=") {
                name = item[..<equals]
                value = item[item.index(after: equals)...]
            } else {
                name = item
                value = ""
            }
            pairs.append((PercentEncoding.encode(PercentEncoding.decode(name.utf8)),
                          PercentEncoding.encode(PercentEncoding.decode(value.utf8))))
        }
        // Encoded text is ASCII: byte order is code-point order, as AWS sorts.
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Leading/trailing spaces removed, inner runs of spaces collapsed to one.
    private static func trimmedHeaderValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func timestamp(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "T"
            + pad(secondOfDay / 3_600, 2) + pad(secondOfDay % 3_600 / 60, 2) + pad(secondOfDay % 60, 2) + "Z"
    }
}

/// AWS access keys. Never printed: `description` hides them.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "AWSCredentials(redacted)" }

    /// Each key from `auth.aws_access_key_id` / `auth.aws_secret_access_key` (vault references
    /// resolved), else from env `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. `AWS_SESSION_TOKEN`
    /// belongs to the environment's keys: used only when neither key comes from the config.
    public static func resolve(auth: JSONValue, environment: [String: String]) throws(LLMCloudIdentityError) -> AWSCredentials {
        func configured(_ field: String) throws(LLMCloudIdentityError) -> String? {
            guard let value = auth[field]?.stringValue, !value.isEmpty else { return nil }
            guard let resolved = VaultReference.resolve(value, environment: environment) else {
                throw LLMCloudIdentityError("could not resolve the vault reference in auth.\(field)")
            }
            return resolved
        }
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }

        let configuredID = try configured("aws_access_key_id")
        let configuredSecret = try configured("aws_secret_access_key")
        guard let id = configuredID ?? env("AWS_ACCESS_KEY_ID"),
              let secret = configuredSecret ?? env("AWS_SECRET_ACCESS_KEY") else {
            throw LLMCloudIdentityError("AWS credentials not found: set auth.aws_access_key_id and "
                + "auth.aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        let fromEnvironment = configuredID == nil && configuredSecret == nil
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret,
                              sessionToken: fromEnvironment ? env("AWS_SESSION_TOKEN") : nil)
    }
}

/// The Bedrock region (spec ai-plugins §2.5).
public enum AWSRegion {
    /// `model.options.bedrock.aws_region` › env `AWS_REGION` › `AWS_DEFAULT_REGION`; empty
    /// values count as unset.
    public static func resolve(configured: String?, environment: [String: String]) -> String? {
        for candidate in [configured, environment["AWS_REGION"], environment["AWS_DEFAULT_REGION"]] {
            if let candidate, !candidate.isEmpty { return candidate }
        }
        return nil
    }
}
