import ArgumentParser
import NIOCore
import NIOPosix

// Requests are served by async tasks; running them on NIO's event loops (instead of Swift's
// default executor) saves a thread hop per await. Must happen before any concurrency is used,
// hence this explicit entry point instead of `@main`.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

do {
    var command = try Silverback.parseAsRoot()
    if let asyncCommand = command as? AsyncEntry {
        try await asyncCommand.serve()
    } else {
        try command.run()
    }
} catch {
    Silverback.exit(withError: error)
}
