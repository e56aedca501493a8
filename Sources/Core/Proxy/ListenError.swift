import Foundation
import NIOCore

/// A listener that could not be opened, said as Kong's start says it: which address, and the
/// system's reason (`address already in use`) rather than the socket call's Swift spelling.
public struct ListenError: Error, CustomStringConvertible, Sendable {
    public let address: String
    public let reason: String

    public init(host: String, port: Int, cause: any Error) {
        address = "\(host):\(port)"
        if let io = cause as? IOError {
            reason = String(cString: strerror(io.errnoCode)).lowercased()
        } else {
            reason = "\(cause)"
        }
    }

    public var description: String { "\(address): \(reason)" }
}
