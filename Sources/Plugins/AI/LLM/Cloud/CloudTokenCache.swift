import Foundation

/// Bearer tokens per credential identity, kept until shortly before they expire; concurrent
/// requests for one identity share a single fetch. Failures are not cached.
///
/// Keys identify a credential (endpoint, account, key id), never contain a secret, and are not
/// logged.
public actor CloudTokenCache {
    /// The process-wide cache: tokens outlive configuration snapshots.
    public static let shared = CloudTokenCache()

    public typealias Fetch = @Sendable () async throws(LLMCloudIdentityError) -> CloudToken

    private struct Entry {
        let token: String
        let refreshAt: Date
    }

    private var entries: [String: Entry] = [:]
    private var inFlight: [String: Task<Result<CloudToken, LLMCloudIdentityError>, Never>] = [:]

    public init() {}

    /// The cached token for `key`, or the result of `fetch` (joined when one is already running).
    /// A token is reused until `expires_in` minus min(60 s, expires_in / 2) after `now` of the
    /// request that fetched it.
    public func token(for key: String, now: Date, fetch: @escaping Fetch) async throws(LLMCloudIdentityError) -> String {
        if let entry = entries[key], now < entry.refreshAt { return entry.token }
        let task: Task<Result<CloudToken, LLMCloudIdentityError>, Never>
        if let running = inFlight[key] {
            task = running
        } else {
            task = Task.detached {
                do throws(LLMCloudIdentityError) { return .success(try await fetch()) } catch { return .failure(error) }
            }
            inFlight[key] = task
        }
        let result = await task.value
        // The first waiter back files the result; later ones find the task gone.
        if inFlight[key] == task {
            inFlight[key] = nil
            if case .success(let token) = result {
                let lifetime = max(0, token.expiresIn)
                entries[key] = Entry(token: token.accessToken,
                                     refreshAt: now.addingTimeInterval(lifetime - min(60, lifetime / 2)))
            }
        }
        return try result.get().accessToken
    }

    /// Forgets every token (tests; credential rotation).
    public func removeAll() {
        entries.removeAll()
    }
}
