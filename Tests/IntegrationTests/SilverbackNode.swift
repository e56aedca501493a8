import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The real `silverback start` in a child process, on random loopback ports, for tests that need
/// the whole node (signals, restarts, the database file).
final class SilverbackNode: @unchecked Sendable {  // immutable after init; Process is thread-safe to signal
    let process = Process()
    let proxyPort: Int
    let adminPort: Int
    private let output: Pipe
    let errors = Pipe()
    /// What the node printed while starting (one line per listener, then the start line).
    let startupOutput: String

    /// Starts the node with `environment` (KONG_* settings) and waits until both listeners are up.
    init(environment: [String: String]) throws {
        process.executableURL = CLITests.binary
        process.arguments = CLITests.hermetic(["start"])
        process.currentDirectoryURL = CLITests.packageRoot
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KONG_") }
        env["KONG_PROXY_LISTEN"] = "127.0.0.1:0"
        env["KONG_ADMIN_LISTEN"] = "127.0.0.1:0"
        // A prefix of its own unless the test shares one on purpose: one node runs per prefix,
        // and what a node keeps there (its pid, the last POST /config) must not leak between tests.
        env["KONG_PREFIX"] = FileManager.default.temporaryDirectory
            .appendingPathComponent("silverback-node-\(UUID().uuidString)").path
        for (k, v) in environment { env[k] = v }
        process.environment = env
        output = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // "Admin API listening on 127.0.0.1:<port>" for each admin address, then
        // "Silverback started: proxy listening on 127.0.0.1:<port>".
        var text = ""
        while !text.contains("Admin API listening on") || !text.contains("Silverback started") || !text.hasSuffix("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        func port(after marker: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) else { return nil }
            return line.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
        guard let proxy = port(after: "proxy listening on"), let admin = port(after: "Admin API listening on") else {
            process.terminate()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw NodeError(description: "the node did not start: \(text) \(stderr)")
        }
        proxyPort = proxy
        adminPort = admin
        startupOutput = text
    }


    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// SIGTERM and wait: the node drains and exits.
    func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGKILL: no chance to flush anything.
    func crash() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    struct Reply {
        let status: Int
        /// Names lower-cased.
        var headers: [String: String] = [:]
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    }

    /// One Admin API call; `form` bodies are sent as Kong's documentation sends them (curl `--data`).
    func admin(_ method: String, _ path: String, form: [(String, String)]? = nil, json: String? = nil) async throws -> Reply {
        try await call(port: adminPort, method, path, form: form, json: json)
    }

    func proxy(_ path: String, headers: [String: String] = [:]) async throws -> Reply {
        try await call(port: proxyPort, "GET", path, headers: headers)
    }

    func proxyPOST(_ path: String, json: String, headers: [String: String] = [:]) async throws -> Reply {
        try await call(port: proxyPort, "POST", path, json: json, headers: headers)
    }

    private func call(port: Int, _ method: String, _ path: String, form: [(String, String)]? = nil, json: String? = nil,
                      headers: [String: String] = [:]) async throws -> Reply {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let form {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(form.map { "\($0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
                .joined(separator: "&").utf8)
        } else if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.utf8)
        }
        let (body, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        var names: [String: String] = [:]
        for case let (name as String, value as String) in http?.allHeaderFields ?? [:] { names[name.lowercased()] = value }
        return Reply(status: http?.statusCode ?? 0, headers: names, body: body)
    }
}

struct NodeError: Error, CustomStringConvertible {
    let description: String
}
