import NIOConcurrencyHelpers

/// Applies DB-mode changes to the running gateway without a restart. Each committed state is
/// handed over as it comes; while one snapshot is being compiled, newer states replace each
/// other, so a burst of writes costs one or two rebuilds, and the last state always wins.
public final class SnapshotRebuilder: Sendable {
    private let gateway: Gateway
    private let pending = NIOLockedValueBox<(config: DeclarativeConfig?, running: Bool)>((nil, false))
    private let report: @Sendable (String) -> Void

    public init(gateway: Gateway, report: @escaping @Sendable (String) -> Void) {
        self.gateway = gateway
        self.report = report
    }

    public func schedule(_ config: DeclarativeConfig) {
        let start = pending.withLockedValue { state -> Bool in
            state.config = config
            guard !state.running else { return false }
            state.running = true
            return true
        }
        if start { Task { self.drain() } }
    }

    /// Whether a state is waiting or being compiled (tests wait for this to clear).
    public var isBusy: Bool { pending.withLockedValue { $0.running } }

    private func drain() {
        while true {
            let next = pending.withLockedValue { state -> DeclarativeConfig? in
                guard let config = state.config else {
                    state.running = false
                    return nil
                }
                state.config = nil
                return config
            }
            guard let next else { return }
            do { try gateway.apply(next) } catch {
                report("the stored configuration could not be applied, keeping the running one: \(error.message)")
            }
        }
    }
}
