import Foundation
import NIOCore
import NIOPosix

/// A real `redis-server` on a free loopback port, without persistence, for the rate limiter's
/// `redis` strategy (`.ci/setup` installs it).
final class RedisServer: @unchecked Sendable {  // immutable after init; Process is thread-safe to signal
    let port: Int
    /// Serves TLS only (on `port`) when made with a certificate.
    let servesTLS: Bool
    private let process = Process()

    struct Missing: Error, CustomStringConvertible {
        var description: String { "redis-server is not installed: run .ci/setup (it installs the redis-server package)" }
    }

    /// `tls`: PEM certificate and key files; the server then speaks TLS only, without asking
    /// clients for certificates. `sentinelOf`: a Redis Sentinel (not a server) monitoring the
    /// server on that port as master `mymaster`.
    init(tls: (certificatePath: String, keyPath: String)? = nil, sentinelOf masterPort: Int? = nil) async throws {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else { throw Missing() }
        // A port the kernel just handed out and released.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        port = probe.localAddress!.port!
        try await probe.close()
        process.executableURL = URL(fileURLWithPath: binary)
        servesTLS = tls != nil
        let listening = tls.map { ["--port", "0", "--tls-port", String(port), "--tls-cert-file", $0.certificatePath,
                                   "--tls-key-file", $0.keyPath, "--tls-auth-clients", "no"] } ?? ["--port", String(port)]
        if let masterPort {
            // Sentinel rewrites its configuration file: a fresh one of its own.
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-\(UUID().uuidString).conf")
            try "port \(port)\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 \(masterPort) 1\n"
                .write(to: file, atomically: true, encoding: .utf8)
            process.arguments = [file.path, "--sentinel", "--daemonize", "no", "--loglevel", "warning"]
        } else {
            process.arguments = listening + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                             "--daemonize", "no", "--loglevel", "warning"]
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            if (try? cli(["PING"])) == "PONG" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        stop()
        throw NodeError(description: "redis-server did not answer on port \(port)")
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// SIGKILL (nothing to flush: no persistence), then a bounded wait for the exit.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<200 where process.isRunning { usleep(10_000) }
    }

    /// One `redis-cli` call; its output without the trailing newline.
    @discardableResult
    func cli(_ arguments: [String]) throws -> String {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        cli.arguments = ["-p", String(port), "--raw"] + (servesTLS ? ["--tls", "--insecure"] : []) + arguments
        let output = Pipe()
        cli.standardOutput = output
        cli.standardError = FileHandle.nullDevice
        try cli.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
